"""What is deployed in one environment: the one record every writer commits to.

`.specops/state/<env>.json` holds a serial number, every applied resource (the
fields it was applied with, what that produced, when) and every endpoint's
rollout record. Writers (apply, the controller's retrains, each rollout
transition) change it only through `transaction`, which holds the
environment's state lock for one read-modify-write and bumps the serial: two
writers never lose each other's changes, and a reader can tell that state
moved since it looked. The file is replaced atomically, so a crash leaves it
exactly as true as the commits that finished; it is validated on every read.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from specops.core.files import atomic_write
from specops.core.locks import serialized
from specops.core.paths import ProjectPaths
from specops.errors import SpecopsError
from specops.state.records import AppliedResource, RolloutRecord


class RecordChanged(SpecopsError):
    """Another process (a person's `rollout abort`, say) changed the rollout since this copy was read."""


@dataclass
class State:
    serial: int = 0
    resources: dict[str, AppliedResource] = field(default_factory=dict)
    rollouts: dict[str, RolloutRecord] = field(default_factory=dict)

    def fields(self) -> dict[str, dict[str, Any]]:
        return {key: entry.fields for key, entry in self.resources.items()}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)


class StateStore:
    def __init__(self, paths: ProjectPaths, env: str):
        self.path = paths.state_file(env)
        self._lock = paths.state_lock(env)

    def read(self) -> State:
        """A fresh snapshot (another process may have committed since the last one)."""
        if not self.path.exists():
            return State()
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return State(serial=data.get("serial", 0),
                         resources={k: AppliedResource(**v) for k, v in data.get("resources", {}).items()},
                         rollouts={k: RolloutRecord.from_dict(v) for k, v in data.get("rollouts", {}).items()})
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise SpecopsError(f"state file {self.path} is unreadable ({exc}); restore it from a backup or inspect "
                               f"it before deleting it (the next apply would then start from nothing)") from None

    @contextmanager
    def transaction(self) -> Iterator[State]:
        """Read, let the caller change, write with the next serial; nothing is written if the caller raises."""
        with serialized(self._lock):
            state = self.read()
            yield state
            state.serial += 1
            atomic_write(self.path, state.to_json())

    def put(self, key: str, fields: dict[str, Any], outputs: dict[str, Any] | None = None) -> int:
        with self.transaction() as state:
            state.resources[key] = AppliedResource(fields, outputs or {}, serial=state.serial + 1)
        return state.serial

    def remove(self, key: str) -> int:
        with self.transaction() as state:
            state.resources.pop(key, None)
        return state.serial

    def rollout(self, endpoint: str) -> RolloutRecord | None:
        return self.read().rollouts.get(endpoint)

    def save_rollout(self, record: RolloutRecord) -> None:
        """Compare-and-swap on the record's revision; the endpoint's applied outputs follow its traffic and status."""
        with self.transaction() as state:
            current = state.rollouts.get(record.endpoint)
            if current is not None and current.revision != record.revision:
                raise RecordChanged(f"the rollout of {record.endpoint} changed meanwhile: it is now {current.status}"
                                    f"{' (' + current.message + ')' if current.message else ''}")
            record.revision += 1
            state.rollouts[record.endpoint] = record
            applied = state.resources.get(f"Endpoint/{record.endpoint}")
            if applied is not None:
                applied.outputs.update(traffic=dict(record.weights), mirror_traffic=dict(record.mirror), rollout=record.status)
                applied.serial = state.serial + 1
