"""The Monitor kind: drift between a baseline and the production inference log.

Field names follow Azure ML model monitoring (`metric_thresholds` split into
`numerical` and `categorical`, `lookback_window_size` as an ISO 8601 duration)
so the same spec renders to an Azure ML monitor schedule later.
"""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Iterable, Literal

from pydantic import AfterValidator, Field, model_validator

from specops.errors import SpecError
from specops.monitoring.signals import CATEGORICAL_METRICS, NUMERICAL_METRICS, P_VALUE_METRICS, PRESETS, Signals
from specops.spec.checks import missing_reference, check, registered_models
from specops.spec.kinds import KINDS, Column, Cron, Dataset, Document, EnvRef, Name, Pipeline, Strict, register_kind
from specops.spec.loader import SpecSet

DURATION = re.compile(r"^P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?)?$")


def parse_duration(value: str) -> timedelta:
    """ISO 8601 durations in days, hours and minutes (P7D, PT6H, P1DT12H), as Azure ML's windows."""
    match = DURATION.match(value)
    parts = {k: int(v) for k, v in match.groupdict().items() if v} if match and not value.endswith("T") else {}
    if not parts or timedelta(**parts) <= timedelta(0):
        raise ValueError(f"invalid duration {value!r} (expected a positive ISO 8601 duration like P7D, PT6H or P1DT12H)")
    return timedelta(**parts)


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


Duration = Annotated[str, AfterValidator(_check_duration), Field(description="ISO 8601 duration, e.g. P7D or PT6H")]
# Literal over the engine's own name tuples: one list of metric names, and editors still see an enum.
NumericalMetric = Literal[NUMERICAL_METRICS]  # type: ignore[valid-type]
CategoricalMetric = Literal[CATEGORICAL_METRICS]  # type: ignore[valid-type]


class Baseline(Strict):
    """Exactly one of: a Dataset spec, or the training data of a model's current champion."""

    dataset: Name | None = None
    champion: Name | None = Field(None, description="registered model name; its champion's training data is the baseline")

    @model_validator(mode="after")
    def _exactly_one(self) -> "Baseline":
        if (self.dataset is None) == (self.champion is None):
            raise ValueError("baseline needs exactly one of dataset or champion")
        return self


class Target(Strict):
    endpoint: Name = Field(description="the endpoint whose inference log is monitored")
    lookback_window_size: Duration = "P7D"
    lookback_window_offset: Duration | None = Field(None, description="how far back the window ends; default: now")


class MetricThresholds(Strict):
    numerical: dict[NumericalMetric, float] = {}
    categorical: dict[CategoricalMetric, float] = {}

    @model_validator(mode="after")
    def _in_range(self) -> "MetricThresholds":
        for metric, value in [*self.numerical.items(), *self.categorical.items()]:
            if metric in P_VALUE_METRICS and not 0 < value < 1:
                raise ValueError(f"{metric} is a significance level: expected 0 < threshold < 1, got {value:g}")
            if value < 0:
                raise ValueError(f"{metric} is a distance: expected a threshold >= 0, got {value:g}")
        return self


class DataDrift(Strict):
    preset: Literal["azureml", "blueprint"] = Field(
        "azureml",
        description="azureml: normalized Wasserstein >= 0.1 (numerical), Jensen-Shannon >= 0.1 (categorical); "
                    "blueprint: PSI >= 0.2 or KS p < 0.05 (chi-squared p < 0.05 for categoricals)",
    )
    metric_thresholds: MetricThresholds | None = Field(None, description="replaces the preset's thresholds")

    def signals(self) -> Signals:
        if self.metric_thresholds is None:
            return PRESETS[self.preset]
        return Signals(self.metric_thresholds.numerical, self.metric_thresholds.categorical)


class Actions(Strict):
    retrain: Name | None = Field(None, description="a Pipeline to run on alert")
    rollback: Name | None = Field(None, description="an Endpoint to roll back to its previous stable deployment")
    notify: EnvRef | None = Field(None, description="webhook URL, as a ${VAR} reference")


