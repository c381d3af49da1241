"""Stage `evaluate`: score every candidate on the held-out rows and log the results to its run.

Metric names are kinds.EVALUATION_METRICS and kinds.FAIRNESS_METRICS, the
names gates refer to. Binary classification: the positive class is the
larger of the two target labels (1, True, "yes" > "no").
"""
from __future__ import annotations

import time
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, count, demographic_parity_difference, selection_rate
from matplotlib.figure import Figure
from sklearn.inspection import permutation_importance
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from specops.errors import StageFailed
from specops.lifecycle.candidates import SavedCandidate, saved_candidates
from specops.lifecycle.context import StageContext, read_json, write_json
from specops.lifecycle.featurize import FeatureTable, read_feature_table
from specops.registry import connect

LATENCY_CALLS = 200


def run(ctx: StageContext) -> None:
    table = read_feature_table(ctx.paths)
    split = read_json(ctx.paths, ctx.paths.split, "train")
    test = table.frame.iloc[split["test_rows"]]
    sensitive = ctx.sensitive_column
    connect(ctx.specs)
    report: dict[str, Any] = {"sensitive": sensitive, "test_rows": len(test), "candidates": {}}
    for candidate in saved_candidates(ctx.paths):
        model = candidate.load_model(ctx.paths)
        result = evaluate_model(model, test, table, sensitive)
        log_evaluation(candidate, model, test, table, result, split["seed"])
        report["candidates"][candidate.id] = {"run_id": candidate.run_id, **result}
        print(f"evaluated {candidate.id}: " + ", ".join(f"{k}={v:.4g}" for k, v in result["metrics"].items()))
    write_json(ctx.paths.evaluation, report)


def evaluate_model(model: Any, test: pd.DataFrame, table: FeatureTable, sensitive: str | None) -> dict[str, Any]:
    inputs = test[table.features]
    positive = positive_label(model, table.target)
    truth = (test[table.target] == positive).astype(int)
    predicted = (pd.Series(model.predict(inputs), index=test.index) == positive).astype(int)
    metrics = {
        "accuracy": accuracy_score(truth, predicted),
        "precision": precision_score(truth, predicted, zero_division=0),
        "recall": recall_score(truth, predicted, zero_division=0),
        "f1": f1_score(truth, predicted, zero_division=0),
        "roc_auc": roc_auc_score(truth, positive_scores(model, inputs)),
        **latency_ms(model, inputs),
    }
    if not sensitive:
        return {"metrics": _floats(metrics), "positive_label": positive}
    metrics["parity_diff"] = demographic_parity_difference(truth, predicted, sensitive_features=test[sensitive])
    return {"metrics": _floats(metrics), "positive_label": positive,
            "by_group": fairness_by_group(truth, predicted, test[sensitive])}


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in metrics.items()}


def positive_label(model: Any, target: str) -> Any:
    classes = list(getattr(model, "classes_", []))
    if len(classes) != 2:
        raise StageFailed(f"evaluate supports binary classification; target {target!r} has {len(classes)} classes: {classes}")
    return classes[1]  # scikit-learn sorts classes_, so this is the larger label


def positive_scores(model: Any, inputs: pd.DataFrame) -> np.ndarray:
    if hasattr(model, "predict_proba"):
        return model.predict_proba(inputs)[:, 1]
    return model.decision_function(inputs)


def latency_ms(model: Any, inputs: pd.DataFrame) -> dict[str, float]:
    """Single-row predict latency, the way an online endpoint calls the model."""
    rows = [inputs.iloc[[i % len(inputs)]] for i in range(LATENCY_CALLS)]
    timings = []
    for row in rows:
        start = time.perf_counter()
        model.predict(row)
        timings.append((time.perf_counter() - start) * 1000)
    return {"p50_latency_ms": float(np.percentile(timings, 50)), "p95_latency_ms": float(np.percentile(timings, 95))}


def fairness_by_group(truth: pd.Series, predicted: pd.Series, groups: pd.Series) -> dict[str, dict[str, float]]:
    frame = MetricFrame(
        metrics={"accuracy": accuracy_score, "selection_rate": selection_rate, "count": count},
        y_true=truth, y_pred=predicted, sensitive_features=groups,
    )
    return {str(group): _floats(row.to_dict()) for group, row in frame.by_group.iterrows()}


def log_evaluation(candidate: SavedCandidate, model: Any, test: pd.DataFrame, table: FeatureTable,
                   result: dict[str, Any], seed: int) -> None:
    inputs = test[table.features]
    truth = test[table.target]
    with mlflow.start_run(run_id=candidate.run_id):
        mlflow.log_metrics(result["metrics"])
        mlflow.log_figure(importance_plot(model, inputs, truth, seed), "plots/feature_importance.png")
        mlflow.log_figure(confusion_plot(truth, model.predict(inputs)), "plots/confusion_matrix.png")
        if "by_group" in result:
            mlflow.log_dict(result["by_group"], "fairness_by_group.json")


def feature_importance(model: Any, inputs: pd.DataFrame, truth: pd.Series, seed: int) -> pd.Series:
    """The model's own importances when it has them, else permutation importance on the test rows."""
    if hasattr(model, "feature_importances_"):
        values = model.feature_importances_
    elif hasattr(model, "coef_"):
        values = np.abs(np.asarray(model.coef_)).reshape(-1, inputs.shape[1]).mean(axis=0)
    else:
        values = permutation_importance(model, inputs, truth, n_repeats=5, random_state=seed).importances_mean
    return pd.Series(values, index=inputs.columns).sort_values()


def importance_plot(model: Any, inputs: pd.DataFrame, truth: pd.Series, seed: int) -> Figure:
    # Figure objects rather than pyplot: no global state, no GUI backend needed.
    importance = feature_importance(model, inputs, truth, seed)
    figure = Figure(figsize=(6, 0.35 * len(importance) + 1.2), layout="tight")
    axes = figure.subplots()
    axes.barh(importance.index, importance.to_numpy())
    axes.set_xlabel("importance")
    axes.set_title("Feature importance")
    return figure


def confusion_plot(truth: pd.Series, predicted: np.ndarray) -> Figure:
    figure = Figure(figsize=(4, 4), layout="tight")
    ConfusionMatrixDisplay.from_predictions(truth, predicted, ax=figure.subplots(), colorbar=False)
    return figure
