"""A small project with an endpoint, an SLO and a gate that reads it, plus hand-made log records and scrapes.

Everything here is written to disk directly: no server, no MLflow (freshness gets its
training times injected), so the SLO tests run in seconds.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from specops.core.paths import ProjectPaths
from specops.slo import history
from specops.state.storage import LocalStorage
from tests.conftest import without_feedback

REPO = Path(__file__).resolve().parents[2]
ENDPOINT = "scoring"
NOW = 1_800_000_000.0  # a fixed "now" (2027-01-15): windows are computed from it, never from the clock
HOUR = 3600.0

SPECS = """\
apiVersion: specops/v1
kind: Endpoint
metadata: {name: scoring}
spec:
  deployments:
    - {name: blue, model: credit-risk@champion}
    - {name: green, model: credit-risk@challenger, data_collector: {sampling_rate: 0.5}}
  traffic: {blue: 100}
  rollout:
    strategy: canary
    min_samples: 5
    steps: [{weight: 10}, {analysis: release-freeze}]
---
apiVersion: specops/v1
kind: SLO
metadata: {name: scoring-slo}
spec:
  endpoint: scoring
  window: PT1H
  burn_window: PT5M
  objectives:
    - {sli: availability, target: 0.995}
    - {sli: latency, threshold_ms: 350, target: 0.95}
---
apiVersion: specops/v1
kind: Gate
metadata: {name: release-freeze}
spec:
  checks:
    - {slo: scoring-slo, objective: availability}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The example's committed Project, Dataset, Pipeline and Gate, plus the endpoint, SLO and freeze gate above."""
    (tmp_path / "specs").mkdir()
    for part in ("project.yaml", "data", "gates", "pipelines"):  # not endpoints/: the tests declare their own
        source = REPO / "specs" / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / "specs" / part)
    without_feedback(tmp_path / "specs" / "pipelines" / "training.yaml")  # it names the example's Endpoint
    (tmp_path / "specs" / "slo.yaml").write_text(SPECS)
    return tmp_path


def record(t: float, latency_ms: float = 10.0, *, deployment: str = "blue", prediction: Any = 1, label: Any = None,
           row: int = 0, shadow: bool = False, inputs: dict[str, Any] | None = None, request_id: str | None = None) -> dict[str, Any]:
    """One inference-log line as the server writes it (label joined as read_log joins feedback)."""
    r = {"time": t, "request_id": request_id or f"r{t}-{row}", "row": row, "deployment": deployment, "model": "credit-risk",
         "version": "1", "shadow": shadow, "inputs": inputs or {}, "prediction": prediction, "latency_ms": latency_ms}
    if label is not None:
        r["label"] = label
    return r


def write_log(root: Path, records: list[dict[str, Any]]) -> None:
    """Requests and their feedback, in the server's files: each in the file of the hour it was written in."""
    folder = ProjectPaths(root).endpoint(ENDPOINT) / "inference"
    folder.mkdir(parents=True, exist_ok=True)
    for r in records:
        hour = time.strftime("%Y%m%d%H", time.gmtime(r["time"]))
        with (folder / f"requests-{hour}-0.jsonl").open("a") as out:
            out.write(json.dumps({k: v for k, v in r.items() if k != "label"}) + "\n")
        if "label" in r:
            with (folder / f"feedback-{hour}-0.jsonl").open("a") as out:
                out.write(json.dumps({"request_id": r["request_id"], "label": r["label"], "time": r["time"]}) + "\n")


def write_scrapes(root: Path, samples: list[tuple[float, float, float]], deployment: str = "blue") -> None:
    """(time, cumulative good, cumulative bad) scrapes of one deployment's counters."""
    for at, good, bad in samples:
        history.append_sample(LocalStorage(ProjectPaths(root).state_dir), ENDPOINT, {deployment: {"good": good, "bad": bad}}, at=at)
