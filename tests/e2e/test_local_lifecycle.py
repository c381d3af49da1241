"""The whole lifecycle through `specops apply`, for real: DVC, Great Expectations, MLflow."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import yaml
from mlflow import MlflowClient

from specops.project import Project
from specops.state.audit import AuditLog
from specops.controller.events import Event
from specops.controller.loop import Controller
from tests.conftest import BIN, make_project, run, specops



def registry(root: Path) -> MlflowClient:
    # Both URIs explicit: another test in this process may have set MLflow's global registry URI.
    uri = f"sqlite:///{root / '.specops/mlflow/mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def versions(root: Path, name: str = "credit-risk") -> list:
    if not (root / ".specops/mlflow/mlflow.db").exists():
        return []
    return registry(root).search_model_versions(f"name='{name}'")


def mlflow_runs(root: Path, filter_string: str) -> list:
    client = registry(root)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, filter_string=filter_string)


def aliases(root: Path, name: str = "credit-risk") -> dict[str, str]:
    return registry(root).get_registered_model(name).aliases


def deterministic(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not k.endswith("_latency_ms")}


def test_apply_runs_the_lifecycle_once_then_converges(tmp_path: Path):
    """One real run, then everything that can be checked on it (a run costs tens of seconds)."""
    root = make_project(tmp_path / "proj")
    result = specops("apply", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr

    # A champion, with its lineage record and model card.
    [version] = versions(root)
    assert aliases(root) == {"challenger": version.version, "champion": version.version}
    info = json.loads(specops("lineage", "credit-risk@champion", "--format", "json", cwd=root, check=True).stdout)
    lineage = info["lineage"]
    assert lineage["data"]["md5"] and lineage["code_sha256"] and lineage["git"]["commit"]
    assert lineage["params"]["max_depth"] in (3, 5)
    assert "accuracy >= 0.7" in info["model_card"] and "parity" in info["model_card"].lower()

    # The scoreboard and the KPIs read the same registry and audit log.
    board = specops("scoreboard", cwd=root, check=True).stdout.splitlines()
    assert board[1].split()[:2] == ["credit-risk", str(version.version)] and board[1].split()[-1] == "champion"
    kpis = specops("kpi", cwd=root, check=True).stdout
    assert "1 release(s)" in kpis and "0 rollback(s) for 1 release(s)" in kpis

    # Apply twice: the second plan is empty and nothing is registered again.
    assert specops("plan", "--detailed-exitcode", cwd=root).returncode == 0
    assert Project(root).apply().applied == []
    assert len(versions(root)) == 1

    # One gate threshold changed: exactly that one change.
    gate = root / "specs/gates/promotion.yaml"
    original = gate.read_text()
    gate.write_text(original.replace("max: 350", "max: 300"))
    [op] = Project(root).plan().operations
    assert op.key == "Gate/promotion" and [c.path for c in op.changes] == ["spec.checks[3].max"]
    gate.write_text(original)

    # Re-running on the same commit and data reproduces the metrics and the data hashes.
    evaluation = root / "artifacts/credit-risk-training/evaluation.json"
    before, lock_before = json.loads(evaluation.read_text()), (root / "dvc.lock").read_text()
    run(["dvc", "repro", "--force", "credit-risk-training-evaluate"], cwd=root)
    after = json.loads(evaluation.read_text())
    for cid, candidate in before["candidates"].items():
        assert deterministic(after["candidates"][cid]["metrics"]) == deterministic(candidate["metrics"])
    assert data_hashes((root / "dvc.lock").read_text()) == data_hashes(lock_before)


def data_hashes(lock: str) -> dict[str, list[str]]:
    stages = yaml.safe_load(lock)["stages"]
    return {name: [out["md5"] for out in stages[name]["outs"]]
            for name in ("credit-risk-training-generate-data", "credit-risk-training-features")}


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
    doomed = psutil.Process(proc.pid).children(recursive=True)
    assert any("dvc" in " ".join(p.cmdline()) for p in doomed)
    os.kill(proc.pid, signal.SIGKILL)  # apply alone: dvc and the stage run in a process group of their own
    proc.wait(30)
    # They end themselves (reaped by init, not by us): wait until they are gone for good.
    _, alive = psutil.wait_procs(doomed, timeout=60)
    assert not alive, f"left running after apply was killed: {[' '.join(p.cmdline()) for p in alive]}"
    assert not any(e["resource"] == "Pipeline/credit-risk-training" for e in AuditLog(root).entries())
    assert versions(root) == []

    result = specops("apply", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert Project(root).plan().empty
    [version] = versions(root)
    assert aliases(root)["champion"] == version.version

    # A drift alert retrains once, with the reason on the run and in the audit log.
    controller = Controller(Project(root))
    assert controller.enqueue(Event("drift:credit-risk-training:window-1", "credit-risk-training", "drift", "test"))
    assert [(e.id, status) for e, status in controller.run_pending(Project(root).specs)] == [
        ("drift:credit-risk-training:window-1", "done")]
    assert not controller.enqueue(Event("drift:credit-risk-training:window-1", "credit-risk-training", "drift", "test"))
    assert controller.run_pending(Project(root).specs) == []
    actions = [(e["action"], e.get("reason")) for e in AuditLog(root).entries() if e["action"].startswith("retrain")]
    assert actions == [("retrain_started", "drift"), ("retrain_finished", "drift")]
    runs = mlflow_runs(root, "tags.`specops.trigger_reason` = 'drift'")
    assert len(runs) == 1 and runs[0].data.tags["specops.pipeline"] == "credit-risk-training"


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
    assert Project(root).plan().empty
