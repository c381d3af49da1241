"""The SLO kind: service-level objectives over an endpoint and its model, each with an error budget.

One SLO names an endpoint and lists objectives; each objective measures one
SLI over a window (ISO 8601, as the Monitor kind's windows):

- availability: share of requests the server answered without failing (5xx, timeout)
- latency:      share of answered requests within `threshold_ms` (target 0.95 = "p95 under the threshold")
- correctness:  accuracy of the answers that got labelled feedback
- freshness:    age of the served model (its training run) against `max_age`
- fairness:     demographic parity difference of the logged predictions across a sensitive attribute

The engine that computes them is `specops.slo`; Gate checks with `slo:` read it.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field

from specops.core.durations import parse_duration
from specops.errors import SpecError
from specops.spec.checks import check, missing_reference, model_task
from specops.spec.endpoints import Endpoint
from specops.spec.kinds import Dataset, Document, Gate, Name, Pipeline, PositiveDuration, Strict, register_kind
from specops.spec.loader import SpecSet


def _check_target(value: float) -> float:
    if not 0 < value < 1:
        hint = f" (a percentage? {value:g}% is {value / 100:g})" if 1 < value <= 100 else ""
        raise ValueError(f"target is a fraction strictly between 0 and 1, e.g. 0.995 for 99.5%; got {value:g}{hint}")
    return value


Target = Annotated[float, AfterValidator(_check_target), Field(description="fraction of good events, e.g. 0.995")]


class ObjectiveCommon(Strict):
    name: Name | None = Field(None, description="default: the sli's name")
    window: PositiveDuration | None = Field(None, description="default: the SLO's window")
    description: str = ""
    if TYPE_CHECKING:
        sli: str  # every objective declares it, as a Literal of its name (the discriminator)

    @property
    def key(self) -> str:
        return self.name or self.sli


class Availability(ObjectiveCommon):
    """Good: answered (2xx). Bad: the server's failures (5xx, timeouts). Client mistakes (4xx) are not events."""

    sli: Literal["availability"]
    target: Target


class Latency(ObjectiveCommon):
    """Good: an answered request within threshold_ms. target 0.95 with threshold_ms 350 means p95 <= 350 ms."""

    sli: Literal["latency"]
    threshold_ms: float = Field(gt=0)
    target: Target = 0.95


class Correctness(ObjectiveCommon):
    """Good: a labelled answer that was right: the class itself, or a number within `tolerance` of the label.

    The SLI is accuracy on feedback (regression: the share of answers within the tolerance).
    """

    sli: Literal["correctness"]
    target: Target
    tolerance: float | None = Field(None, gt=0, description="regression models only (and required for them): "
                                                            "an answer within this of the label is right")
    min_samples: int = Field(100, ge=1, description="labelled answers needed; fewer is 'no data'")


class Freshness(ObjectiveCommon):
    """The served model's age (since its training run started) must stay within max_age."""

    sli: Literal["freshness"]
    max_age: PositiveDuration = Field(description="e.g. P30D")


class Fairness(ObjectiveCommon):
    """Demographic parity difference (largest minus smallest positive-prediction rate across groups)."""

    sli: Literal["fairness"]
    max_parity_diff: float = Field(0.08, gt=0, le=1)
    sensitive: str | None = Field(None, description="default: the first sensitive column of the model's Dataset")
    min_samples: int = Field(30, ge=1, description="logged rows a group needs to count")


Objective = Annotated[Availability | Latency | Correctness | Freshness | Fairness, Field(discriminator="sli")]


class SLOSpec(Strict):
    endpoint: Name = Field(description="the Endpoint measured")
    window: PositiveDuration = Field("P28D", description="rolling window of every objective (Google SRE's 28 days)")
    burn_window: PositiveDuration = Field("PT1H", description="recent stretch the burn rate is measured over")
    objectives: list[Objective] = Field(min_length=1)
    description: str = ""


@register_kind
class SLO(Document):
    kind: Literal["SLO"]
    spec: SLOSpec

    def objective(self, name: str) -> Objective | None:
        return next((o for o in self.spec.objectives if o.key == name), None)


# --- what the engine needs from other documents ---------------------------------------------

def endpoint_of(specs: SpecSet, slo: SLO) -> Endpoint | None:
    return specs.get(Endpoint, slo.spec.endpoint)


def served_model(specs: SpecSet, slo: SLO) -> str | None:
    """The registered model the endpoint serves: that of the deployment with the most live traffic."""
    endpoint = endpoint_of(specs, slo)
    if endpoint is None:
        return None
    main = max(endpoint.spec.traffic, key=endpoint.spec.traffic.__getitem__, default=None)
    deployment = endpoint.spec.deployment(main) if main else None
    return deployment.model_ref.name if deployment else None


