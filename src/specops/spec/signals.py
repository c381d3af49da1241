"""Drift signal names, their direction, and the threshold presets.

Names and defaults follow Azure ML model monitoring so a Monitor spec renders
there unchanged. No numpy here: the spec loader imports this module.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

FeatureType = Literal["numerical", "categorical"]

PSI = "population_stability_index"
KS = "two_sample_kolmogorov_smirnov_test"
JSD = "jensen_shannon_distance"
NWD = "normalized_wasserstein_distance"
CHI2 = "pearsons_chi_squared_test"

NUMERICAL_METRICS = (JSD, NWD, PSI, KS)
CATEGORICAL_METRICS = (JSD, PSI, CHI2)
METRICS: dict[FeatureType, tuple[str, ...]] = {"numerical": NUMERICAL_METRICS, "categorical": CATEGORICAL_METRICS}

# Tests report a p-value and alert when it falls below the threshold (a significance
# level); distances alert when they reach the threshold.
P_VALUE_METRICS = frozenset({KS, CHI2})


def breached(metric: str, value: float, threshold: float) -> bool:
    return value < threshold if metric in P_VALUE_METRICS else value >= threshold


def describe(metric: str, value: float, threshold: float) -> str:
    operator = "<" if metric in P_VALUE_METRICS else ">="
    return f"{metric} {value:.4g} {operator} {threshold:g}"


@dataclass(frozen=True)
class Signals:
    """Which metrics decide, per feature type, and their thresholds (metric -> threshold).

    A feature alerts when any of its type's metrics breaches; every metric is
    still computed and reported, so deciding and reporting are independent.
    """

    numerical: Mapping[str, float] = field(default_factory=dict)
    categorical: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for feature_type, known in METRICS.items():
            unknown = sorted(set(self.for_type(feature_type)) - set(known))
            if unknown:
                raise ValueError(f"not {feature_type} drift metrics: {', '.join(unknown)} (known: {', '.join(known)})")

    def for_type(self, feature_type: FeatureType) -> Mapping[str, float]:
        return self.numerical if feature_type == "numerical" else self.categorical

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {"numerical": dict(self.numerical), "categorical": dict(self.categorical)}


# Azure ML's data drift signal defaults.
AZUREML = Signals(numerical={NWD: 0.1}, categorical={JSD: 0.1})
# The blueprint's retraining rule (PSI > 0.2 or KS p < 0.05); chi-squared stands in for KS on categoricals.
BLUEPRINT = Signals(numerical={PSI: 0.2, KS: 0.05}, categorical={PSI: 0.2, CHI2: 0.05})
PRESETS: dict[str, Signals] = {"azureml": AZUREML, "blueprint": BLUEPRINT}
DEFAULT = AZUREML


# --- the other monitoring signals (Azure ML's names where Azure ML has the signal) -----------------

NULL_RATE = "null_value_rate"
TYPE_ERROR_RATE = "data_type_error_rate"
OUT_OF_BOUNDS_RATE = "out_of_bounds_rate"
DATA_QUALITY_METRICS = (NULL_RATE, TYPE_ERROR_RATE, OUT_OF_BOUNDS_RATE)
# Azure ML's DataQualityMetricThreshold defaults for nulls and type errors: any one alerts. Not for
# out-of-bounds, whose Azure ML default is 0 too: a window's extremes pass the training sample's min and max
# by chance (on the example data 21 of 30 unshifted 1,000-row windows had a value beyond them, at most
# 0.3% of rows), so 0 would alert on most healthy windows. 1% is above that noise and below a real break.
DATA_QUALITY_DEFAULTS = {NULL_RATE: 0.0, TYPE_ERROR_RATE: 0.0, OUT_OF_BOUNDS_RATE: 0.01}

NDCG = "normalized_discounted_cumulative_gain"
# Azure ML's feature attribution drift example threshold (and SageMaker Clarify's fixed one): alert below 0.9.
NDCG_DEFAULT = 0.9

# Azure ML's performance metric names (classification; regression: mae, rmse), and which of them each task measures.
PERFORMANCE_METRICS = ("accuracy", "precision", "recall", "f1_score", "mae", "rmse")
TASK_PERFORMANCE_METRICS = {"binary": ("accuracy", "precision", "recall", "f1_score"),
                            "multiclass": ("accuracy", "f1_score"), "regression": ("mae", "rmse")}
# What the evaluate stage calls each (multiclass f1_score: its macro average).
EVALUATED_NAME = {"accuracy": "accuracy", "precision": "precision", "recall": "recall", "f1_score": "f1",
                  "mae": "mae", "rmse": "rmse"}
ERROR_METRICS = ("mae", "rmse")  # their "drop" is a growth, relative to the champion's: 0.1 = 10% larger


def evaluated_name(metric: str, task: str) -> str:
    return "f1_macro" if task == "multiclass" and metric == "f1_score" else EVALUATED_NAME[metric]
PERFORMANCE_DROP_DEFAULT = 0.03  # the blueprint's retraining rule: accuracy more than 3 points below the champion's

DPD = "demographic_parity_difference"
DPD_DEFAULT = 0.08  # the blueprint's parity difference bound (promotion gate and SLO)

SignalStatus = Literal["ok", "alert", "inconclusive"]


@dataclass
class SignalResult:
    """One signal of one monitor run: its numbers, what breached, or why it could not judge."""

    name: str  # prediction_drift, data_quality, performance, fairness, feature_attribution_drift
    status: SignalStatus
    metrics: dict[str, float] = field(default_factory=dict)  # flat names, e.g. "income.null_value_rate"
    alerts: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # per-feature tables, group rates, rankings
    reason: str = ""  # why the signal is inconclusive

    @property
    def alerted(self) -> bool:
        return self.status == "alert"

    @classmethod
    def judged(cls, name: str, metrics: dict[str, float], alerts: list[str], **details: Any) -> SignalResult:
        return cls(name, "alert" if alerts else "ok", metrics, alerts, details)

    @classmethod
    def inconclusive(cls, name: str, reason: str, **details: Any) -> SignalResult:
        return cls(name, "inconclusive", {}, [], details, reason)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "metrics": self.metrics, "alerts": self.alerts,
                "details": self.details, "reason": self.reason}
