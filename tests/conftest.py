"""Shared fixtures: throw-away copies of the example project."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The example's Endpoint, and the Monitor and SLO that measure it: left out where a test needs no server.
SERVING_SPECS = ("endpoints", "monitors", "slos")


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
    shutil.copytree(REPO / "specs", dest / "specs")
    endpoint = dest / "specs" / "endpoints" / "credit-scoring.yaml"
    if endpoint_port is None:
        for folder in SERVING_SPECS:
            shutil.rmtree(dest / "specs" / folder)
    else:
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
