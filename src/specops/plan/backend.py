"""The interface every backend implements; `local` and `azureml` are the two (specops.backends)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from specops.plan.model import Cause, Operation, Resource
from specops.spec import SpecSet

Reporter = Callable[[str], None]


def quiet(_: str) -> None:
    """The reporter for callers that want no progress lines."""


class Backend(Protocol):
    name: str

    def desired(self, specs: SpecSet) -> list[Resource]:
        """What the specs ask for, as resources with dependencies."""

    def observe(self, specs: SpecSet, stored: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """What is there now: stored fields plus live observations."""

    def causes(self) -> dict[str, tuple[Cause, ...]]:
        """Why the last `observe` found live fields off (resource key -> causes); empty where it cannot say."""

    def apply(self, op: Operation, specs: SpecSet, report: Reporter) -> dict[str, Any]:
        """Carry out one operation; return outputs worth recording (e.g. a model version)."""

    def records_only(self, op: Operation) -> bool:
        """True when the operation changes nothing outside specops' own state."""

    def notes(self, specs: SpecSet) -> list[str]:
        """Things the plan reader should know (e.g. features this backend lacks)."""

    def rollout_ports(self, endpoint: str) -> Any:
        """The traffic router and live metrics the rollout engine drives on this backend
        (a specops.rollout.ports.RolloutPorts; typed there, a layer up)."""
