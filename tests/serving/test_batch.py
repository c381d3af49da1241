"""Batch scoring (`specops batch invoke`): predictions, parallel workers, failed rows, resume after SIGKILL, errors.

The tiny project of conftest.py with a BatchEndpoint added; its deployments
differ only in what each test needs (mini-batch size, workers, threshold).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from specops.project import Project
from specops.cli import main
from specops.errors import SpecopsError
from specops.serving.batch import COMPLETED, FAILED, invoke, list_jobs, manifest_path
from tests.serving.conftest import make_project, rows

pytestmark = pytest.mark.xdist_group("batch")

BATCH_SPEC = """
apiVersion: specops/v1
kind: BatchEndpoint
metadata: {name: nightly}
spec:
  default_deployment: main
  dataset: loans
  deployments:
    - {name: main, model: tiny@champion, mini_batch_size: 100, max_concurrency_per_instance: 2}
    - {name: small, model: tiny@champion, mini_batch_size: 2}
    - {name: strict, model: tiny@1, mini_batch_size: 50, error_threshold: 2}
    - {name: lenient, model: tiny@1, mini_batch_size: 50, error_threshold: 10}
    - {name: counts, model: tiny@1, mini_batch_size: 50, output_action: summary_only}
    - {name: missing, model: tiny@99}
    - {name: stale, model: tiny@3}
    - {name: slowpoke, model: slow@1, mini_batch_size: 10, retry_settings: {max_retries: 1, timeout: 5}}
---
apiVersion: specops/v1
kind: Pipeline
metadata: {name: train-slow}
spec: {dataset: loans, feature_set: loan-features, gate: anything, model_name: slow}
"""
# A model that hangs on any mini-batch holding a score of 301: what a batch timeout is for.
SLOW_MODEL = """
import time

import mlflow
from mlflow.pyfunc import PythonModel


class Slow(PythonModel):
    def predict(self, context, model_input, params=None):
        if (model_input["score"] == 301).any():
            time.sleep(120)
        return (model_input["score"] < 550).astype(int).to_numpy()


mlflow.models.set_model(Slow())
"""
COLUMNS = ["income", "score", "region"]
SPECOPS = str(Path(sys.executable).with_name("specops"))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("batch") / "proj")
    (root / "specs" / "batch.yaml").write_text(BATCH_SPEC.lstrip())
    rows(1000, seed=7).to_csv(root / "input.csv", index=False)
    register_slow_model(root)
    return root


def register_slow_model(root: Path) -> None:
    import mlflow
    from mlflow.models import infer_signature

    from specops.features.transforms import compute_features
    from specops.registry import connect
    from specops.spec import Dataset, FeatureSet, load_specs

    specs = load_specs(root)
    connect(specs)
    code = root / "slow_model.py"
    code.write_text(SLOW_MODEL.lstrip())
    features = compute_features(rows(5), specs.get(FeatureSet, "loan-features").spec, specs.get(Dataset, "loans").spec)
    with mlflow.start_run(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's hints about type hints and input examples
        info = mlflow.pyfunc.log_model(name="model", python_model=str(code), pip_requirements=["mlflow"],
                                       signature=infer_signature(features, (features.score < 550).astype(int)))
        mlflow.register_model(info.model_uri, "slow")


def direct_predictions(root: Path, frame: pd.DataFrame, version: str) -> list:
    """What the registered version predicts on the training feature code, without specops' batch path."""
    import mlflow.sklearn

    from specops.features.transforms import compute_features
    from specops.registry import connect
    from specops.spec import Dataset, FeatureSet, load_specs

    specs = load_specs(root)
    connect(specs)
    model = mlflow.sklearn.load_model(f"models:/tiny/{version}")
    features = compute_features(frame, specs.get(FeatureSet, "loan-features").spec, specs.get(Dataset, "loans").spec)
    return model.predict(features).tolist()


def test_append_row_writes_the_models_predictions_in_input_order_from_parallel_workers(project: Path):
    job = invoke(Project(project).specs, "nightly", input=project / "input.csv")
    out = pd.read_csv(job.output_file)
    assert job.status == COMPLETED and job.version == "2"  # tiny@champion
    assert job.output_file == project / "outputs" / "batch" / job.job / "predictions.csv"
    assert list(out.columns) == ["row", "prediction", "model", "version"]
    assert out.row.tolist() == list(range(1000))
    assert out.prediction.tolist() == direct_predictions(project, pd.read_csv(project / "input.csv"), "2")
    assert set(out.model) == {"tiny"} and set(out.version) == {2}
    pids = {entry["pid"] for entry in job.done.values()}
    assert len(job.done) == 10 and len(pids) == 2 and os.getpid() not in pids


