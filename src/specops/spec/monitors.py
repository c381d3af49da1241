"""The Monitor kind: drift between a baseline and the production inference log.

Field names follow Azure ML model monitoring (`metric_thresholds` split into
`numerical` and `categorical`, `lookback_window_size` as an ISO 8601 duration)
so the same spec renders to an Azure ML monitor schedule later.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import Field, model_validator

from specops.errors import SpecError, SpecopsError
from specops.spec.signals import (
    AZUREML,
    CATEGORICAL_METRICS,
    DATA_QUALITY_DEFAULTS,
    DATA_QUALITY_METRICS,
    DPD,
    DPD_DEFAULT,
    NDCG,
    NDCG_DEFAULT,
    NUMERICAL_METRICS,
    P_VALUE_METRICS,
    PERFORMANCE_DROP_DEFAULT,
    PERFORMANCE_METRICS,
    PRESETS,
    TASK_PERFORMANCE_METRICS,
    Signals,
)
from specops.spec.checks import missing_reference, check, model_task, registered_models
from specops.spec.kinds import (KINDS, Column, Cron, Dataset, Document, EnvRef, Name, Pipeline, PositiveDuration, Strict,
                                register_kind)
from specops.spec.loader import SpecSet

# Fewer logged rows than this cannot be judged: the run is inconclusive, neither a pass nor an alert. Sampling
# noise alone moves the default distances: on the example data (5,000 baseline rows, 60 unshifted windows)
# 59 of 60 windows of 100 rows and 39 of 300 rows breached 0.1; 1 of 60 windows of 1,000 rows did.
MIN_TARGET_ROWS = 1000
# Literal over the engine's own name tuples: one list of metric names, and editors still see an enum.
NumericalMetric = Literal[NUMERICAL_METRICS]  # type: ignore[valid-type]
CategoricalMetric = Literal[CATEGORICAL_METRICS]  # type: ignore[valid-type]


class Baseline(Strict):
    """Exactly one of: a Dataset spec, or the training data of a model's current champion."""

    dataset: Name | None = None
    champion: Name | None = Field(None, description="registered model name; its champion's training data is the baseline")

    @model_validator(mode="after")
    def _exactly_one(self) -> Baseline:
        if (self.dataset is None) == (self.champion is None):
            raise ValueError("baseline needs exactly one of dataset or champion")
        return self


class Target(Strict):
    endpoint: Name = Field(description="the endpoint whose inference log is monitored")
    lookback_window_size: PositiveDuration = "P7D"
    lookback_window_offset: PositiveDuration | None = Field(None, description="how far back the window ends; default: now")


class MetricThresholds(Strict):
    numerical: dict[NumericalMetric, float] = {}
    categorical: dict[CategoricalMetric, float] = {}

    @model_validator(mode="after")
    def _in_range(self) -> MetricThresholds:
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


class PredictionDrift(Strict):
    """The deployed model's predictions vs the champion's on its training rows (Azure ML's PredictionDriftSignal)."""

    metric_thresholds: MetricThresholds = Field(
        MetricThresholds(numerical=dict(AZUREML.numerical), categorical=dict(AZUREML.categorical)),
        description="numerical predictions (a regressor's) or categorical ones (a classifier's labels); "
                    "default Azure ML's: normalized_wasserstein_distance >= 0.1, jensen_shannon_distance >= 0.1",
    )
    on_alert: list[Literal["retrain", "rollback", "notify"]] | None = Field(
        None, description="which of spec.actions an alert takes; default: all of them (as data drift)")

    def signals(self) -> Signals:
        return Signals(self.metric_thresholds.numerical, self.metric_thresholds.categorical)


DataQualityMetric = Literal[DATA_QUALITY_METRICS]  # type: ignore[valid-type]


class DataQualityThresholds(Strict):
    numerical: dict[DataQualityMetric, Annotated[float, Field(ge=0, le=1)]] = dict(DATA_QUALITY_DEFAULTS)
    categorical: dict[DataQualityMetric, Annotated[float, Field(ge=0, le=1)]] = dict(DATA_QUALITY_DEFAULTS)


