"""A project written from scratch around a public dataset (not the template) runs the same lifecycle."""
from __future__ import annotations

from pathlib import Path

from specops.project import Project
from tests.conftest import run, specops
from tests.e2e.test_local_lifecycle import aliases, versions


BREAST_CANCER_SPECS = {
    "project.yaml": """apiVersion: specops/v1
kind: Project
metadata: {name: oncology}
spec: {}
""",
    "data.yaml": """apiVersion: specops/v1
kind: Dataset
metadata: {name: tumours}
spec:
  path: data/tumours.csv
  target: malignant
  columns:
    mean_radius: {type: float, min: 0}
    mean_texture: {type: float, min: 0}
    mean_smoothness: {type: float, min: 0, max: 1}
    worst_area: {type: float, min: 0}
    malignant: {type: int, allowed: [0, 1]}
---
apiVersion: specops/v1
kind: FeatureSet
metadata: {name: tumour-features}
spec:
  dataset: tumours
  version: 1
  owner: onc@example.com
  refresh: "@daily"
  features:
    - {name: mean_radius}
    - {name: mean_texture}
    - {name: mean_smoothness}
    - {name: log_worst_area, transform: log1p, inputs: [worst_area]}
""",
    "gate.yaml": """apiVersion: specops/v1
kind: Gate
metadata: {name: clinical}
spec:
  checks:
    - {metric: roc_auc, min: 0.9}
    - {metric: recall, min: 0.8}
""",
    "pipeline.yaml": """apiVersion: specops/v1
kind: Pipeline
metadata: {name: tumour-classifier}
spec:
  dataset: tumours
  feature_set: tumour-features
  estimator: sklearn.linear_model.LogisticRegression
  params: model
  selection: {metric: recall}
  gate: clinical
  model_name: tumour-classifier
""",
}


def test_any_tabular_dataset_runs_the_same_lifecycle(tmp_path: Path):
    from sklearn.datasets import load_breast_cancer

    root = tmp_path / "onc"
    (root / "specs").mkdir(parents=True)
    for name, text in BREAST_CANCER_SPECS.items():
        (root / "specs" / name).write_text(text)
    frame = load_breast_cancer(as_frame=True).frame
    frame = frame.rename(columns=lambda c: c.replace(" ", "_"))[["mean_radius", "mean_texture", "mean_smoothness", "worst_area", "target"]]
    frame["malignant"] = 1 - frame.pop("target")  # sklearn labels benign as 1
    (root / "data").mkdir()
    frame.to_csv(root / "data/tumours.csv", index=False)
    (root / "params.yaml").write_text("model:\n  seed: 1\n  test_size: 0.3\n  fixed: {max_iter: 2000}\n  sweep:\n    C: [0.1, 1.0, 10.0]\n")
    run(["git", "init", "-q"], root)
    run(["dvc", "init", "-q"], root)
    specops("render", cwd=root, check=True)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "init"], root)
    result = specops("apply", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    [version] = versions(root, "tumour-classifier")
    assert aliases(root, "tumour-classifier")["champion"] == version.version
    assert Project(root).plan().empty
