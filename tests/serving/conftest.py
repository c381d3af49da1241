"""A tiny project with two registered versions of a model, and its endpoint server running.

The model is trained here on a few hundred generated rows (not the example
pipeline) so the server starts in seconds; everything lives in a temp folder
with its own MLflow SQLite store, and the server listens on loopback only.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from specops.core.paths import ProjectPaths
from specops.serving.keys import ensure_keys

SPECS = {
    "project.yaml": """
apiVersion: specops/v1
kind: Project
metadata: {name: tiny}
spec: {}
""",
    "data.yaml": """
apiVersion: specops/v1
kind: Dataset
metadata: {name: loans}
spec:
  path: data/loans.csv
  target: y
  columns:
    income: {type: float, min: 0}
    score: {type: int}
    region: {type: str, allowed: [north, south]}
    y: {type: int, allowed: [0, 1]}
---
apiVersion: specops/v1
kind: FeatureSet
metadata: {name: loan-features}
spec:
  dataset: loans
  version: 1
  owner: tests
  refresh: "0 0 * * *"
  features:
    - {name: log_income, transform: log1p, inputs: [income]}
    - {name: score}
    - {name: region, transform: one_hot}
---
apiVersion: specops/v1
kind: Gate
metadata: {name: anything}
spec:
  checks: [{metric: accuracy, min: 0}]
---
apiVersion: specops/v1
kind: Pipeline
metadata: {name: train-tiny}
spec: {dataset: loans, feature_set: loan-features, gate: anything, model_name: tiny}
""",
    "endpoint.yaml": """
apiVersion: specops/v1
kind: Endpoint
metadata: {name: scoring}
spec:
  deployments:
    - {name: blue, model: tiny@champion}
    - {name: green, model: tiny@1}
    - {name: shadow, model: tiny@1}
    - {name: broken, model: tiny@99}
    - {name: stale, model: tiny@3}
  traffic: {blue: 60, green: 30, broken: 10}
  mirror_traffic: {shadow: 50}
  server: {max_request_bytes: 4096}
""",
}


def rows(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "income": rng.uniform(10_000, 100_000, n).round(2),
        "score": rng.integers(300, 850, n),
        "region": rng.choice(["north", "south"], n),
    })
    frame["y"] = ((frame.score < 550) | (frame.income < 30_000)).astype(int)
    return frame


def register_models(root: Path) -> None:
    """Versions 1 and 2 of `tiny` (2 is the champion), and a version 3 trained on another feature set version."""
    import mlflow
    import mlflow.sklearn
    import skops.io
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    from specops.features.transforms import compute_features
    from specops.registry import connect
    from specops.spec import Dataset, FeatureSet, load_specs

    specs = load_specs(root)
    client = connect(specs)
    data = rows(300)
    features = compute_features(data, specs.get(FeatureSet, "loan-features").spec, specs.get(Dataset, "loans").spec)
    for estimator in (LogisticRegression(max_iter=500), DecisionTreeClassifier(max_depth=3)):
        model = estimator.fit(features, data.y)
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(model, name="model", signature=infer_signature(features, model.predict(features)),
                                            skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)),
                                            pip_requirements=["scikit-learn", "skops"])  # skips MLflow's slow inference
        mlflow.register_model(info.model_uri, "tiny")
    client.set_registered_model_alias("tiny", "champion", "2")
    # Version 3: the same model, but recorded as trained on an older feature set version.
    mlflow.register_model(info.model_uri, "tiny", tags={"lineage.feature_set": "loan-features@v0"})


def make_project(root: Path) -> Path:
    (root / "specs").mkdir(parents=True)
    for name, text in SPECS.items():
        (root / "specs" / name).write_text(text.lstrip())
    (root / "data").mkdir()
    rows(300).to_csv(root / "data" / "loans.csv", index=False)
    register_models(root)
    return root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, root: Path, endpoint: str, port: int, process: subprocess.Popen):
        self.root, self.endpoint, self.port, self.process = root, endpoint, port, process
        self.url = f"http://127.0.0.1:{port}"
        self.state_dir = ProjectPaths(root).endpoint(endpoint)
        self.session = requests.Session()

    @property
    def key(self) -> str:
        return ensure_keys(self.state_dir)["primary"]

    def post(self, path: str, body=None, key: str | None = "default", data: bytes | None = None, **headers) -> requests.Response:
        headers = {k.replace("_", "-"): v for k, v in headers.items()}
        if key is not None:
            headers["Authorization"] = f"Bearer {self.key if key == 'default' else key}"
        return self.session.post(self.url + path, json=body, data=data, headers=headers, timeout=30)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(self.url + path, timeout=30, **kwargs)


def start_server(root: Path, endpoint: str, workers: int = 1, startup_s: float = 90, env: str | None = None) -> Server:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "specops.serving", str(root), endpoint, "--port", str(port), "--workers", str(workers),
         *(["--env", env] if env else [])],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    server = Server(root, endpoint, port, process)
    deadline = time.monotonic() + startup_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited {process.returncode}:\n{process.stdout.read()}")
        try:
            server.get("/liveness")
            return server
        except requests.ConnectionError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"server did not answer within {startup_s}s")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("serving") / "proj")


@pytest.fixture(scope="module")
def server(project: Path):
    running = start_server(project, "scoring", workers=2)
    yield running
    stop_server(running)


def counter(server: Server, name: str, **labels) -> float:
    """One sample of the server's /metrics, by name and exact labels."""
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{name}\{{{re.escape(selector)}\}} (\S+)$", server.get("/metrics").text, re.M)
    assert match, f"{name}{{{selector}}} not in /metrics"
    return float(match.group(1))


def process_gone(pid: int, timeout_s: float = 60) -> bool:
    """Whether the process exits (or is left a zombie) within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False
