"""The signals a Monitor may declare beside data drift, computed for one window of the inference log.

Each declared block gives one SignalResult. A signal that cannot judge (too few rows or labels, no
champion yet, no sensitive attribute in the log) is inconclusive with the reason; it never fails the
run, so one missing input does not hide the other signals.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from specops.errors import SpecopsError
from specops.registry import CHAMPION
from specops.monitoring.drift import BaselineSummary, detect
from specops.monitoring.model_baseline import PREDICTION, attribution, ndcg
from specops.monitoring.outcomes import fairness, performance
from specops.monitoring.quality import data_quality
from specops.monitoring.registered import RegisteredModel, registered_model
from specops.spec.signals import DPD, NDCG, SignalResult
from specops.spec.checks import model_task
from specops.spec.loader import SpecSet
from specops.spec.monitors import SIGNAL_BLOCKS, Monitor, baseline_dataset, monitored_model, sensitive_column

TOP_FEATURES = 5  # how many of each ranking the report shows


@dataclass
class Window:
    records: list[dict[str, Any]]  # the window's logged (non-shadow) requests
    inputs: pd.DataFrame  # their raw inputs, one row per record
    labelled: pd.DataFrame  # prediction and label of the labelled records in the performance window
    baseline: BaselineSummary | None  # the inputs' baseline; None when the window is too small to judge
    too_small: str = ""  # why the window cannot be judged (fewer rows than min_target_rows)


@dataclass
class Models:
    """The monitored model's versions by alias, looked up once per run and only when a signal needs one."""

    specs: SpecSet
    name: str | None
    _found: dict[str, RegisteredModel] = field(default_factory=dict)

    def get(self, alias: str) -> RegisteredModel:
        if self.name is None:
            raise SpecopsError("the monitor has no model: give it a champion baseline")
        if alias not in self._found:
            self._found[alias] = registered_model(self.specs, self.name, alias)
        return self._found[alias]


def run_signals(specs: SpecSet, monitor: Monitor, window: Window) -> list[SignalResult]:
    models = Models(specs, monitored_model(specs, monitor))
    results = []
    for name in SIGNAL_BLOCKS:
        block = getattr(monitor.spec, name)
        if block is None:
            continue
        if window.too_small and name != "performance":  # labels have their own minimum
            results.append(SignalResult.inconclusive(name, window.too_small))
            continue
        try:
            results.append(SIGNALS[name](specs, monitor, block, window, models))
        except SpecopsError as exc:
            results.append(SignalResult.inconclusive(name, str(exc)))
    return results


def _prediction_drift(specs: SpecSet, monitor: Monitor, block, window: Window, models: Models) -> SignalResult:
    champion = models.get(CHAMPION)
    predictions = pd.DataFrame({PREDICTION: [r.get("prediction") for r in window.records]})
    [feature] = detect(champion.baseline().predictions, predictions, block.signals()).features
    return SignalResult.judged("prediction_drift", feature.metrics, feature.alerts, type=feature.type,
                               statistics=feature.statistics, champion_version=champion.version)


def _data_quality(specs: SpecSet, monitor: Monitor, block, window: Window, models: Models) -> SignalResult:
    baseline = window.baseline
    if baseline is None:  # only a window too small to judge has none, and run_signals passes no such window here
        raise SpecopsError(window.too_small or "the window has no baseline to judge its inputs against")
    columns = baseline_dataset(specs, monitor).spec.columns
    types = {name: columns[name].type for name in [*baseline.numeric, *baseline.categorical]}
    thresholds = block.metric_thresholds
    return data_quality(baseline, window.inputs, types,
                        {"numerical": thresholds.numerical, "categorical": thresholds.categorical})


def _performance(specs: SpecSet, monitor: Monitor, block, window: Window, models: Models) -> SignalResult:
    champion = models.get(CHAMPION)
    return performance(window.labelled, champion.metrics(), block.max_drop, block.min_labels, champion.version,
                       model_task(specs, models.name))


def _fairness(specs: SpecSet, monitor: Monitor, block, window: Window, models: Models) -> SignalResult:
    dataset = baseline_dataset(specs, monitor)
    column = sensitive_column(dataset, monitor)
    if column is None:  # the checks refuse such a monitor
        raise SpecopsError(f"dataset {dataset.name!r} declares no sensitive column: name one in spec.fairness.sensitive")
    groups = pd.Series([sensitive_value(r, column) for r in window.records], dtype=object)
    if groups.isna().all():
        raise SpecopsError(f"the window's logged requests carry no {column!r}: log it with each request "
                           f"(under `sensitive`, or as an input) to judge fairness")
    predictions = pd.Series([r.get("prediction") for r in window.records])
    return fairness(predictions, groups, block.metric_thresholds[DPD], column)


def sensitive_value(record: dict[str, Any], column: str) -> Any:
    """A record's sensitive attribute: logged beside the inputs (`sensitive`), or as an input itself."""
    return record.get("sensitive", {}).get(column, record["inputs"].get(column))


def _feature_attribution_drift(specs: SpecSet, monitor: Monitor, block, window: Window, models: Models) -> SignalResult:
    reference = models.get(CHAMPION).baseline().attribution
    model = models.get(block.model)
    features = model.features(specs, window.inputs)
    if features.empty:
        raise SpecopsError("no logged row has every model input: nothing to attribute")
    current = attribution(model.load(), features)
    value, threshold = ndcg(reference, current), block.metric_thresholds[NDCG]
    alerts = [f"{NDCG} {value:.4g} < {threshold:g}"] if value < threshold else []
    return SignalResult.judged("feature_attribution_drift", {NDCG: value}, alerts,
                               model=f"{model.name} v{model.version} ({block.model})", method=current.method,
                               baseline_top=reference.ranking()[:TOP_FEATURES], target_top=current.ranking()[:TOP_FEATURES],
                               baseline_importance=reference.importance, target_importance=current.importance)


SIGNALS: dict[str, Callable[..., SignalResult]] = {
    "prediction_drift": _prediction_drift,
    "data_quality": _data_quality,
    "performance": _performance,
    "fairness": _fairness,
    "feature_attribution_drift": _feature_attribution_drift,
}