def model_dataset(specs: SpecSet, slo: SLO) -> Dataset | None:
    model = served_model(specs, slo)
    pipeline = next((p for p in specs.of_kind(Pipeline) if p.spec.model_name == model), None)
    return specs.get(Dataset, pipeline.spec.dataset) if pipeline else None


def sensitive_column(specs: SpecSet, slo: SLO, objective: Fairness) -> str | None:
    if objective.sensitive is not None:
        return objective.sensitive
    dataset = model_dataset(specs, slo)
    return next(iter(dataset.spec.sensitive), None) if dataset else None


# --- cross-document checks -------------------------------------------------------------------

@check
def slos(specs: SpecSet) -> Iterable[SpecError]:
    for slo in specs.of_kind(SLO):
        yield from missing_reference(specs, slo, ("spec", "endpoint"), Endpoint, slo.spec.endpoint)
        yield from _unique_objectives(specs, slo)
        for i, objective in enumerate(slo.spec.objectives):
            if isinstance(objective, Fairness):
                yield from _sensitive_exists(specs, slo, i, objective)
            if isinstance(objective, Correctness):
                yield from _tolerance_fits(specs, slo, i, objective)
        yield from _log_kept_long_enough(specs, slo)


def _log_kept_long_enough(specs: SpecSet, slo: SLO) -> Iterable[SpecError]:
    """The SLO reads its window from the endpoint's inference log: the log must keep at least that long."""
    endpoint = endpoint_of(specs, slo)
    if endpoint is None:
        return
    retention = endpoint.spec.server.inference_log.retention
    windows = [(("spec", "window"), slo.spec.window)] + [
        (("spec", "objectives", i, "window"), o.window) for i, o in enumerate(slo.spec.objectives)
        if o.window and not isinstance(o, Freshness)]  # a model's age is read from the registry, not the log
    for path, window in windows:
        if parse_duration(window) > parse_duration(retention):
            yield specs.error(slo, path, f"window {window} is longer than endpoint {endpoint.name}'s "
                                         f"server.inference_log.retention ({retention}): the log would not hold it")


def _tolerance_fits(specs: SpecSet, slo: SLO, i: int, objective: Correctness) -> Iterable[SpecError]:
    model = served_model(specs, slo)
    if model is None or not any(p.spec.model_name == model for p in specs.of_kind(Pipeline)):
        return  # a model no pipeline here trains: its task is unknown
    task = model_task(specs, model)
    if task == "regression" and objective.tolerance is None:
        yield specs.error(slo, ("spec", "objectives", i), f"model {model!r} is a regression: a correct answer needs "
                                                          "a tolerance (how far from the label is still right)")
    elif task != "regression" and objective.tolerance is not None:
        yield specs.error(slo, ("spec", "objectives", i, "tolerance"),
                          f"model {model!r} answers classes ({task}): a class is right or wrong, with no tolerance")


def _unique_objectives(specs: SpecSet, slo: SLO) -> Iterable[SpecError]:
    keys = [o.key for o in slo.spec.objectives]
    for i, key in enumerate(keys):
        if key in keys[:i]:
            yield specs.error(slo, ("spec", "objectives", i), f"duplicate objective {key!r}: give it a distinct name")


def _sensitive_exists(specs: SpecSet, slo: SLO, i: int, objective: Fairness) -> Iterable[SpecError]:
    dataset = model_dataset(specs, slo)
    if dataset is None:
        return  # the endpoint or its model is missing: reported by their own checks
    column = sensitive_column(specs, slo, objective)
    path = ("spec", "objectives", i, "sensitive") if objective.sensitive else ("spec", "objectives", i)
    if column is None:
        yield specs.error(slo, path, f"dataset {dataset.name!r} declares no sensitive column: name one in sensitive")
    elif column not in dataset.spec.sensitive:
        known = ", ".join(dataset.spec.sensitive) or "none"
        yield specs.error(slo, path, f"column {column!r} is not a sensitive attribute of dataset {dataset.name!r} (sensitive: {known})")


@check
def gate_slo_checks(specs: SpecSet) -> Iterable[SpecError]:
    """A Gate check naming an SLO (and objective) must name ones that exist."""
    for gate in specs.of_kind(Gate):
        for i, c in enumerate(gate.spec.checks):
            if c.slo is None:
                continue
            slo = specs.get(SLO, c.slo)
            if slo is None:
                yield from missing_reference(specs, gate, ("spec", "checks", i, "slo"), SLO, c.slo)
            elif c.objective is not None and slo.objective(c.objective) is None:
                known = ", ".join(o.key for o in slo.spec.objectives)
                yield specs.error(gate, ("spec", "checks", i, "objective"),
                                  f"SLO {slo.name!r} has no objective {c.objective!r} (objectives: {known})")
