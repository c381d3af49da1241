"""Retraining events and their durable queue.

Every event has an id derived from what caused it (the cron fire time, the
data hash, the monitor window), so the same cause never queues twice. The
queue is an append-only log of status changes: an event that was started but
never finished (the controller died) is still pending after a restart.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from specops.core.clock import now
from specops.core.paths import STATE_DIR

# The blueprint's order: drift first, then performance, then staleness; other causes after.
REASONS = ("drift", "performance", "stale", "data_change", "schedule", "manual")
PENDING, STARTED, DONE, FAILED, COALESCED = "pending", "started", "done", "failed", "coalesced"


@dataclass(frozen=True)
class Event:
    id: str
    pipeline: str
    reason: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown trigger reason {self.reason!r}; expected one of {', '.join(REASONS)}")

    @property
    def priority(self) -> int:
        return REASONS.index(self.reason)


class EventQueue:
    def __init__(self, root: Path):
        self.path = root / STATE_DIR / "controller" / "events.jsonl"

    def _records(self) -> Iterator[dict]:
        if self.path.exists():
            with self.path.open(encoding="utf-8") as handle:
                yield from (json.loads(line) for line in handle if line.strip())

    def _append(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"time": now(), **record}, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def statuses(self) -> dict[str, tuple[Event, str]]:
        latest: dict[str, tuple[Event, str]] = {}
        for record in self._records():
            event = Event(**record["event"]) if "event" in record else latest[record["id"]][0]
            latest[event.id] = (event, record["status"])
        return latest

    def offer(self, event: Event) -> bool:
        """Queue an event unless one with the same id was ever queued; True when it was new."""
        if event.id in self.statuses():
            return False
        self._append({"event": asdict(event), "status": PENDING})
        return True

    def mark(self, event: Event, status: str, note: str = "") -> None:
        self._append({"id": event.id, "status": status, **({"note": note} if note else {})})

    def pending(self) -> list[Event]:
        """Events still to run, most urgent first; started-but-unfinished ones count (a crash)."""
        waiting = [event for event, status in self.statuses().values() if status in (PENDING, STARTED)]
        return sorted(waiting, key=lambda e: (e.priority, e.id))
