"""Resources and the operations that turn actual state into desired state."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from specops.errors import SpecopsError


def digest(fields: dict[str, Any] | None) -> str | None:
    if fields is None:
        return None
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Resource:
    kind: str
    name: str
    fields: dict[str, Any]
    depends_on: tuple[str, ...] = ()
    # Fields the backend observes live (e.g. whether a pipeline's outputs are current);
    # compared like any other field but never stored, since reality is their source of truth.
    live: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def stored_fields(self) -> dict[str, Any]:
        return {k: v for k, v in self.fields.items() if k not in self.live}


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"

    @property
    def symbol(self) -> str:
        return {"create": "+", "update": "~", "delete": "-"}[self.value]


@dataclass(frozen=True)
class Change:
    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Cause:
    """One reason a pipeline's outputs are stale: an input of `stage` that changed since its last run.

    kind: params | spec | data | code | command | outputs; path: the parameter, spec field or file.
    """

    stage: str
    kind: str
    path: str
    old: Any = None
    new: Any = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "kind": self.kind, "path": self.path, "old": self.old, "new": self.new,
                "note": self.note}


@dataclass(frozen=True)
class Operation:
    action: Action
    kind: str
    name: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    changes: tuple[Change, ...] = ()
    resource: Resource | None = None
    causes: tuple[Cause, ...] = ()  # why live fields differ (a pipeline's stale outputs), when the backend knows

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def desired(self) -> dict[str, Any]:
        """The fields a create or update brings about (`after`, which only a delete lacks)."""
        if self.after is None:
            raise SpecopsError(f"{self.key}: a delete has no desired fields")
        return self.after


@dataclass
class Plan:
    env: str
    backend: str
    operations: list[Operation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    serial: int | None = None  # the state serial the plan was computed on (a saved plan is refused once it moved)

    @property
    def empty(self) -> bool:
        return not self.operations

    def count(self, action: Action) -> int:
        return sum(1 for op in self.operations if op.action is action)

    def summary(self) -> str:
        if self.empty:
            return f"No changes. {self.env} matches the specs."
        return (
            f"Plan: {self.count(Action.CREATE)} to create, {self.count(Action.UPDATE)} to update, "
            f"{self.count(Action.DELETE)} to delete."
        )
