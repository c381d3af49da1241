"""The inference log: a sampled, append-only record of what each deployment answered.

JSON lines under .specops/endpoints/<name>/inference/, one file per kind, worker
process and UTC hour: requests-<YYYYMMDDHH>-<worker>.jsonl, one write per
request, and feedback-<YYYYMMDDHH>-<worker>.jsonl, ground-truth labels by
request id (workers never interleave writes; old hours can be dropped whole,
as Azure ML's data collector partitions by hour). `read_log` joins the two,
reading only the hours a window needs. Monitors, SLOs and rollout analysis
read this.
"""
from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def log_dir(state_dir: Path | str) -> Path:
    return Path(state_dir) / "inference"


_APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND


class _HourlyFile:
    """One kind of record's file for the current UTC hour, opened again when the hour turns."""

    def __init__(self, folder: Path, kind: str, worker: int):
        self._prefix, self._suffix = folder / f"{kind}-", f"-{worker}.jsonl"
        self._hour, self._fd = -1, -1

    def append(self, lines: str, at: float) -> None:
        hour = int(at // 3600)
        if hour != self._hour:
            if self._fd >= 0:
                os.close(self._fd)
            self._fd = os.open(f"{self._prefix}{_stamp(hour)}{self._suffix}", _APPEND, 0o600)
            self._hour = hour
        os.write(self._fd, lines.encode())


class InferenceLog:
    """One worker's writer. A record goes into the file of the hour it is written in, which is never
    before the hour of its `time` (taken when the request was answered): `read_log` relies on that."""

    def __init__(self, state_dir: Path | str, worker: int):
        folder = log_dir(state_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self._requests = _HourlyFile(folder, "requests", worker)
        self._feedback = _HourlyFile(folder, "feedback", worker)

    @staticmethod
    def sampled(rate: float) -> bool:
        return rate >= 1.0 or (rate > 0.0 and random.random() < rate)

    def write_requests(self, records: list[dict[str, Any]]) -> None:
        if records:
            self._requests.append("".join(json.dumps(r, default=str) + "\n" for r in records), time.time())

    def write_feedback(self, labels: list[dict[str, Any]]) -> None:
        if labels:
            now = time.time()  # one clock for the label's time and its file's hour
            self._feedback.append("".join(json.dumps({**label, "time": now}) + "\n" for label in labels), now)


def read_log(state_dir: Path | str, since: float | None = None) -> list[dict[str, Any]]:
    """Every logged request with time >= `since` (epoch seconds; None: all), oldest first, with `label`
    from feedback where some arrived (the latest wins).

    Files of hours before `since`'s are not opened: their requests were answered before that hour,
    and a label arrives after its request, so their feedback is for those. A legacy
    feedback-<worker>.jsonl (one file for all hours, before hourly feedback) is always read.
    """
    folder = log_dir(state_dir)
    first = "" if since is None else _stamp(int(since // 3600))
    feedback = sorted(_lines(folder, "feedback", first), key=lambda f: f["time"])
    labels = {f["request_id"]: f["label"] for f in feedback}
    records = sorted((r for r in _lines(folder, "requests", first) if since is None or r["time"] >= since),
                     key=lambda r: r["time"])
    for record in records:
        if record["request_id"] in labels:
            record["label"] = labels[record["request_id"]]
    return records


def _stamp(hour: int) -> str:
    """A file name's hour: YYYYMMDDHH, UTC, so names sort (and compare) in time order."""
    return time.strftime("%Y%m%d%H", time.gmtime(hour * 3600))


def _lines(folder: Path, kind: str, first_hour: str) -> Iterator[dict[str, Any]]:
    """The records of `kind`'s files from `first_hour` on (and of an hourless legacy file), in name order."""
    for path in sorted(folder.glob(f"{kind}-*.jsonl")):
        parts = path.stem.split("-")  # kind, hour, worker; a legacy file has no hour
        if len(parts) == 2 or parts[1] >= first_hour:
            yield from _read(path)


def _read(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.endswith("\n"):  # a line still being written by a live worker is skipped
                yield json.loads(line)
