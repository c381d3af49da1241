"""What the rollout engine needs from a platform: a traffic router and live metrics.

One engine (`specops.rollout.engine.Rollout`) walks every rollout, on the
local server and on Azure ML alike: the same steps, the same analysis and
Inconclusive semantics, the same canary split, the same record, incidents and
audit trail. What differs is behind these two small interfaces, one
implementation each in `specops.rollout.local` (the local server's traffic
file and /metrics, the inference log's labels) and
`specops.backends.azure_rollout` (the online endpoint's traffic through
`MLClient`, Azure Monitor's metrics). A backend hands them out with
`rollout_ports(endpoint)`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from specops.rollout.loadtest import LoadTestResult
from specops.rollout.metrics import AbsoluteErrors, Traffic
from specops.spec.endpoints import LoadTest

Window = dict[str, Any]  # where an analysis window starts: {"time": epoch seconds, ...what the platform needs}


@dataclass(frozen=True)
class Observed:
    """What one deployment answered within a window, and the labels fed back for those answers."""

    traffic: Traffic
    labelled: int = 0
    correct: int = 0
    errors: AbsoluteErrors = AbsoluteErrors()  # a regression's answers: how far from their labels


class TrafficRouter(Protocol):
    def versions(self) -> dict[str, str | None]:
        """Each deployment and the model version it serves (None: not ready)."""

    def traffic(self) -> dict[str, int]:
        """The live weights, deployments without traffic left out."""

    def mirror(self) -> dict[str, int]:
        """The live mirrored (shadow) shares."""

    def route(self, weights: dict[str, int], mirror: dict[str, int]) -> None:
        """Send live traffic (and mirrored copies) by these weights, now."""

    def set_champion(self, model: str, version: str) -> None:
        """Mark `version` of `model` as the champion in the platform's registry."""


class LiveMetrics(Protocol):
    # The metrics `observe` can measure; None: all the analysis knows. Checks on others are skipped, and said so.
    measures: frozenset[str] | None
    poll_s: float  # how often waiting for samples looks again

    def mark(self) -> Window:
        """The start of a window, from now."""

    def observe(self, window: Window, deployment: str, shadow: bool = False) -> Observed:
        """What `deployment` answered since the window started (its mirrored copies if `shadow`)."""


class LoadTester(Protocol):
    def run(self, window: Window, deployment: str, spec: LoadTest) -> tuple[LoadTestResult, Window]:
        """Load `deployment`; return the result and the window with the synthetic requests left out."""


@dataclass(frozen=True)
class RolloutPorts:
    router: TrafficRouter
    metrics: LiveMetrics
    load_tester: LoadTester | None = None  # None: the platform has no load test (a step says so and goes on)
    where: str = "local"  # the backend's name, for records and messages
    max_wait_s: float = 60.0  # longest an analysis waits for min_samples before it judges
