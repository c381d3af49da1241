"""The whole lifecycle through `specops apply`, for real: DVC, Great Expectations, MLflow."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from specops import api
from specops.apply.audit import AuditLog
from specops.errors import SpecopsError
from tests.conftest import BIN, make_project, run, specops

pytestmark = pytest.mark.xdist_group("lifecycle")


def registry(root: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{root / '.specops/mlflow/mlflow.db'}")


def versions(root: Path, name: str = "credit-risk") -> list:
    if not (root / ".specops/mlflow/mlflow.db").exists():
        return []
    return registry(root).search_model_versions(f"name='{name}'")


def aliases(root: Path, name: str = "credit-risk") -> dict[str, str]:
    return registry(root).get_registered_model(name).aliases


def deterministic(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not k.endswith("_latency_ms")}


@pytest.fixture(scope="module")
def applied(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("lifecycle") / "proj")
    result = specops("apply", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def test_apply_registers_a_champion_with_lineage_and_card(applied: Path):
    [version] = versions(applied)
    assert aliases(applied) == {"challenger": version.version, "champion": version.version}
    out = specops("lineage", "credit-risk@champion", "--format", "json", cwd=applied, check=True).stdout
    info = json.loads(out)
    lineage = info["lineage"]
    assert lineage["data"]["md5"] and lineage["code_sha256"] and lineage["git"]["commit"]
    assert lineage["params"]["max_depth"] in (3, 5)
    assert "accuracy >= 0.7" in info["model_card"] and "parity" in info["model_card"].lower()


def test_second_apply_is_empty_and_served_from_the_cache(applied: Path):
    assert api.plan(applied).plan.empty
    assert specops("plan", "--detailed-exitcode", cwd=applied).returncode == 0
    assert api.apply(applied).applied == []
    assert len(versions(applied)) == 1


def test_gate_threshold_change_is_exactly_one_change(applied: Path):
    gate = applied / "specs/gates/promotion.yaml"
    original = gate.read_text()
    gate.write_text(original.replace("max: 350", "max: 300"))
    try:
        [op] = api.plan(applied).plan.operations
        assert op.key == "Gate/promotion" and [c.path for c in op.changes] == ["spec.checks[3].max"]
    finally:
        gate.write_text(original)


def test_rerun_on_same_commit_and_data_reproduces_metrics_and_hashes(applied: Path):
    evaluation = applied / "artifacts/credit-risk-training/evaluation.json"
    before = json.loads(evaluation.read_text())
    lock_before = (applied / "dvc.lock").read_text()
    run(["dvc", "repro", "--force", "credit-risk-training-evaluate"], cwd=applied)
    after = json.loads(evaluation.read_text())
    for cid, metrics in before["candidates"].items():
        assert deterministic(after["candidates"][cid]["metrics"]) == deterministic(metrics["metrics"])

    def data_hashes(lock: str) -> dict:
        stages = __import__("yaml").safe_load(lock)["stages"]
        return {s: [o["md5"] for o in stages[s].get("outs", [])] for s in
                ("credit-risk-training-generate-data", "credit-risk-training-features")}

    assert data_hashes((applied / "dvc.lock").read_text()) == data_hashes(lock_before)


def test_killed_apply_converges_on_the_next_apply(tmp_path: Path):
    root = make_project(tmp_path / "proj")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen([str(BIN / "specops"), "apply"], cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "Running stage 'credit-risk-training-train'" in line:
            break
    assert any("credit-risk-training-train" in line for line in seen), "".join(seen)
    time.sleep(1.0)  # let training get under way, so the kill lands mid-stage
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert not any(e["resource"] == "Pipeline/credit-risk-training" for e in AuditLog(root).entries())
    assert versions(root) == []

    result = specops("apply", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert api.plan(root).plan.empty
    [version] = versions(root)
    assert aliases(root)["champion"] == version.version


def test_failing_gate_changes_nothing(tmp_path: Path):
    root = make_project(tmp_path / "proj")
    gate = root / "specs/gates/promotion.yaml"
    gate.write_text(gate.read_text().replace("min: 0.70", "min: 0.99"))
    result = specops("apply", cwd=root)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    output = result.stdout + result.stderr
    assert "accuracy >= 0.99" in output or "accuracy" in output and "0.99" in output
    assert not (root / ".specops/state/local.json").exists()
    assert list(AuditLog(root).entries()) == []
    assert versions(root) == []


def test_failing_expectation_stops_before_training(tmp_path: Path):
    root = make_project(tmp_path / "proj")
    dataset = root / "specs/data/credit-applications.yaml"
    dataset.write_text(dataset.read_text().replace("credit_score: {type: int, min: 300, max: 850}",
                                                   "credit_score: {type: int, min: 300, max: 700}"))
    result = specops("apply", cwd=root)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "credit_score" in output and "expect_column_values_to_be_between" in output
    assert not (root / "artifacts/credit-risk-training/candidates").exists()
    assert versions(root) == [] and list(AuditLog(root).entries()) == []


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
    assert api.plan(root).plan.empty
