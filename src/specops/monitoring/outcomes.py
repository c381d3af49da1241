"""Signals on what the model answered: rolling performance against the labels that arrived by /feedback,
and demographic parity of the answers across the groups of a sensitive attribute (fairlearn).

Binary classification, as the evaluate stage: the positive class is the larger of the two labels.
Multiclass: macro averages, and parity as the worst class's. Regression: errors, compared relatively.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, count, demographic_parity_difference, selection_rate
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error, precision_score, recall_score

from specops.spec.signals import DPD, ERROR_METRICS, SignalResult, evaluated_name

PERFORMANCE, FAIRNESS = "performance", "fairness"
SCORES = {
    "accuracy": lambda truth, predicted: accuracy_score(truth, predicted),
    "precision": lambda truth, predicted: precision_score(truth, predicted, zero_division=0),
    "recall": lambda truth, predicted: recall_score(truth, predicted, zero_division=0),
    "f1_score": lambda truth, predicted: f1_score(truth, predicted, zero_division=0),
}
MULTICLASS_SCORES = {
    "accuracy": SCORES["accuracy"],
    "f1_score": lambda truth, predicted: f1_score(truth, predicted, average="macro", zero_division=0),
}
REGRESSION_SCORES = {
    "mae": lambda truth, predicted: mean_absolute_error(truth, predicted),
    "rmse": lambda truth, predicted: float(np.sqrt(mean_squared_error(truth, predicted))),
}


def positive_class(*columns: pd.Series) -> object:
    """The larger label, as the evaluate stage picks it (1 over 0, "yes" over "no")."""
    return max(pd.concat(columns).dropna().unique().tolist())


def performance(labelled: pd.DataFrame, champion: Mapping[str, float], max_drop: Mapping[str, float],
                min_labels: int, champion_version: str, task: str = "binary") -> SignalResult:
    """Metrics of `labelled` (columns prediction, label) vs the champion's evaluation; a drop > max_drop alerts.

    For errors (a regression's mae, rmse) the drop is their growth relative to the champion's.
    """
    if len(labelled) < min_labels:
        return SignalResult.inconclusive(PERFORMANCE, f"only {len(labelled)} labelled rows in the window; "
                                                      f"at least {min_labels} are needed to judge performance",
                                         labelled_rows=len(labelled))
    missing = [evaluated_name(m, task) for m in max_drop if evaluated_name(m, task) not in champion]
    if missing:
        return SignalResult.inconclusive(PERFORMANCE, f"champion v{champion_version} has no evaluated {', '.join(missing)}")
    truth, predicted = labelled["label"], labelled["prediction"]
    details: dict[str, object] = {}
    scores = MULTICLASS_SCORES if task == "multiclass" else REGRESSION_SCORES if task == "regression" else SCORES
    if task == "binary":
        positive = positive_class(truth, predicted)
        truth, predicted = (truth == positive).astype(int), (predicted == positive).astype(int)
        details["positive_label"] = _plain(positive)
    elif task == "regression":
        truth, predicted = pd.to_numeric(truth, errors="coerce"), pd.to_numeric(predicted, errors="coerce")
    metrics: dict[str, float] = {}
    alerts: list[str] = []
    for metric, tolerated in max_drop.items():
        value, reference = float(scores[metric](truth, predicted)), champion[evaluated_name(metric, task)]
        if metric in ERROR_METRICS:
            drop = round((value - reference) / reference, 12) if reference else 0.0
            worse = f"{drop:.1%} above the champion's {reference:.4g} (> {tolerated:.0%})"
        else:
            drop = round(reference - value, 12)  # 0.90 - 0.87 is 0.030000000000000027 in floats
            worse = f"{drop:.4g} below the champion's {reference:.4g} (> {tolerated:g})"
        metrics |= {metric: value, f"{metric}.champion": reference, f"{metric}.drop": drop}
        if drop > tolerated:
            alerts.append(f"{metric} {value:.4g} is {worse}")
    return SignalResult.judged(PERFORMANCE, metrics, alerts, labelled_rows=len(labelled),
                               champion_version=champion_version, **details)


def fairness(predictions: pd.Series, groups: pd.Series, threshold: float, sensitive: str) -> SignalResult:
    """Demographic parity difference of the predictions across `groups` (rows without a group are left out)."""
    known = groups.notna().to_numpy()
    predictions, groups = predictions[known], groups[known].astype(str)
    if groups.nunique() < 2:
        return SignalResult.inconclusive(FAIRNESS, f"the window's logged requests have {groups.nunique()} group(s) "
                                                   f"of {sensitive!r}; parity needs two", sensitive=sensitive)
    classes = sorted(predictions.dropna().unique().tolist(), key=str)
    # Binary: the positive class's selection rate. More classes: each class's, and the worst gap counts.
    judged = [positive_class(predictions)] if len(classes) <= 2 else classes
    gaps, by_group = {}, {}
    for label in judged:
        selected = (predictions == label).astype(int).to_numpy()
        # Demographic parity looks at the predictions only: they stand in for y_true too.
        gaps[label] = float(demographic_parity_difference(selected, selected, sensitive_features=groups.to_numpy()))
        frame = MetricFrame(metrics={"selection_rate": selection_rate, "count": count},
                            y_true=selected, y_pred=selected, sensitive_features=groups.to_numpy())
        by_group[str(label)] = {str(g): {k: float(v) for k, v in row.items()} for g, row in frame.by_group.iterrows()}
    worst = max(gaps, key=gaps.__getitem__)
    value = gaps[worst]
    alerts = [f"{DPD} {value:.4g} > {threshold:g} across {sensitive}"
              + (f" (class {worst})" if len(judged) > 1 else "")] if value > threshold else []
    if len(judged) == 1:
        return SignalResult.judged(FAIRNESS, {DPD: value}, alerts, sensitive=sensitive, by_group=by_group[str(worst)],
                                   positive_label=_plain(worst))
    return SignalResult.judged(FAIRNESS, {DPD: value}, alerts, sensitive=sensitive, by_class=by_group,
                               worst_class=_plain(worst))


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
