"""A live endpoint with a stable model, a good challenger and a deliberately bad one, under bounded load.

Reuses the serving tests' tiny project (tests/serving/conftest.py) and adds
an Endpoint `live` with a canary rollout, plus two more versions of `tiny`:
v4 the champion's own model registered again (good), v5 trained on inverted
labels (every prediction wrong, no request fails: a regression only analysis sees).
"""
from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from specops.project import Project
from specops.serving.traffic import set_traffic
from tests.serving.conftest import Server, make_project, rows, start_server, stop_server

COLUMNS = ["income", "score", "region"]
DEPLOYMENTS = ["blue", "green", "bad"]
STABLE_VERSION = "2"

ENDPOINT = """
apiVersion: specops/v1
kind: Gate
metadata: {name: canary-gate}
spec:
  checks:
    - {metric: accuracy, min: -0.15, compare_to: champion}  # arms see different rows, 30+ each: noise is ~0.05; bad is ~-0.9
    - {metric: error_rate, max: 0.02}
---
apiVersion: specops/v1
kind: Endpoint
metadata: {name: live}
spec:
  deployments:
    - {name: blue, model: tiny@2}
    - {name: green, model: tiny@4}
    - {name: bad, model: tiny@5}
  traffic: {TRAFFIC}
  rollout: {ROLLOUT}
"""
CANARY = """
    strategy: canary
    min_samples: 30
    rollback_window: 10m
    steps:
      - weight: 30
      - pause: {duration: 2s}
      - analysis: canary-gate
      - weight: 60
      - pause: {duration: 1s}
      - analysis: canary-gate"""


def write_endpoint(root: Path, traffic: str = "{blue: 100}", rollout: str = CANARY) -> None:
    """The Endpoint spec as a PR would leave it (the rollout target's traffic is the desired end state).

    The running server only reads deployments and the starting traffic, so a test may change the strategy.
    """
    text = ENDPOINT.replace("{TRAFFIC}", traffic).replace("{ROLLOUT}", rollout)
    (root / "specs" / "live.yaml").write_text(text.lstrip())


def register_challengers(root: Path) -> None:
    import mlflow
    import mlflow.sklearn
    import skops.io
    from mlflow.models import infer_signature
    from sklearn.tree import DecisionTreeClassifier

    from specops.features.transforms import compute_features
    from specops.registry import connect
    from specops.spec import Dataset, FeatureSet, load_specs

    specs = load_specs(root)
    client = connect(specs)
    champion = client.get_model_version("tiny", STABLE_VERSION)
    client.create_model_version("tiny", champion.source, run_id=champion.run_id)  # v4
    data = rows(300)
    features = compute_features(data, specs.get(FeatureSet, "loan-features").spec, specs.get(Dataset, "loans").spec)
    model = DecisionTreeClassifier(max_depth=3).fit(features, 1 - data.y)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", signature=infer_signature(features, model.predict(features)),
                                        skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)),
                                        pip_requirements=["scikit-learn", "skops"])
    mlflow.register_model(info.model_uri, "tiny")  # v5


@pytest.fixture(scope="session")
def rollout_project(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("rollout") / "proj")
    write_endpoint(root)
    register_challengers(root)
    return root


@pytest.fixture(scope="session")
def live(rollout_project: Path):
    running = start_server(rollout_project, "live", workers=1)
    yield running
    stop_server(running)


def restart(server: Server) -> None:
    """Stop the endpoint's server and start it again, the same Server object then pointing at the new one."""
    stop_server(server)
    server.process.wait(timeout=15)
    replacement = start_server(server.root, server.endpoint, workers=1)
    server.port, server.url, server.process = replacement.port, replacement.url, replacement.process


@pytest.fixture
def fresh(live: Server) -> Server:
    """Each test starts from blue at 100%, no rollout record, champion v2 and the spec at {blue: 100}."""
    write_endpoint(live.root)
    set_traffic(live.state_dir, DEPLOYMENTS, {"blue": 100})
    project = Project(live.root)
    project.state.update(lambda state: state.rollouts.pop("live", None))
    project.registry.set_registered_model_alias("tiny", "champion", STABLE_VERSION)
    return live


class Load:
    """One client thread scoring single rows on loopback and sending each label back as feedback.

    Bounded: it stops at `stop()` or after `max_requests`, whichever is first.
    """

    FEEDBACK_BATCH = 10

    def __init__(self, server: Server, max_requests: int = 20_000):
        self.client = Server(server.root, server.endpoint, server.port, server.process)  # its own HTTP session
        self.max_requests = max_requests
        self.statuses: Counter[int] = Counter()
        self.served: list[tuple[float, str]] = []  # (time answered, deployment)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        data = rows(500, seed=7)
        self._rows = [({c: row[c] for c in COLUMNS}, int(row["y"])) for _, row in data.iterrows()]

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        labels, prefix = [], uuid.uuid4().hex[:8]
        for i in range(self.max_requests):
            if self._stop.is_set():
                break
            inputs, label = self._rows[i % len(self._rows)]
            request_id = f"{prefix}-{i}"
            response = self.client.post("/score", {"data": [{k: _plain(v) for k, v in inputs.items()}]}, x_request_id=request_id)
            self.statuses[response.status_code] += 1
            self.served.append((time.time(), response.headers.get("azureml-model-deployment", "")))
            labels.append({"request_id": request_id, "label": label})
            if len(labels) >= self.FEEDBACK_BATCH:
                self.client.post("/feedback", labels)
                labels = []

    def deployments_since(self, since: float) -> Counter[str]:
        return Counter(name for t, name in self.served if t >= since)


def _plain(value):
    return value.item() if hasattr(value, "item") else value
