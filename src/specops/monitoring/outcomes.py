"""Signals on what the model answered: rolling performance against the labels that arrived by /feedback,
and demographic parity of the answers across the groups of a sensitive attribute (fairlearn).

Binary classification, as the evaluate stage: the positive class is the larger of the two labels.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, count, demographic_parity_difference, selection_rate
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from specops.spec.signals import DPD, EVALUATED_NAME, SignalResult

PERFORMANCE, FAIRNESS = "performance", "fairness"
SCORES = {
    "accuracy": lambda truth, predicted: accuracy_score(truth, predicted),
    "precision": lambda truth, predicted: precision_score(truth, predicted, zero_division=0),
    "recall": lambda truth, predicted: recall_score(truth, predicted, zero_division=0),
    "f1_score": lambda truth, predicted: f1_score(truth, predicted, zero_division=0),
}


def positive_class(*columns: pd.Series) -> object:
    """The larger label, as the evaluate stage picks it (1 over 0, "yes" over "no")."""
    return max(pd.concat(columns).dropna().unique().tolist())


def performance(labelled: pd.DataFrame, champion: Mapping[str, float], max_drop: Mapping[str, float],
                min_labels: int, champion_version: str) -> SignalResult:
    """Metrics of `labelled` (columns prediction, label) vs the champion's evaluation; a drop > max_drop alerts."""
    if len(labelled) < min_labels:
        return SignalResult.inconclusive(PERFORMANCE, f"only {len(labelled)} labelled rows in the window; "
                                                      f"at least {min_labels} are needed to judge performance",
                                         labelled_rows=len(labelled))
    missing = [m for m in max_drop if EVALUATED_NAME[m] not in champion]
    if missing:
        return SignalResult.inconclusive(PERFORMANCE, f"champion v{champion_version} has no evaluated "
                                                      f"{', '.join(EVALUATED_NAME[m] for m in missing)}")
    positive = positive_class(labelled["label"], labelled["prediction"])
    truth, predicted = (labelled["label"] == positive).astype(int), (labelled["prediction"] == positive).astype(int)
    metrics: dict[str, float] = {}
    alerts: list[str] = []
    for metric, tolerated in max_drop.items():
        value, reference = float(SCORES[metric](truth, predicted)), champion[EVALUATED_NAME[metric]]
        drop = round(reference - value, 12)  # 0.90 - 0.87 is 0.030000000000000027 in floats
        metrics |= {metric: value, f"{metric}.champion": reference, f"{metric}.drop": drop}
        if drop > tolerated:
            alerts.append(f"{metric} {value:.4g} is {drop:.4g} below the champion's {reference:.4g} (> {tolerated:g})")
    return SignalResult.judged(PERFORMANCE, metrics, alerts, labelled_rows=len(labelled),
                               champion_version=champion_version, positive_label=_plain(positive))


def fairness(predictions: pd.Series, groups: pd.Series, threshold: float, sensitive: str) -> SignalResult:
    """Demographic parity difference of the predictions across `groups` (rows without a group are left out)."""
    known = groups.notna().to_numpy()
    predictions, groups = predictions[known], groups[known].astype(str)
    if groups.nunique() < 2:
        return SignalResult.inconclusive(FAIRNESS, f"the window's logged requests have {groups.nunique()} group(s) "
                                                   f"of {sensitive!r}; parity needs two", sensitive=sensitive)
    positive = positive_class(predictions)
    selected = (predictions == positive).astype(int).to_numpy()
    # Demographic parity looks at the predictions only: they stand in for y_true too.
    value = float(demographic_parity_difference(selected, selected, sensitive_features=groups.to_numpy()))
    frame = MetricFrame(metrics={"selection_rate": selection_rate, "count": count},
                        y_true=selected, y_pred=selected, sensitive_features=groups.to_numpy())
    by_group = {str(g): {k: float(v) for k, v in row.items()} for g, row in frame.by_group.iterrows()}
    alerts = [f"{DPD} {value:.4g} > {threshold:g} across {sensitive}"] if value > threshold else []
    return SignalResult.judged(FAIRNESS, {DPD: value}, alerts, sensitive=sensitive, by_group=by_group,
                               positive_label=_plain(positive))


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