class MonitorSpec(Strict):
    baseline: Baseline
    target: Target
    features: Literal["all"] | list[str] = Field("all", description="'all': every model input (dataset columns but target and sensitive)")
    data_drift: DataDrift = DataDrift()
    schedule: Cron
    actions: Actions = Actions()
    description: str = ""


@register_kind
class Monitor(Document):
    kind: Literal["Monitor"]
    spec: MonitorSpec


def is_categorical(column: Column) -> bool:
    return column.type in ("str", "bool") or column.allowed is not None


def baseline_dataset(specs: SpecSet, monitor: Monitor) -> Dataset | None:
    """The Dataset the baseline is drawn from: named directly, or the one the champion's pipeline trains on."""
    baseline = monitor.spec.baseline
    if baseline.dataset is not None:
        return specs.get(Dataset, baseline.dataset)
    pipeline = next((p for p in specs.of_kind(Pipeline) if p.spec.model_name == baseline.champion), None)
    return specs.get(Dataset, pipeline.spec.dataset) if pipeline else None


def monitored_features(dataset: Dataset, monitor: Monitor) -> dict[str, Literal["numerical", "categorical"]]:
    """Feature name -> type; the default is every model input (the label and sensitive columns are not inputs)."""
    columns = dataset.spec.columns
    if monitor.spec.features == "all":
        names = [c for c in columns if c != dataset.spec.target and c not in dataset.spec.sensitive]
    else:
        names = [c for c in monitor.spec.features if c in columns]
    return {name: "categorical" if is_categorical(columns[name]) else "numerical" for name in names}


@check
def monitors(specs: SpecSet) -> Iterable[SpecError]:
    for monitor in specs.of_kind(Monitor):
        yield from _baseline_exists(specs, monitor)
        yield from _features_exist(specs, monitor)
        if monitor.spec.actions.retrain is not None:
            yield from missing_reference(specs, monitor, ("spec", "actions", "retrain"), Pipeline, monitor.spec.actions.retrain)
        yield from _endpoints_exist(specs, monitor)


def _baseline_exists(specs: SpecSet, monitor: Monitor) -> Iterable[SpecError]:
    baseline = monitor.spec.baseline
    if baseline.dataset is not None:
        yield from missing_reference(specs, monitor, ("spec", "baseline", "dataset"), Dataset, baseline.dataset)
    elif baseline.champion not in registered_models(specs):
        known = ", ".join(sorted(registered_models(specs))) or "none registered"
        yield specs.error(monitor, ("spec", "baseline", "champion"), f"no pipeline registers model {baseline.champion!r} (known: {known})")


def _features_exist(specs: SpecSet, monitor: Monitor) -> Iterable[SpecError]:
    dataset = baseline_dataset(specs, monitor)
    if dataset is None or monitor.spec.features == "all":
        return
    for i, name in enumerate(monitor.spec.features):
        if name not in dataset.spec.columns:
            yield specs.error(monitor, ("spec", "features", i), f"column {name!r} is not in dataset {dataset.name!r}")
        elif name == dataset.spec.target:
            yield specs.error(monitor, ("spec", "features", i), f"column {name!r} is the label; the inference log does not hold it")


def _endpoints_exist(specs: SpecSet, monitor: Monitor) -> Iterable[SpecError]:
    # The Endpoint kind lives in its own module; check references once it is registered.
    endpoint_kind = KINDS.get("Endpoint")
    if endpoint_kind is None:
        return
    yield from missing_reference(specs, monitor, ("spec", "target", "endpoint"), endpoint_kind, monitor.spec.target.endpoint)
    if monitor.spec.actions.rollback is not None:
        yield from missing_reference(specs, monitor, ("spec", "actions", "rollback"), endpoint_kind, monitor.spec.actions.rollback)
