"""The typed records the state store keeps: an applied resource, and an endpoint's rollout.

Both are saved inside one environment's state file (state/store.py), so every
writer commits through one path and `status` reads one truth.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from specops.core.clock import now

# Argo Rollouts' phases. ABORTED is transient: an abort has begun and traffic may
# not be back on stable yet; finishing it (or resuming it) leaves DEGRADED.
PROGRESSING, PAUSED, HEALTHY, DEGRADED, ABORTED = "Progressing", "Paused", "Healthy", "Degraded", "Aborted"
ACTIVE = (PROGRESSING, PAUSED, ABORTED)  # a rollout in these states still owns the endpoint's traffic


@dataclass
class AppliedResource:
    """One resource as the last commit left it: the fields it was applied with and what that produced."""

    fields: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    applied_at: str = field(default_factory=now)
    serial: int = 0  # the state serial of the commit that wrote it


@dataclass
class RolloutRecord:
    """One endpoint's rollout: written before traffic moves, so `resume` can always redo the step it names."""

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
    extra: dict[str, Any] = field(default_factory=dict)  # strategy-specific facts (bandit rewards, scale-down)
    revision: int = 0  # bumped by every save: a writer holding an older copy is refused

    def log(self, event: str, **detail: Any) -> None:
        self.history.append({"time": now(), "event": event, **detail})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RolloutRecord:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown rollout record fields {', '.join(unknown)}")
        return cls(**data)