def test_the_same_input_again_is_the_same_job_and_scores_nothing(project: Path):
    first = invoke(Project(project).specs, "nightly", input=project / "input.csv")  # finished by the test above, or now
    again = invoke(Project(project).specs, "nightly", input=project / "input.csv")
    assert again.job == first.job and again.done == first.done
    assert again.runs[-1]["started_at"] >= first.runs[-1]["started_at"] and len(again.runs) == len(first.runs) + 1


def test_sigkilled_job_resumes_without_rescoring_finished_mini_batches(project: Path):
    source = project / "input.csv"  # 500 mini-batches of 2 rows: long enough to kill half-way
    killed = subprocess.Popen([SPECOPS, "batch", "invoke", "nightly", "--input", str(source), "--deployment", "small",
                               "--root", str(project)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    manifest = wait_for_progress(project, killed, at_least=20)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    before = json.loads(manifest.read_text())
    assert before["status"] == "Running" and 20 <= len(before["done"]) < before["mini_batches"]
    wait_until_gone({entry["pid"] for entry in before["done"].values()})  # workers stop when their parent dies
    parts = manifest.parent / "parts"
    mtimes = {i: (parts / f"part-{int(i):06d}.csv").stat().st_mtime_ns for i in before["done"]}
    listed = CliRunner().invoke(main, ["batch", "list", "nightly", "--root", str(project)])
    assert f"{before['job']}  Interrupted" in listed.output

    resumed = CliRunner().invoke(main, ["batch", "invoke", "nightly", "--resume", before["job"], "--root", str(project)])
    assert resumed.exit_code == 0, resumed.output
    after = json.loads(manifest.read_text())
    assert after["status"] == COMPLETED and len(after["done"]) == after["mini_batches"] and len(after["runs"]) == 2
    assert all(after["done"][i] == entry for i, entry in before["done"].items())  # same pid, same finish time
    assert all((parts / f"part-{int(i):06d}.csv").stat().st_mtime_ns == mtime for i, mtime in mtimes.items())
    killed_pids = {entry["pid"] for entry in before["done"].values()}
    rescored = [entry for i, entry in after["done"].items() if i not in before["done"]]
    assert rescored and not killed_pids & {entry["pid"] for entry in rescored}

    uninterrupted = invoke(Project(project).specs, "nightly", input=source)  # main: 10 mini-batches of 100, scored by the first test
    resumed_output = Path(after["output_dir"]) / "predictions.csv"
    assert uninterrupted.job != after["job"]
    assert resumed_output.read_bytes() == uninterrupted.output_file.read_bytes()


def wait_for_progress(project: Path, process: subprocess.Popen, at_least: int) -> Path:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for path in (project / ".specops" / "batch" / "nightly").glob("*/manifest.json"):
            try:
                manifest = json.loads(path.read_text())
            except ValueError:
                continue
            if manifest["deployment"] == "small" and len(manifest["done"]) >= at_least:
                return path
        if process.poll() is not None:
            raise AssertionError(f"batch invoke exited {process.returncode} before it was killed:\n{process.stderr.read()}")
        time.sleep(0.01)
    process.kill()
    raise AssertionError("batch invoke recorded no progress within 120s")


def wait_until_gone(pids: set[int]) -> None:
    deadline = time.monotonic() + 20
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if _running(pid)}
        time.sleep(0.05)
    assert not alive, f"workers {alive} outlived their killed parent"


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie has exited; only its parent's reaping is left


def bad_input(path: Path) -> Path:
    frame = rows(200, seed=11).astype(object)
    frame.loc[7, "region"] = "mars"
    frame.loc[90, "income"] = "lots"
    frame.loc[150, "score"] = 7.5
    frame.to_csv(path, index=False)
    return path


def test_failed_rows_beyond_error_threshold_fail_the_job_naming_row_and_column(project: Path):
    source = bad_input(project / "bad.csv")
    with pytest.raises(SpecopsError, match=r"3 row\(s\) failed, more than error_threshold 2 of deployment strict; "
                                           r"first: row 7: region: 'mars' is not one of north, south"):
        invoke(Project(project).specs, "nightly", input=source, deployment="strict")
    [failed] = [j for j in list_jobs(project, "nightly") if j.deployment == "strict"]
    assert failed.status == FAILED and "error_threshold" in failed.message

    job = invoke(Project(project).specs, "nightly", input=source, deployment="lenient")
    out, errors = pd.read_csv(job.output_file), pd.read_csv(Path(job.output_dir) / "errors.csv")
    assert job.status == COMPLETED and job.failed_rows == 3 and job.scored_rows == 197
    assert errors.row.tolist() == [7, 90, 150]
    assert errors.error.tolist() == ["row 7: region: 'mars' is not one of north, south",
                                     "row 90: income: expected a number, got 'lots'",
                                     "row 150: score: expected an integer, got 7.5"]
    assert out.row.tolist() == [r for r in range(200) if r not in (7, 90, 150)]
    good = pd.read_csv(source).drop(index=[7, 90, 150]).astype({"income": float})
    assert out.prediction.tolist() == direct_predictions(project, good, "1")


def test_summary_only_writes_counts_and_no_predictions(project: Path):
    job = invoke(Project(project).specs, "nightly", input=project / "input.csv", deployment="counts")
    summary = json.loads((Path(job.output_dir) / "summary.json").read_text())
    assert summary["scored"] == 1000 and summary["failed"] == 0 and summary["output"] is None
    assert sorted(p.name for p in Path(job.output_dir).iterdir()) == ["summary.json"]
    assert not (manifest_path(project, "nightly", job.job).parent / "parts").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"endpoint": "nope"}, "no BatchEndpoint named 'nope' (known: nightly)"),
    ({"input": "missing.csv"}, "input file missing.csv not found"),
    ({"deployment": "purple"}, "no batch deployment named 'purple'"),
    ({"deployment": "missing"}, "deployment missing: cannot load model tiny@99"),
    ({"deployment": "stale"}, "trained on feature set loan-features@v0, but the specs declare loan-features@v1"),
    ({"resume": "0123456789ab"}, "no batch job '0123456789ab' for batch endpoint 'nightly'"),
    ({"dataset": "nope"}, "no Dataset named 'nope' (known: loans)"),
])
def test_user_mistakes_are_clear_errors(project: Path, kwargs: dict, message: str):
    with pytest.raises(SpecopsError) as info:
        invoke(Project(project).specs, kwargs.pop("endpoint", "nightly"), **kwargs)
    assert message in str(info.value)


