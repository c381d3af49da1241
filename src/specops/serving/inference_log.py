"""The inference log: a sampled, append-only record of what each deployment answered.

JSON lines under .specops/endpoints/<name>/inference/, one file per worker
process and UTC hour, requests-<YYYYMMDDHH>-<worker>.jsonl (workers never
interleave writes; old hours can be dropped whole, as Azure ML's data collector
partitions by hour), one write per request. Feedback (ground-truth labels by
request id) goes to feedback-<worker>.jsonl beside it; `read_log` joins the
two. Monitors and rollout analysis read this.
"""
from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any, Iterator


def log_dir(state_dir: Path | str) -> Path:
    return Path(state_dir) / "inference"


_APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND


class InferenceLog:
    def __init__(self, state_dir: Path | str, worker: int):
        self._folder = log_dir(state_dir)
        self._folder.mkdir(parents=True, exist_ok=True)
        self._worker = worker
        self._hour = -1
        self._requests = -1
        self._feedback = os.open(self._folder / f"feedback-{worker}.jsonl", _APPEND, 0o600)

    @staticmethod
    def sampled(rate: float) -> bool:
        return rate >= 1.0 or (rate > 0.0 and random.random() < rate)

    def write_requests(self, records: list[dict[str, Any]]) -> None:
        if records:
            os.write(self._requests_file(), "".join(json.dumps(r, default=str) + "\n" for r in records).encode())

    def _requests_file(self) -> int:
        hour = int(time.time() // 3600)
        if hour != self._hour:
            if self._requests >= 0:
                os.close(self._requests)
            stamp = time.strftime("%Y%m%d%H", time.gmtime(hour * 3600))
            self._requests = os.open(self._folder / f"requests-{stamp}-{self._worker}.jsonl", _APPEND, 0o600)
            self._hour = hour
        return self._requests

    def write_feedback(self, labels: list[dict[str, Any]]) -> None:
        now = time.time()
        os.write(self._feedback, "".join(json.dumps({**label, "time": now}) + "\n" for label in labels).encode())


def read_log(state_dir: Path | str) -> list[dict[str, Any]]:
    """Every logged request, oldest first, with `label` from feedback where some arrived (the latest wins)."""
    folder = log_dir(state_dir)
    labels = {f["request_id"]: f["label"] for f in sorted(_lines(folder, "feedback-*.jsonl"), key=lambda f: f["time"])}
    records = sorted(_lines(folder, "requests-*.jsonl"), key=lambda r: r["time"])
    for record in records:
        if record["request_id"] in labels:
            record["label"] = labels[record["request_id"]]
    return records


def _lines(folder: Path, pattern: str) -> Iterator[dict[str, Any]]:
    for path in sorted(folder.glob(pattern)):
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if line.endswith("\n"):  # a line still being written by a live worker is skipped
                    yield json.loads(line)
