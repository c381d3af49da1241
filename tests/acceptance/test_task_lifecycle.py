"""The whole local lifecycle for the other tasks, by specs alone: multiclass (wine), regression (diabetes), and
a team's training script logging a LightGBM model. Train, gate, register, serve, one canary step, monitor.

Each project trains twice (v1 champion, v2 challenger), serves both from one endpoint, shifts half the
traffic to v2 under load with labels fed back, analyses the canary on the task's own measure (accuracy, or
the mean absolute error), promotes it, and runs a monitor over the logged window.
"""
from __future__ import annotations

import sys
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from specops.controller.monitors import run_monitor
from specops.lifecycle.stages import STAGES
from specops.project import Project
from specops.registry import connect
from specops.rollout import Rollout
from specops.rollout.analysis import SUCCESSFUL
from specops.serving.traffic import read_traffic
from specops.spec import load_specs
from specops.spec.monitors import Monitor
from specops.state.records import HEALTHY
from tests.serving.conftest import Server, start_server, stop_server
from tests.tasks.conftest import DIABETES, WINE, run_stages, task_project, write_diabetes, write_wine
from tests.tasks.test_training_command import PARAMS as LGBM_PARAMS
from tests.tasks.test_training_command import SCRIPT as LGBM_SCRIPT

SERVING = """apiVersion: specops/v1
kind: Gate
metadata: {name: canary-gate}
spec:
  checks:
    - {metric: error_rate, max: 0.02}
    - CHECK
---
apiVersion: specops/v1
kind: Endpoint
metadata: {name: live}
spec:
  deployments:
    - {name: blue, model: MODEL@1}
    - {name: green, model: MODEL@2}
  traffic: {blue: 100}
  rollout:
    strategy: canary
    min_samples: 30
    rollback: {metric: ROLLBACK, metric_regression: 0.5}
    steps:
      - weight: 50
      - pause: {duration: 2s}
      - analysis: canary-gate
---
apiVersion: specops/v1
kind: Monitor
metadata: {name: watch}
spec:
  baseline: {dataset: DATASET}
  target: {endpoint: live, lookback_window_size: P1D}
  schedule: "0 3 * * *"
  min_target_rows: 50
  prediction_drift: {}
  performance: {max_drop: {PERFORMANCE: 0.5}, min_labels: 30}
"""

CASES = {
    "multiclass": dict(specs=WINE, write=write_wine, data="data/wine.csv", model="wine", dataset="wine",
                       check="{metric: accuracy, compare_to: champion, min: -0.3}", rollback="accuracy",
                       performance="accuracy", target="cultivar"),
    "regression": dict(specs=DIABETES, write=write_diabetes, data="data/diabetes.csv", model="diabetes",
                       dataset="diabetes", check="{metric: mae, compare_to: champion, max: 30}", rollback="mae",
                       performance="mae", target="progression"),
    "lightgbm": dict(specs=WINE, write=write_wine, data="data/wine.csv", model="wine", dataset="wine",
                     check="{metric: accuracy, compare_to: champion, min: -0.3}", rollback="accuracy",
                     performance="f1_score", target="cultivar"),
}


def build(root: Path, case: str) -> Path:
    c = CASES[case]
    task_project(root, c["specs"], c["write"], c["data"])
    serving = SERVING
    for key, value in (("CHECK", c["check"]), ("MODEL", c["model"]), ("ROLLBACK", c["rollback"]),
                       ("DATASET", c["dataset"]), ("PERFORMANCE", c["performance"])):
        serving = serving.replace(key, value)
    (root / "specs" / "serving.yaml").write_text(serving)
    if case == "lightgbm":
        (root / "train_lgbm.py").write_text(LGBM_SCRIPT)
        (root / "params.yaml").write_text(LGBM_PARAMS)
        specs = root / "specs" / "task.yaml"
        specs.write_text(specs.read_text().replace(
            "  params: train\n", f"  params: lgbm\n  training:\n    command: {sys.executable} train_lgbm.py\n"
                              "    deps: [train_lgbm.py]\n"))
    return root


class Load:
    """One client thread scoring single rows and feeding each label back, until stopped."""

    def __init__(self, server: Server, frame: pd.DataFrame, target: str):
        self.server, self.answers = Server(server.root, server.endpoint, server.port, server.process), []
        self.rows = [({k: _plain(v) for k, v in row.items() if k != target}, _plain(row[target]))
                     for row in frame.to_dict("records")]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        labels, prefix = [], uuid.uuid4().hex[:8]
        for i in range(20_000):
            if self._stop.is_set():
                break
            inputs, label = self.rows[i % len(self.rows)]
            request_id = f"{prefix}-{i}"
            response = self.server.post("/score", {"data": [inputs]}, x_request_id=request_id)
            if response.status_code == 200:
                self.answers.append(response.json()[0])
            labels.append({"request_id": request_id, "label": label})
            if len(labels) >= 10:
                self.server.post("/feedback", labels)
                labels = []


def _plain(value):
    return value.item() if hasattr(value, "item") else value


@pytest.mark.parametrize("case", list(CASES))
def test_a_task_goes_through_train_gate_register_serve_canary_and_monitor(tmp_path: Path, case: str):
    c = CASES[case]
    root = build(tmp_path / case, case)
    run_stages(root, *STAGES)
    run_stages(root, "train", "evaluate", "gate", "register")  # v2: the challenger the canary ships
    client = connect(load_specs(root))
    assert str(client.get_model_version_by_alias(c["model"], "champion").version) == "1"
    frame = pd.read_csv(root / c["data"])
    server = start_server(root, "live", startup_s=300)  # loading a model on a busy machine
    try:
        with Load(server, frame, c["target"]) as load:
            Rollout(Project(root), "live").start("green", "blue")
            record = Rollout(Project(root), "live").run()
        assert record.status == HEALTHY and record.stable == "green", record
        [analysis] = record.analyses
        assert analysis["phase"] == SUCCESSFUL
        regression = next(ch for ch in analysis["checks"] if ch["check"] == f"{c['rollback']} regression")
        assert regression["phase"] == SUCCESSFUL and regression["value"] is not None
        assert read_traffic(server.state_dir)[0] == {"green": 100}
        assert str(client.get_model_version_by_alias(c["model"], "champion").version) == "2"
        # The answer's shape is the task's: a class, or a number.
        if case == "regression":
            assert all(isinstance(a, float) for a in load.answers)
            assert "mae" in analysis["canary"] and "mae" in analysis["stable"]
        else:
            assert set(load.answers) <= {"barolo", "grignolino", "barbera"} and len(set(load.answers)) == 3
    finally:
        stop_server(server)
    project = Project(root)
    result = run_monitor(project, project.specs.require(Monitor, "watch"), datetime.now(UTC))
    signals = {s.name: s for s in result.signals}
    assert signals["performance"].status in ("ok", "alert"), signals["performance"].reason
    assert c["performance"] in signals["performance"].metrics
    assert signals["prediction_drift"].status in ("ok", "alert"), signals["prediction_drift"].reason
