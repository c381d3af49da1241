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

from specops.core.paths import ProjectPaths
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


def test_a_killed_apply_leaves_nothing_then_apply_runs_the_lifecycle_once_and_converges(tmp_path: Path):
    """One real run, then everything that can be checked on it (a run costs tens of seconds): first an apply
    killed mid-training, which must leave nothing running, recorded or registered."""
    root = with_refreshed_data(make_project(tmp_path / "proj"))
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

    # The next apply runs the whole lifecycle.
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

    # A training parameter and a data contract changed: the stale pipeline names both causes, old → new.
    params, dataset = root / "params.yaml", root / "specs/data/credit-applications.yaml"
    params_before, dataset_before = params.read_text(), dataset.read_text()
    params.write_text(params_before.replace("n_estimators: 30", "n_estimators: 40"))
    dataset.write_text(dataset_before.replace("{min_value: 500}", "{min_value: 600}"))
    ops = {op.key: op for op in Project(root).plan().operations}
    why = {(c.stage, c.kind, c.path): (c.old, c.new) for c in ops["Pipeline/credit-risk-training"].causes}
    assert why[("credit-risk-training-train", "params", "train.fixed.n_estimators")] == (30, 40)
    contract = ("credit-risk-training-validate", "spec",
                "Dataset/credit-applications spec.expectations[0].expect_table_row_count_to_be_between.min_value")
    assert why[contract] == (500, 600)
    params.write_text(params_before)
    dataset.write_text(dataset_before)

    # Re-running on the same commit and data reproduces the metrics and the data hashes.
    evaluation = root / "artifacts/credit-risk-training/evaluation.json"
    before, lock_before = json.loads(evaluation.read_text()), (root / "dvc.lock").read_text()
    run(["dvc", "repro", "--force", "credit-risk-training-evaluate"], cwd=root)
    after = json.loads(evaluation.read_text())
    for cid, candidate in before["candidates"].items():
        assert deterministic(after["candidates"][cid]["metrics"]) == deterministic(candidate["metrics"])
    assert data_hashes((root / "dvc.lock").read_text()) == data_hashes(lock_before)

    # A drift alert retrains once, with the reason on the run and in the audit log, on the data its refresh step
    # fetched: more rows (the count read from a file DVC does not track), so a model trained on them.
    (root / "rows.txt").write_text("2500\n")
    data_before = data_hashes((root / "dvc.lock").read_text())["credit-risk-training-generate-data"]
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
    data_after = data_hashes((root / "dvc.lock").read_text())["credit-risk-training-generate-data"]
    retrained = max(versions(root), key=lambda v: int(v.version))
    assert data_after != data_before and retrained.tags["lineage.data_md5"] == data_after[0]

    # A version registered by a run no apply recorded (its register stage finished, the apply was killed before
    # committing): the next plan shows it, and apply records it in state with an audit line, running nothing.
    known = Project(root).applied("Pipeline/credit-risk-training").outputs["version"]
    model = registry(root).get_model_version("credit-risk", known)
    orphan = registry(root).create_model_version("credit-risk", model.source, run_id=model.run_id, tags=model.tags)
    registration = ProjectPaths(root).run("credit-risk-training").registration
    written = json.loads(registration.read_text())
    registration.write_text(json.dumps({**written, "version": orphan.version}))  # as the register stage writes it,
    run([str(BIN / "dvc"), "commit", "--force", "credit-risk-training-register"], cwd=root)  # and dvc records it
    # A version registered outside the pipeline (a notebook, say) is not the pipeline's output: not reported.
    registry(root).create_model_version("credit-risk", model.source, run_id=model.run_id, tags=model.tags)
    [op] = Project(root).plan().operations
    assert op.key == "Pipeline/credit-risk-training" and [c.path for c in op.changes] == ["registered"]
    assert op.changes[0].old.startswith(f"unrecorded v{orphan.version} ")
    Project(root).apply()
    assert Project(root).applied("Pipeline/credit-risk-training").outputs["version"] == orphan.version
    [entry] = [e for e in AuditLog(root).entries() if e.get("outputs", {}).get("reconciled")]
    assert entry["action"] == "update" and entry["outputs"]["reconciled"] == [str(orphan.version)]
    assert entry["changed"] == ["registered"]
    assert len(versions(root)) == int(orphan.version) + 1 and Project(root).plan().empty  # nothing was trained

    # A retraining that a stricter gate refuses: apply fails naming the check, and changes nothing (state, audit,
    # registry). A gate change alone retrains nothing (it judges the next candidate), so a parameter changes too.
    gate.write_text(original.replace("min: 0.70", "min: 0.99"))
    params.write_text(params_before.replace("n_estimators: 30", "n_estimators: 40"))
    state_file, audit_before = root / ".specops/state/local.json", list(AuditLog(root).entries())
    state_before, versions_before = state_file.read_text(), len(versions(root))
    result = specops("apply", cwd=root)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "accuracy" in result.stdout + result.stderr and "0.99" in result.stdout + result.stderr
    assert state_file.read_text() == state_before and list(AuditLog(root).entries()) == audit_before
    assert len(versions(root)) == versions_before


def with_refreshed_data(root: Path) -> Path:
    """The example's generate step as a refresh step reading a source DVC cannot see (rows.txt, standing in for a
    database that grows): every retraining runs it again."""
    pipeline = root / "specs/pipelines/training.yaml"
    text = pipeline.read_text()
    command = next(line for line in text.splitlines() if "credit_risk.generate --rows 1500 " in line)
    refreshed = command.replace("--rows 1500", "--rows $(cat rows.txt)") + "\n      refresh: true"
    pipeline.write_text(text.replace(command, refreshed))
    (root / "rows.txt").write_text("1500\n")
    specops("render", cwd=root, check=True)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "generate-data refreshes"], root)
    return root


def data_hashes(lock: str) -> dict[str, list[str]]:
    stages = yaml.safe_load(lock)["stages"]
    return {name: [out["md5"] for out in stages[name]["outs"]]
            for name in ("credit-risk-training-generate-data", "credit-risk-training-features")}


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
