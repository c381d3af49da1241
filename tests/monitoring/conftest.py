"""A throw-away example project with a Monitor and an Endpoint, and inference logs written as serving writes them."""
from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from credit_risk.generate import generate, to_csv
from specops.core.paths import ProjectPaths
from specops.serving.inference_log import InferenceLog
from tests.conftest import copy_specs

REPO = Path(__file__).resolve().parents[2]
FIRE = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)  # a cron fire time of the monitor below
MONITOR = """\
apiVersion: specops/v1
kind: Monitor
metadata:
  name: credit-drift
spec:
  baseline:
    dataset: credit-applications
  target:
    endpoint: credit-risk
    lookback_window_size: P1D
  schedule: "0 3 * * *"
  actions:
    retrain: credit-risk-training
    rollback: credit-risk
    notify: ${TEST_DRIFT_WEBHOOK}
---
apiVersion: specops/v1
kind: Endpoint
metadata:
  name: credit-risk
spec:
  deployments:
    - {name: blue, model: credit-risk@champion}
  traffic: {blue: 100}
"""


def monitor_project(dest: Path) -> Path:
    """The example specs plus MONITOR, and 5,000 rows of example data (the baseline)."""
    # The example's own endpoints and monitors stay out: MONITOR declares the ones these tests read.
    copy_specs(dest / "specs")
    (dest / "specs" / "monitors.yaml").write_text(MONITOR, encoding="utf-8")
    data = dest / "data" / "credit.csv"
    data.parent.mkdir()
    data.write_text(to_csv(generate(5000, seed=7)), encoding="utf-8")
    return dest


@pytest.fixture(scope="session")
def project_template(tmp_path_factory) -> Path:
    """The monitor project with its MLflow store created: creating one (alembic migrations) takes seconds."""
    from specops.registry import connect
    from specops.spec import load_specs

    root = monitor_project(tmp_path_factory.mktemp("template"))
    connect(load_specs(root)).search_experiments()  # no experiment of its own: copies must not log into this folder
    return root


@pytest.fixture
def project(project_template: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "project"
    shutil.copytree(project_template, dest)
    return dest


def write_log(root: Path, frame: pd.DataFrame, at: datetime, worker: int = 0, shadow: bool = False) -> None:
    """Log `frame`'s rows as requests scored at `at`, in the records serving's app writes."""
    inputs = frame.drop(columns=["default", "gender"])
    InferenceLog(ProjectPaths(root).endpoint("credit-risk"), worker).write_requests([
        {"time": at.timestamp(), "request_id": f"{worker}-{at.timestamp()}-{i}", "row": 0, "deployment": "blue",
         "model": "credit-risk", "version": "1", "shadow": shadow, "inputs": row, "prediction": 0, "latency_ms": 1.0}
        for i, row in enumerate(inputs.to_dict(orient="records"))
    ])


def drifted_day(root: Path, rows: int = 1000) -> None:
    """Yesterday's traffic has unshifted inputs; the window before FIRE has shifted income."""
    write_log(root, generate(rows, seed=21), FIRE - timedelta(days=1, hours=2))
    write_log(root, generate(rows, seed=22, drift="income"), FIRE - timedelta(hours=2), worker=1)


class Receiver:
    """A webhook receiver on loopback that keeps what was posted to it."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def webhook(monkeypatch) -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("TEST_DRIFT_WEBHOOK", receiver.url)
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join(timeout=5)


# --- a registered champion and scored traffic, for the signals that need a model ------------------

def model_inputs_of(root: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """The example feature set's features of raw rows, as training and serving compute them."""
    from specops.features.transforms import compute_features
    from specops.spec import Dataset, FeatureSet, load_specs

    specs = load_specs(root)
    return compute_features(frame, specs.get(FeatureSet, "credit-features").spec, specs.get(Dataset, "credit-applications").spec)


def register_model(root: Path, alias: str = "champion", metrics: dict[str, float] | None = None,
                   label: Callable[[pd.DataFrame], pd.Series] | None = None):
    """Train a small forest on the example data, register it under `alias` with `metrics` and its model baseline,
    the way the register stage leaves a version. `label` replaces the real label (a model that reads other features)."""
    import mlflow
    import skops.io
    from sklearn.ensemble import RandomForestClassifier

    from specops.registry import connect, use_experiment
    from specops.monitoring.model_baseline import model_baseline
    from specops.spec import load_specs

    data = pd.read_csv(root / "data" / "credit.csv")
    features = model_inputs_of(root, data)
    truth = data["default"] if label is None else label(data)
    model = RandomForestClassifier(n_estimators=30, max_depth=5, random_state=0).fit(features, truth)
    specs = load_specs(root)
    client = connect(specs)
    use_experiment(specs, "credit-risk-training")
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"],  # no slow inference
                                        skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)))
        mlflow.log_metrics(metrics or {"accuracy": 0.9, "precision": 0.8, "recall": 0.7, "f1": 0.75})
    version = mlflow.register_model(info.model_uri, "credit-risk").version
    folder = root / "registered" / f"v{version}"
    for path in model_baseline(model, features, categorical=True).save(folder):
        client.log_artifact(run.info.run_id, str(path), f"registry/v{version}")
    client.set_registered_model_alias("credit-risk", alias, version)
    return model


def write_scored(root: Path, frame: pd.DataFrame, at: datetime, predictions, labels=None, worker: int = 0,
                 sensitive: bool = True) -> None:
    """Log `frame`'s rows with the given predictions (and the gender under `sensitive`); feedback labels if given."""
    log = InferenceLog(ProjectPaths(root).endpoint("credit-risk"), worker)
    inputs = frame.drop(columns=["default", "gender"]).to_dict(orient="records")
    ids = [f"{worker}-{at.timestamp()}-{i}" for i in range(len(frame))]
    log.write_requests([
        {"time": at.timestamp(), "request_id": ids[i], "row": 0, "deployment": "blue", "model": "credit-risk",
         "version": "1", "shadow": False, "inputs": row, "prediction": int(predictions[i]), "latency_ms": 1.0,
         **({"sensitive": {"gender": frame["gender"].iloc[i]}} if sensitive else {})}
        for i, row in enumerate(inputs)
    ])
    if labels is not None:
        log.write_feedback([{"request_id": ids[i], "label": int(label)} for i, label in enumerate(labels)])


def with_signals(root: Path, fields: str) -> None:
    """The MONITOR spec with more fields under spec (YAML indented by two)."""
    path = root / "specs" / "monitors.yaml"
    path.write_text(path.read_text().replace("  schedule:", fields + "  schedule:", 1), encoding="utf-8")


def age_label(data: pd.DataFrame) -> pd.Series:
    """A label only age explains: a model of it ranks its features unlike the champion."""
    return (data["age"] > 42).astype(int)


@pytest.fixture(scope="session")
def registered_template(project_template: Path, tmp_path_factory) -> Path:
    """A monitor project with champion v1 (the real label) and challenger v2 (age_label), built once per session:
    logging and registering models takes seconds on a shared machine."""
    root = tmp_path_factory.mktemp("registered") / "project"
    shutil.copytree(project_template, root)
    register_model(root)
    register_model(root, alias="challenger", label=age_label)
    return root


@pytest.fixture
def registered(registered_template: Path, tmp_path: Path) -> Path:
    """A copy of the registered project; its MLflow store is its own (model artifacts stay in the template, read-only)."""
    dest = tmp_path / "registered"
    shutil.copytree(registered_template, dest)
    return dest