class DataQuality(Strict):
    """Per feature: null, mistyped and out-of-range values (Azure ML's DataQualitySignal); a rate above its threshold alerts."""

    metric_thresholds: DataQualityThresholds = Field(
        DataQualityThresholds(), description="rates in [0, 1]; default: null_value_rate and data_type_error_rate 0 "
                                             "(Azure ML's: any one alerts), out_of_bounds_rate 0.01")
    on_alert: list[Literal["rollback", "notify"]] | None = Field(
        None, description="default: notify (bad inputs are fixed upstream, not by retraining)")


PerformanceMetric = Literal[PERFORMANCE_METRICS]  # type: ignore[valid-type]


class Performance(Strict):
    """Rolling performance on the logged requests that got a label by /feedback, against the champion's evaluation."""

    max_drop: dict[PerformanceMetric, Annotated[float, Field(ge=0, le=1)]] = Field(
        {"accuracy": PERFORMANCE_DROP_DEFAULT},
        description="metric -> largest tolerated fall below the champion's evaluated value, in absolute points "
                    "(0.03: accuracy 0.90 -> 0.87 is tolerated, 0.86 alerts); for a regression's mae and rmse, "
                    "the largest tolerated growth relative to the champion's (0.1: 10% larger)")
    min_labels: int = Field(
        1000, ge=1, description="fewer labelled rows in the window are inconclusive: at 1,000 labels the standard "
                                "error of an accuracy near 0.8 is 0.013, so the default 0.03 drop is over two of them")
    lookback_window_size: PositiveDuration | None = Field(
        None, description="the labelled window (labels arrive late); default: the target's lookback_window_size")
    on_alert: list[Literal["retrain", "rollback", "notify"]] | None = Field(
        None, description="default: all of spec.actions; a retrain is queued with reason `performance`")

    @model_validator(mode="after")
    def _some_metric(self) -> Performance:
        if not self.max_drop:
            raise ValueError("max_drop needs at least one metric")
        return self


class Fairness(Strict):
    """Demographic parity difference (fairlearn) of the logged predictions across groups of a sensitive attribute."""

    sensitive: str | None = Field(None, description="default: the baseline Dataset's first sensitive column")
    metric_thresholds: dict[Literal[DPD], Annotated[float, Field(ge=0, le=1)]] = Field(  # type: ignore[valid-type]
        {DPD: DPD_DEFAULT}, description="alerts when the difference exceeds it; default 0.08 (the blueprint's bound)")
    on_alert: list[Literal["rollback", "notify"]] | None = Field(None, description="default: notify (reported, no retraining)")


class FeatureAttributionDrift(Strict):
    """The model's feature ranking (mean |SHAP|) on the window vs the champion's on its training rows (NDCG)."""

    model: Literal["champion", "challenger"] = Field("champion", description="whose attribution on the window is compared")
    metric_thresholds: dict[Literal[NDCG], Annotated[float, Field(ge=0, le=1)]] = Field(  # type: ignore[valid-type]
        {NDCG: NDCG_DEFAULT}, description="alerts when NDCG falls below it; default 0.9 (Azure ML's)")
    on_alert: list[Literal["retrain", "rollback", "notify"]] | None = Field(
        None, description="default: all of spec.actions (as data drift)")


class Actions(Strict):
    retrain: Name | None = Field(None, description="a Pipeline to run on alert")
    rollback: Name | None = Field(None, description="an Endpoint to roll back to its previous stable deployment")
    notify: EnvRef | None = Field(None, description="webhook URL, as a ${VAR} reference")


