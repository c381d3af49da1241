"""The inference log: a sampled, append-only record of what each deployment answered.

JSON lines under .specops/endpoints/<name>/inference/, one file per kind, worker
process and UTC hour: requests-<YYYYMMDDHH>-<worker>.jsonl, one write per
request, and feedback-<YYYYMMDDHH>-<worker>.jsonl, ground-truth labels by
request id (workers never interleave writes; old hours can be dropped whole,
as Azure ML's data collector partitions by hour). `read_log` joins the two,
reading only the hours a window needs. Monitors, SLOs and rollout analysis
read this.

Rotation and retention (the Endpoint's server.inference_log): past
`rotate_bytes` a worker continues the hour in requests-<hour>-<worker>-<n>.jsonl
(readers take every file of an hour, so they see rotated ones); each time a
worker opens a file it deletes files of hours older than `retention_s`, then
the oldest hours while all files together exceed `max_bytes`. The current
hour's files are never deleted (workers are writing them).
"""
from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def log_dir(state_dir: Path | str) -> Path:
    return Path(state_dir) / "inference"


_APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND


@dataclass(frozen=True)
class Retention:
    rotate_bytes: int = 64 << 20
    max_bytes: int = 2048 << 20
    retention_s: float = 35 * 86400


class _HourlyFile:
    """One kind of record's file for the current UTC hour, opened again when the hour turns or it grows past
    `rotate_bytes` (then as the hour's next segment)."""

    def __init__(self, folder: Path, kind: str, worker: int, retention: Retention):
        self._folder, self._kind, self._worker, self._retention = folder, kind, worker, retention
        self._hour, self._segment, self._size, self._fd = -1, 0, 0, -1

    def append(self, lines: str, at: float) -> None:
        data = lines.encode()
        hour = int(at // 3600)
        if hour != self._hour:
            self._open(hour, 0)
        elif self._size and self._size + len(data) > self._retention.rotate_bytes:
            self._open(hour, self._segment + 1)
        os.write(self._fd, data)
        self._size += len(data)

    def _open(self, hour: int, segment: int) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        name = f"{self._kind}-{_stamp(hour)}-{self._worker}{f'-{segment}' if segment else ''}.jsonl"
        self._fd = os.open(self._folder / name, _APPEND, 0o600)
        # A restarted worker appends to the hour's file it left: count what is there already.
        self._hour, self._segment, self._size = hour, segment, os.fstat(self._fd).st_size
        prune(self._folder, self._retention, hour * 3600.0)


def prune(folder: Path, retention: Retention, now: float) -> list[Path]:
    """Delete log files past the retention age, then the oldest hours past the size cap; never `now`'s hour.
    Returns what was deleted. Several workers may prune at once: a file another one deleted is skipped."""
    current, cutoff = _stamp(int(now // 3600)), _stamp(int((now - retention.retention_s) // 3600))
    files = []
    for path in folder.glob("*.jsonl"):
        parts = path.stem.split("-")  # kind, hour, worker[, segment]; a legacy file has no hour
        try:
            size = path.stat().st_size
            hour = parts[1] if len(parts) > 2 else _stamp(int(path.stat().st_mtime // 3600))
        except OSError:
            continue
        if hour < current:
            files.append((hour, path.name, path, size))
    files.sort()
    total = sum(f[3] for f in files) + sum(_size(p) for p in folder.glob(f"*-{current}-*.jsonl"))
    deleted = []
    for hour, _, path, size in files:
        if hour >= cutoff and total <= retention.max_bytes:
            break
        path.unlink(missing_ok=True)
        deleted.append(path)
        total -= size
    return deleted


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class InferenceLog:
    """One worker's writer. A record goes into the file of the hour it is written in, which is never
    before the hour of its `time` (taken when the request was answered): `read_log` relies on that."""

    def __init__(self, state_dir: Path | str, worker: int, retention: Retention | None = None):
        folder = log_dir(state_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self._requests = _HourlyFile(folder, "requests", worker, retention or Retention())
        self._feedback = _HourlyFile(folder, "feedback", worker, retention or Retention())

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
        parts = path.stem.split("-")  # kind, hour, worker[, segment]; a legacy file has no hour
        if len(parts) == 2 or parts[1] >= first_hour:
            try:
                yield from _read(path)
            except FileNotFoundError:  # deleted by a worker's retention between the listing and the read
                continue


def _read(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.endswith("\n"):  # a line still being written by a live worker is skipped
                yield json.loads(line)
