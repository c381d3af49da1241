"""Shared fixtures: throw-away copies of the example project."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The example's Endpoint, and the Monitor and SLO that measure it: left out where a test needs no server.
SERVING_SPECS = ("endpoints", "monitors", "slos")
FEEDBACK = "  # A retraining also learns from production"  # where training.yaml's feedback (naming that Endpoint) starts


def copy_specs(dest: Path, serving: bool = False) -> Path:
    """The example specs at `dest`; without `serving`, no Endpoint, Monitor or SLO, and no feedback naming the Endpoint."""
    shutil.copytree(REPO / "specs", dest, ignore=None if serving else shutil.ignore_patterns(*SERVING_SPECS))
    if not serving:
        without_feedback(dest / "pipelines" / "training.yaml")
    return dest


def without_feedback(pipeline: Path) -> None:
    """Drop the example Pipeline's feedback, for a project whose endpoints are not the example's."""
    pipeline.write_text(pipeline.read_text().split(FEEDBACK)[0])


# The longest tests (minutes each, on one worker) start first: started last, one of them alone would set the
# suite's wall time while the other workers sit idle.
LONGEST_FIRST = ("tests/e2e/test_local_lifecycle.py", "tests/azureml/test_emulated_pipeline.py",
                 "tests/e2e/test_endpoint_apply.py", "tests/init/test_init.py",
                 "tests/controller/test_serve_with_controller.py", "tests/lifecycle/test_lifecycle_stages.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.path.as_posix()
        return next((i for i, longest in enumerate(LONGEST_FIRST) if path.endswith(longest)), len(LONGEST_FIRST))
    items.sort(key=rank)  # stable: the rest keep their order


def run(cmd: list[str], cwd: Path, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def specops(*args: str, cwd: Path, check: bool = False) -> subprocess.CompletedProcess:
    return run([str(BIN / "specops"), *args], cwd=cwd, check=check)


def make_project(dest: Path, rows: int = 1500, sweep: str = "[3, 5]", with_pipeline: bool = True,
                 endpoint_port: int | None = None) -> Path:
    """A git + DVC repository holding the example specs, small enough for tests.

    The example Endpoint, its Monitor and SLO are left out unless `endpoint_port` is given (apply would start a server).
    """
    copy_specs(dest / "specs", serving=endpoint_port is not None)
    if endpoint_port is not None:
        endpoint = dest / "specs" / "endpoints" / "credit-scoring.yaml"
        endpoint.write_text(endpoint.read_text().replace("port: 5800", f"port: {endpoint_port}"))
    shutil.copytree(REPO / "src" / "credit_risk", dest / "src" / "credit_risk", ignore=shutil.ignore_patterns("__pycache__"))
    params = (REPO / "params.yaml").read_text().replace("[3, 5, 7]", sweep).replace("n_estimators: 100", "n_estimators: 30")
    (dest / "params.yaml").write_text(params)
    pipeline = dest / "specs" / "pipelines" / "training.yaml"
    if with_pipeline:
        pipeline.write_text(pipeline.read_text().replace("--rows 5000", f"--rows {rows}"))
    else:
        pipeline.unlink()
        dataset = dest / "specs" / "data" / "credit-applications.yaml"
        dataset.write_text(dataset.read_text().replace("path: data/credit.csv", "path: params.yaml"))
    run(["git", "init", "-q"], dest)
    run(["dvc", "init", "-q"], dest)
    run(["dvc", "config", "core.analytics", "false"], dest)
    specops("render", cwd=dest, check=True)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "init"], dest)
    return dest


@pytest.fixture(scope="session")
def declarations_template(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("template") / "proj", with_pipeline=False)


@pytest.fixture
def declarations(declarations_template: Path, tmp_path: Path) -> Path:
    """The example project without its Pipeline: applies in well under a second."""
    return Path(shutil.copytree(declarations_template, tmp_path / "proj", symlinks=True))


TEST_RUN = "SPECOPS_TEST_RUN"  # set for the session: every process the tests start inherits it
# A server stopped by the last test drains its requests first (serving.server.DRAIN_SECONDS).
LEFT_BEHIND_GRACE_S = float(os.environ.get("SPECOPS_TEST_LEFT_BEHIND_GRACE_S", "20"))


def _started_by(token: str) -> dict[int, str]:
    """pid -> command line of each specops server, worker or command still running with this session's token.

    /proc/<pid>/environ is the environment a process was started with, readable for one's own processes.
    """
    marker, found = f"{TEST_RUN}={token}".encode(), {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as environ:
                if marker not in environ.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone, or not ours
            continue
        # A server (python -m specops.serving), a command (specops ...), or a worker (multiprocessing's spawn_main).
        if "specops" in command or "spawn_main" in command:
            found[int(entry.name)] = command
    return found


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind():
    """Fails the session if a specops server, worker or command started by its tests outlives it (and kills it)."""
    if not os.path.isdir("/proc"):
        yield
        return
    token = f"{os.getpid()}-{uuid.uuid4().hex}"
    os.environ[TEST_RUN] = token
    yield
    deadline = time.monotonic() + LEFT_BEHIND_GRACE_S
    while (survivors := _started_by(token)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in survivors:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    assert not survivors, "processes started by the tests outlived them:\n" + "\n".join(f"  {p}: {c}" for p, c in survivors.items())


ORIGINAL_MLFLOW_ENV = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}


def reset_mlflow(environment: dict[str, str] = ORIGINAL_MLFLOW_ENV) -> None:
    """MLflow keeps the active experiment and store URIs in module globals and MLFLOW_* variables
    (`set_experiment` exports MLFLOW_EXPERIMENT_ID for child processes). Code under test sets them;
    left behind, the next test or module in the same worker logs into an experiment id of another store."""
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        del os.environ[key]
    os.environ.update(environment)
    if "mlflow.tracking.fluent" in sys.modules:
        from mlflow.tracking import _model_registry, _tracking_service, fluent

        fluent._active_experiment_id = None
        _tracking_service.utils._tracking_uri = None
        _model_registry.utils._registry_uri = None


@pytest.fixture(autouse=True, scope="module")
def isolated_mlflow_module():
    """Before a module's own fixtures build their stores: nothing left by an earlier module."""
    reset_mlflow()
    yield
    reset_mlflow()


@pytest.fixture(autouse=True)
def isolated_mlflow_globals():
    """After each test: what its module's fixtures set, and nothing the test itself set."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    yield
    reset_mlflow(saved)
