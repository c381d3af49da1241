"""What is deployed in one environment: the one record every writer commits to.

`state/<env>.json` in the environment's storage (.specops/ or a blob container,
state/storage.py) holds a serial number, every applied resource (the fields it
was applied with, what that produced, when) and every endpoint's rollout
record. Writers (apply, the controller's retrains, each rollout transition)
change it only through `update`, one atomic read-modify-write that bumps the
serial (a file lock locally, an ETag condition in a blob): two writers never
lose each other's changes, and a reader can tell that state moved since it
looked. The document is replaced whole, so a crash leaves it exactly as true
as the commits that finished; it is validated on every read.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar

from specops.core.paths import ProjectPaths
from specops.errors import SpecopsError
from specops.state.records import AppliedResource, RolloutRecord
from specops.state.storage import Storage

T = TypeVar("T")


class RecordChanged(SpecopsError):
    """Another process (a person's `rollout abort`, say) changed the rollout since this copy was read."""


@dataclass
class State:
    serial: int = 0
    resources: dict[str, AppliedResource] = field(default_factory=dict)
    rollouts: dict[str, RolloutRecord] = field(default_factory=dict)
    # model -> the version this environment's rollouts promoted, where versions come from a registry (Azure ML
    # registries have no tags for specops to move): what `@champion` stands for there.
    champions: dict[str, str] = field(default_factory=dict)

    def fields(self) -> dict[str, dict[str, Any]]:
        return {key: entry.fields for key, entry in self.resources.items()}

    def to_json(self) -> str:
        """Strict JSON: a NaN or infinity (which json.dumps would write as bare NaN/Infinity, readable by Python
        only) is refused, naming where it is, before anything is written."""
        data = asdict(self)
        try:
            return json.dumps(data, indent=2, sort_keys=True, default=str, allow_nan=False)
        except ValueError:
            raise SpecopsError(f"refusing to write state with a non-finite number at {_non_finite(data)}") from None


def _non_finite(value: Any, path: str = "") -> str:
    """The dotted path of the first NaN or infinity in `value` ('' when there is none)."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "(top)"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _non_finite(item, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else str(key))
        if found:
            return found
    return ""


class StateStore:
    def __init__(self, storage: Storage, env: str):
        self.storage = storage
        self.name = ProjectPaths.relative(lambda p: p.state_file(env))

    def read(self) -> State:
        """A fresh snapshot (another process may have committed since the last one)."""
        return self._parse(self.storage.read(self.name))

    def _parse(self, text: str | None) -> State:
        if text is None:
            return State()
        try:
            data = json.loads(text)
            return State(serial=data.get("serial", 0),
                         resources={k: AppliedResource(**v) for k, v in data.get("resources", {}).items()},
                         rollouts={k: RolloutRecord.from_dict(v) for k, v in data.get("rollouts", {}).items()},
                         champions={str(k): str(v) for k, v in data.get("champions", {}).items()})
        except (ValueError, TypeError, AttributeError) as exc:
            raise SpecopsError(f"state {self.storage.describe(self.name)} is unreadable ({exc}); restore it from a backup or "
                               f"inspect it before deleting it (the next apply would then start from nothing)") from None

    def update(self, change: Callable[[State], T]) -> tuple[T, int]:
        """Read, let `change` change the state, write it with the next serial; returns what `change` returned and
        the serial written. Nothing is written if `change` raises; it may run again on a fresher copy."""
        done: list[tuple[T, int]] = []

        def changed(text: str | None) -> str:
            done.clear()
            state = self._parse(text)
            result = change(state)
            state.serial += 1
            done.append((result, state.serial))
            return state.to_json()

        self.storage.update(self.name, changed)
        return done[-1]

    def put(self, key: str, fields: dict[str, Any], outputs: dict[str, Any] | None = None) -> int:
        def put(state: State) -> None:
            state.resources[key] = AppliedResource(fields, dict(outputs or {}), serial=state.serial + 1)

        return self.update(put)[1]

    def remove(self, key: str) -> int:
        return self.update(lambda state: state.resources.pop(key, None))[1]

    def champion(self, model: str) -> str | None:
        return self.read().champions.get(model)

    def set_champion(self, model: str, version: str) -> None:
        self.update(lambda state: state.champions.__setitem__(model, version))

    def rollout(self, endpoint: str) -> RolloutRecord | None:
        return self.read().rollouts.get(endpoint)

    def save_rollout(self, record: RolloutRecord) -> None:
        """Compare-and-swap on the record's revision; the endpoint's applied outputs follow its traffic and status."""
        def save(state: State) -> int:
            current = state.rollouts.get(record.endpoint)
            if current is not None and current.revision != record.revision:
                raise RecordChanged(f"the rollout of {record.endpoint} changed meanwhile: it is now {current.status}"
                                    f"{' (' + current.message + ')' if current.message else ''}")
            saved = replace(record, revision=record.revision + 1)  # `record` itself only once the write landed
            state.rollouts[record.endpoint] = saved
            applied = state.resources.get(f"Endpoint/{record.endpoint}")
            if applied is not None:
                applied.outputs.update(traffic=dict(record.weights), mirror_traffic=dict(record.mirror), rollout=record.status)
                applied.serial = state.serial + 1
            return saved.revision

        record.revision = self.update(save)[0]