def test_a_missing_column_is_named_with_the_file_and_the_cli_prints_no_traceback(project: Path):
    source = project / "no-score.csv"
    rows(10).drop(columns=["score"]).to_csv(source, index=False)
    result = CliRunner().invoke(main, ["batch", "invoke", "nightly", "--input", str(source), "--root", str(project)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert f"{source}: missing column(s) score, which the model's feature set reads" in result.output
    assert "Traceback" not in result.output


def test_show_reports_a_jobs_status_version_and_output(project: Path):
    job = invoke(Project(project).specs, "nightly", input=project / "input.csv")
    shown = CliRunner().invoke(main, ["batch", "show", job.job, "--root", str(project)])
    assert shown.exit_code == 0, shown.output
    assert f"batch job {job.job} (nightly/main): Completed" in shown.output
    assert "tiny v2 (tiny@champion)" in shown.output and str(job.output_file) in shown.output


def test_a_mini_batch_past_its_timeout_is_retried_on_a_fresh_worker_then_counted_as_failed(project: Path):
    frame = rows(30, seed=5)
    frame.loc[15, "score"] = 301  # the slow model hangs on mini-batch 1 (rows 10-19)
    frame.to_csv(project / "hangs.csv", index=False)
    job = invoke(Project(project).specs, "nightly", input=project / "hangs.csv", deployment="slowpoke")
    assert job.status == COMPLETED  # error_threshold -1: failures are reported, not fatal
    assert job.failed == {"1": {"rows": 10, "error": "timed out after 5s", "attempts": 2}}  # max_retries 1
    assert sorted(job.done) == ["0", "2"] and job.done["0"]["pid"] != job.done["2"]["pid"]  # the hung worker was killed
    errors = pd.read_csv(Path(job.output_dir) / "errors.csv")
    assert errors.row.tolist() == list(range(10, 20)) and set(errors.error) == {"mini-batch 1: timed out after 5s"}
    assert pd.read_csv(job.output_file).row.tolist() == [*range(10), *range(20, 30)]
