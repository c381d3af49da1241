"""One clock for every record specops writes: UTC, ISO 8601, whole seconds."""
from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def now() -> str:
    """The current time as it is written into state, audit and rollout records."""
    return utcnow().isoformat(timespec="seconds")


def epoch(iso: str | None) -> float:
    """Seconds since the epoch of a recorded time; 0 for none."""
    return datetime.fromisoformat(iso).timestamp() if iso else 0.0
