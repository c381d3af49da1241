"""The durable rollout record: one JSON file per endpoint, rewritten atomically at every transition.

Whatever drives a rollout (the CLI, the controller, a test) may die at any
moment. The record is written *before* traffic moves to where it says, and
moving traffic is idempotent, so `Rollout.resume` can always redo the step the
record names: a rollout is never half-way without a record saying so.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from specops.core.clock import now
from specops.core.files import atomic_write
from specops.core.locks import serialized
from specops.errors import SpecopsError
from specops.serving.config import endpoint_dir

# Argo Rollouts' phases. ABORTED is transient: an abort has begun and traffic may
# not be back on stable yet; finishing it (or resuming it) leaves DEGRADED.
PROGRESSING, PAUSED, HEALTHY, DEGRADED, ABORTED = "Progressing", "Paused", "Healthy", "Degraded", "Aborted"
ACTIVE = (PROGRESSING, PAUSED, ABORTED)  # a rollout in these states still owns the endpoint's traffic


@dataclass
class RolloutRecord:
    endpoint: str
    strategy: str
    stable: str  # deployment names
    canary: str
    model: str  # registered model name both deployments serve
    stable_version: str | None
    canary_version: str | None
    status: str = PROGRESSING
    step: int = 0  # index of the next step to run (canary), or the phase (blue-green)
    weights: dict[str, int] = field(default_factory=dict)
    mirror: dict[str, int] = field(default_factory=dict)
    window: dict[str, Any] = field(default_factory=dict)  # {"time": t, "metrics": snapshot} where analysis counts from
    analyses: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    incident: str | None = None  # open incident id while DEGRADED
    started_at: str = field(default_factory=now)
    finished_at: str | None = None  # promotion or rollback time (the undo window counts from here)
    previous: dict[str, Any] | None = None  # what was stable before a promotion, for `undo`
    extra: dict[str, Any] = field(default_factory=dict)  # strategy-specific facts (scale-down time, bandit rewards)
    revision: int = 0  # bumped by every save: a writer holding an older copy is refused

    def log(self, event: str, **detail: Any) -> None:
        self.history.append({"time": now(), "event": event, **detail})


def record_path(root: Path, endpoint: str) -> Path:
    return endpoint_dir(root, endpoint) / "rollout.json"


def load_record(root: Path, endpoint: str) -> RolloutRecord | None:
    path = record_path(root, endpoint)
    if not path.exists():
        return None
    try:
        return RolloutRecord(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise SpecopsError(f"rollout record {path} is unreadable ({exc}); inspect it before deleting it") from None


class RecordChanged(SpecopsError):
    """Another process (a person's `rollout abort`, say) changed the rollout since this copy was read."""


def save_record(root: Path, record: RolloutRecord) -> None:
    """Compare-and-swap: write only if the file is still the revision this copy was read at."""
    path = record_path(root, record.endpoint)
    with serialized(path.with_name(path.name + ".lock")):
        current = load_record(root, record.endpoint)
        if current is not None and current.revision != record.revision:
            raise RecordChanged(f"the rollout of {record.endpoint} changed meanwhile: it is now {current.status}"
                                f"{' (' + current.message + ')' if current.message else ''}")
        record.revision += 1
        atomic_write(path, json.dumps(asdict(record), indent=2, default=str))
