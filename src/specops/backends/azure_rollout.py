"""The rollout ports of the Azure ML backend: an online endpoint's traffic through `MLClient`, Azure Monitor's metrics.

The rollout engine (specops.rollout.engine) walks an Azure canary exactly as it
walks a local one; only these two differ. Azure Monitor measures requests,
server-side errors and p95 latency, in whole minutes: there are no labels, so
accuracy checks are skipped (and said so), and a window holds data only once a
whole minute of it has been ingested.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from specops.backends.azure_metrics import GRAIN, EndpointMetrics
from specops.errors import SpecopsError
from specops.plan.backend import Reporter, quiet
from specops.registry import ALIAS_TAG, CHAMPION
from specops.rollout.ports import Observed, Window

if TYPE_CHECKING:
    from specops.backends.azureml import AzureMLBackend
    from specops.spec import SpecSet

LIVE_METRICS = frozenset({"requests", "error_rate", "p95_latency_ms"})  # what Azure Monitor measures
# On the model version the champion is: Azure ML has no registry aliases (the tag registry.connect reads there).
CHAMPION_TAG = ALIAS_TAG.format(alias=CHAMPION)


class AzureRouter:
    def __init__(self, backend: AzureMLBackend, specs: SpecSet, endpoint: str, report: Reporter = quiet):
        self.backend, self.specs, self.endpoint, self.report = backend, specs, endpoint, report

    def versions(self) -> dict[str, str | None]:
        client = self.backend.client(self.specs)
        found = self.backend.call("OnlineDeployment", self.endpoint, lambda: list(client.online_deployments.list(self.endpoint)))
        return {d.name: model_version(d.model) for d in found}

    def traffic(self) -> dict[str, int]:
        client = self.backend.client(self.specs)
        live = self.backend.call("OnlineEndpoint", self.endpoint, lambda: client.online_endpoints.get(self.endpoint))
        return {name: weight for name, weight in (live.traffic or {}).items() if weight}

    def mirror(self) -> dict[str, int]:
        client = self.backend.client(self.specs)
        live = self.backend.call("OnlineEndpoint", self.endpoint, lambda: client.online_endpoints.get(self.endpoint))
        return {name: share for name, share in (live.mirror_traffic or {}).items() if share}

    def route(self, weights: dict[str, int], mirror: dict[str, int]) -> None:
        self.backend.set_traffic(self.specs, self.endpoint, weights, mirror)

    def set_champion(self, model: str, version: str) -> None:
        """The champion tag moves to `version`: set there first, then taken off the others; the environments
        promoted from this one get it through their registry. Where versions come from a registry, the
        environment's state says which is its champion (specops moves no tags in a registry)."""
        if self.specs.project.spec.environments[self.specs.env].promotion is not None:
            self.backend.project.state.set_champion(model, version)
            return
        self._move_champion_tag(model, version)
        try:
            self.backend.share(self.specs, model, version, self.report)
            self.backend.withdraw_newer(self.specs, model, version, self.report)
        except SpecopsError as exc:  # the promotion stands; the next plan shares it (RegistryModel)
            self.report(f"RegistryModel/{model}: the registry is not in step with v{version} yet ({exc}); "
                        "the next apply shares it")

    def _move_champion_tag(self, model: str, version: str) -> None:
        client = self.backend.client(self.specs)
        models = client.models
        chosen = self.backend.call("Model", model, lambda: models.get(model, version=version))
        if (chosen.tags or {}).get(CHAMPION_TAG) != "true":
            chosen.tags = {**(chosen.tags or {}), CHAMPION_TAG: "true"}
            self.backend.call("Model", model, lambda: models.create_or_update(chosen))
        for other in self.backend.call("Model", model, lambda: list(models.list(name=model))):
            if str(other.version) != str(version) and (other.tags or {}).get(CHAMPION_TAG) == "true":
                other.tags = {k: v for k, v in other.tags.items() if k != CHAMPION_TAG}
                self._save(other)

    def _save(self, model: Any) -> None:
        self.backend.call("Model", model.name, lambda: self.backend.client(self.specs).models.create_or_update(model))


class AzureLiveMetrics:
    measures: frozenset[str] | None = LIVE_METRICS
    poll_s = GRAIN.total_seconds()  # a new point each minute

    def __init__(self, metrics: EndpointMetrics, endpoint: str, clock: Callable[[], datetime],
                 sleep: Callable[[float], None]):
        self.metrics, self.endpoint, self.clock, self.sleep = metrics, endpoint, clock, sleep

    def mark(self) -> Window:
        return {"time": self.clock().timestamp()}

    def observe(self, window: Window, deployment: str, shadow: bool = False) -> Observed:
        """Azure Monitor's window; a window younger than a minute is waited out first (it would hold nothing).

        Azure Monitor has no per-deployment count of mirrored requests: `shadow` reads the deployment's own."""
        start = datetime.fromtimestamp(window["time"], UTC)
        short = GRAIN - (self.clock() - start)
        if short.total_seconds() > 0:
            self.sleep(short.total_seconds())
        return Observed(self.metrics.window(self.endpoint, deployment, start, self.clock()))


def model_version(model: Any) -> str | None:
    """`azureml:name:3` (or an ARM id ending in /versions/3) -> "3"."""
    text = str(model or "")
    if "/versions/" in text:
        return text.rsplit("/versions/", 1)[1]
    parts = text.removeprefix("azureml:").split(":")
    return parts[1] if len(parts) == 2 else None