class MonitorSpec(Strict):
    baseline: Baseline
    target: Target
    features: Literal["all"] | list[str] = Field("all", description="'all': every model input (dataset columns but target and sensitive)")
    data_drift: DataDrift = DataDrift()
    prediction_drift: PredictionDrift | None = Field(None, description="off unless declared")
    data_quality: DataQuality | None = Field(None, description="off unless declared")
    performance: Performance | None = Field(None, description="off unless declared")
    fairness: Fairness | None = Field(None, description="off unless declared")
    feature_attribution_drift: FeatureAttributionDrift | None = Field(None, description="off unless declared")
    min_target_rows: int = Field(MIN_TARGET_ROWS, ge=1, description=(
        "fewer logged rows in the window are inconclusive, never a pass: sampling noise alone moves the distances "
        "(on the example data 59 of 60 unshifted 100-row windows breached 0.1, 1 of 60 1,000-row windows did)"))
    schedule: Cron
    actions: Actions = Actions()
    description: str = ""


@register_kind
class Monitor(Document):
    kind: Literal["Monitor"]
    spec: MonitorSpec


def is_categorical(column: Column) -> bool:
    return column.type in ("str", "bool") or column.allowed is not None


def baseline_dataset(specs: SpecSet, monitor: Monitor) -> Dataset:
    """The Dataset the baseline is drawn from: named directly, or the one the champion's pipeline trains on."""
    dataset = _baseline_dataset(specs, monitor)
    if dataset is None:  # checked specs have one: the checks below say what is missing
        raise SpecopsError(f"monitor {monitor.name}: no Dataset for its baseline (run `specops validate`)")
    return dataset


def _baseline_dataset(specs: SpecSet, monitor: Monitor) -> Dataset | None:
    """baseline_dataset, or None for specs that lack it (the checks run on specs not yet checked)."""
    baseline = monitor.spec.baseline
    if baseline.dataset is not None:
        return specs.get(Dataset, baseline.dataset)
    pipeline = next((p for p in specs.of_kind(Pipeline) if p.spec.model_name == baseline.champion), None)
    return specs.get(Dataset, pipeline.spec.dataset) if pipeline else None


def monitored_model(specs: SpecSet, monitor: Monitor) -> str | None:
    """The registered model whose predictions the monitor judges: the baseline's champion, or the one its dataset trains."""
    if monitor.spec.baseline.champion is not None:
        return monitor.spec.baseline.champion
    pipeline = next((p for p in specs.of_kind(Pipeline) if p.spec.dataset == monitor.spec.baseline.dataset), None)
    return pipeline.spec.model_name if pipeline else None


def sensitive_column(dataset: Dataset, monitor: Monitor) -> str | None:
    fairness = monitor.spec.fairness
    if fairness is not None and fairness.sensitive is not None:
        return fairness.sensitive
    return next(iter(dataset.spec.sensitive), None)


# The signals besides data drift, and what an alert of each does when the spec does not say (on_alert).
SIGNAL_BLOCKS = ("prediction_drift", "data_quality", "performance", "fairness", "feature_attribution_drift")
MODEL_SIGNALS = ("prediction_drift", "performance", "feature_attribution_drift")
_NOTIFY_ONLY = ("data_quality", "fairness")


def alert_actions(monitor: Monitor, signal: str) -> list[str]:
    """The configured actions (retrain, rollback, notify) an alert of `signal` takes."""
    configured = [name for name in ("retrain", "rollback", "notify") if getattr(monitor.spec.actions, name)]
    block = getattr(monitor.spec, signal, None) if signal != "data_drift" else None
    if block is not None and block.on_alert is not None:
        return [name for name in block.on_alert if name in configured]
    return ["notify"] if signal in _NOTIFY_ONLY and "notify" in configured else (
        [] if signal in _NOTIFY_ONLY else configured)


def monitored_features(dataset: Dataset, monitor: Monitor) -> dict[str, Literal["numerical", "categorical"]]:
    """Feature name -> type; the default is every model input (not the label, sensitive columns, ids or dates)."""
    columns = dataset.spec.columns
    if monitor.spec.features == "all":
        names = [c for c in columns if dataset.spec.is_input(c)]
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
        yield from _signals_make_sense(specs, monitor)


