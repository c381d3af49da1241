"""A throw-away example project with a Monitor and an Endpoint, and inference logs written as serving writes them."""
from __future__ import annotations

import json
import shutil
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

from credit_risk.generate import generate, to_csv
from specops.serving.config import endpoint_dir
from specops.serving.inference_log import InferenceLog

REPO = Path(__file__).resolve().parents[2]
FIRE = datetime(2026, 11, 30, 3, 0, tzinfo=timezone.utc)  # a cron fire time of the monitor below
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
    shutil.copytree(REPO / "specs", dest / "specs")
    (dest / "specs" / "monitors.yaml").write_text(MONITOR, encoding="utf-8")
    data = dest / "data" / "credit.csv"
    data.parent.mkdir()
    data.write_text(to_csv(generate(5000, seed=7)), encoding="utf-8")
    return dest


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return monitor_project(tmp_path)


def write_log(root: Path, frame: pd.DataFrame, at: datetime, worker: int = 0, shadow: bool = False) -> None:
    """Log `frame`'s rows as requests scored at `at`, in the records serving's app writes."""
    inputs = frame.drop(columns=["default", "gender"])
    InferenceLog(endpoint_dir(root, "credit-risk"), worker).write_requests([
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
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
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