def _baseline_exists(specs: SpecSet, monitor: Monitor) -> Iterable[SpecError]:
    baseline = monitor.spec.baseline
    if baseline.dataset is not None:
        yield from missing_reference(specs, monitor, ("spec", "baseline", "dataset"), Dataset, baseline.dataset)
    elif baseline.champion not in registered_models(specs):
        known = ", ".join(sorted(registered_models(specs))) or "none registered"
        yield specs.error(monitor, ("spec", "baseline", "champion"), f"no pipeline registers model {baseline.champion!r} (known: {known})")


def _features_exist(specs: SpecSet, monitor: Monitor) -> Iterable[SpecError]:
    dataset = _baseline_dataset(specs, monitor)
    if dataset is None or monitor.spec.features == "all":
        return
    for i, name in enumerate(monitor.spec.features):
        if name not in dataset.spec.columns:
            yield specs.error(monitor, ("spec", "features", i), f"column {name!r} is not in dataset {dataset.name!r}")
        elif name == dataset.spec.target:
            yield specs.error(monitor, ("spec", "features", i), f"column {name!r} is the label; the inference log does not hold it")
        elif dataset.spec.columns[name].role != "input":
            yield specs.error(monitor, ("spec", "features", i),
                              f"column {name!r} is declared role: {dataset.spec.columns[name].role}; it is no model input to drift")


def _endpoints_exist(specs: SpecSet, monitor: Monitor) -> Iterable[SpecError]:
    # The Endpoint kind lives in its own module; check references once it is registered.
    endpoint_kind = KINDS.get("Endpoint")
    if endpoint_kind is None:
        return
    yield from missing_reference(specs, monitor, ("spec", "target", "endpoint"), endpoint_kind, monitor.spec.target.endpoint)
    if monitor.spec.actions.rollback is not None:
        yield from missing_reference(specs, monitor, ("spec", "actions", "rollback"), endpoint_kind, monitor.spec.actions.rollback)


def _signals_make_sense(specs: SpecSet, monitor: Monitor) -> Iterable[SpecError]:
    """Each declared signal's on_alert names configured actions; model signals have a model; fairness a column."""
    for signal in SIGNAL_BLOCKS:
        block = getattr(monitor.spec, signal)
        if block is None:
            continue
        for i, action in enumerate(block.on_alert or []):
            if getattr(monitor.spec.actions, action) is None:
                yield specs.error(monitor, ("spec", signal, "on_alert", i), f"{action!r} is not configured in spec.actions")
        if signal in MODEL_SIGNALS and monitored_model(specs, monitor) is None:
            yield specs.error(monitor, ("spec", signal), "needs a model: no pipeline trains on the baseline dataset "
                                                          "(use baseline.champion)")
    yield from _fairness_column(specs, monitor)
    yield from _signals_fit_task(specs, monitor)


def _signals_fit_task(specs: SpecSet, monitor: Monitor) -> Iterable[SpecError]:
    model = monitored_model(specs, monitor)
    if model is None or model not in registered_models(specs):
        return
    task = model_task(specs, model)
    if monitor.spec.performance is not None:
        fits = TASK_PERFORMANCE_METRICS[task]
        for metric in monitor.spec.performance.max_drop:
            if metric not in fits:
                yield specs.error(monitor, ("spec", "performance", "max_drop", metric),
                                  f"model {model!r} is {task}: its performance is measured by {', '.join(fits)}")
    if monitor.spec.fairness is not None and task == "regression":
        yield specs.error(monitor, ("spec", "fairness"), f"model {model!r} is a regression: parity of its answers needs "
                                                          "classes; its error by group is gated at training (mae_gap)")


def _fairness_column(specs: SpecSet, monitor: Monitor) -> Iterable[SpecError]:
    dataset = _baseline_dataset(specs, monitor)
    if monitor.spec.fairness is None or dataset is None:
        return
    column = sensitive_column(dataset, monitor)
    if column is None:
        yield specs.error(monitor, ("spec", "fairness"), f"dataset {dataset.name!r} declares no sensitive column: "
                                                          "name one in sensitive")
    elif column not in dataset.spec.columns:
        yield specs.error(monitor, ("spec", "fairness", "sensitive"), f"column {column!r} is not in dataset {dataset.name!r}")
