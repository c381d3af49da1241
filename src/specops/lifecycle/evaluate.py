"""Stage `evaluate`: score every candidate on the held-out rows and log the results to its run.

Metric names are kinds.task_metrics and kinds.TASK_FAIRNESS_METRICS of the
pipeline's task, the names gates refer to. Binary classification: the
positive class is the larger of the two target labels (1, True, "yes" > "no").
"""
from __future__ import annotations

import re
import time
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, count, selection_rate
from matplotlib.figure import Figure
from sklearn.inspection import permutation_importance
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
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
    task = ctx.pipeline.spec.task
    report: dict[str, Any] = {"task": task, "sensitive": sensitive, "test_rows": len(test), "candidates": {}}
    for candidate in saved_candidates(ctx.paths):
        model = candidate.load_model(ctx.paths)
        result = evaluate_model(model, test, table, sensitive, task)
        log_evaluation(candidate, model, test, table, result, split["seed"], task)
        report["candidates"][candidate.id] = {"run_id": candidate.run_id, **result}
        print(f"evaluated {candidate.id}: " + ", ".join(f"{k}={v:.4g}" for k, v in result["metrics"].items()))
    write_json(ctx.paths.evaluation, report)


def evaluate_model(model: Any, test: pd.DataFrame, table: FeatureTable, sensitive: str | None,
                   task: str = "binary") -> dict[str, Any]:
    """The task's metrics (kinds.task_metrics), latency, and fairness by the sensitive column's groups."""
    inputs = test[table.features]
    truth = test[table.target]
    predicted = pd.Series(model.predict(inputs), index=test.index)
    if task == "regression":
        result: dict[str, Any] = {"metrics": regression_metrics(truth, predicted)}
    elif task == "multiclass":
        result = multiclass_metrics(model, inputs, truth, predicted)
    else:
        result = binary_metrics(model, inputs, truth, predicted, table.target)
    result["metrics"].update(latency_ms(model, inputs))
    if sensitive:
        result["metrics"].update(fairness_gaps(task, truth, predicted, test[sensitive], result.get("positive_label")))
        result["by_group"] = fairness_by_group(task, truth, predicted, test[sensitive], result.get("positive_label"))
    result["metrics"] = _floats(result["metrics"])
    return result


def binary_metrics(model: Any, inputs: pd.DataFrame, truth: pd.Series, predicted: pd.Series, target: str) -> dict[str, Any]:
    positive = positive_label(model, target)
    truth, predicted = (truth == positive).astype(int), (predicted == positive).astype(int)
    scores = positive_scores(model, inputs)
    metrics = {
        "accuracy": accuracy_score(truth, predicted),
        "precision": precision_score(truth, predicted, zero_division=0),
        "recall": recall_score(truth, predicted, zero_division=0),
        "f1": f1_score(truth, predicted, zero_division=0),
        "roc_auc": roc_auc_score(truth, scores),
    }
    if hasattr(model, "predict_proba"):  # a decision function is no probability: no log loss without one
        metrics["log_loss"] = log_loss(truth, scores, labels=[0, 1])
    return {"metrics": metrics, "positive_label": positive}


def multiclass_metrics(model: Any, inputs: pd.DataFrame, truth: pd.Series, predicted: pd.Series) -> dict[str, Any]:
    classes = list(getattr(model, "classes_", sorted(truth.unique())))
    recalls = recall_score(truth, predicted, labels=classes, average=None, zero_division=0)
    metrics = {
        "accuracy": accuracy_score(truth, predicted),
        "f1_macro": f1_score(truth, predicted, average="macro", zero_division=0),
        "f1_weighted": f1_score(truth, predicted, average="weighted", zero_division=0),
        "min_class_recall": float(np.min(recalls)),
        **{class_metric("recall", c): r for c, r in zip(classes, recalls)},
    }
    if hasattr(model, "predict_proba"):
        metrics["log_loss"] = log_loss(truth, model.predict_proba(inputs), labels=classes)
    return {"metrics": metrics, "classes": [_plain(c) for c in classes]}


def regression_metrics(truth: pd.Series, predicted: pd.Series) -> dict[str, float]:
    return {
        "rmse": float(np.sqrt(mean_squared_error(truth, predicted))),
        "mae": mean_absolute_error(truth, predicted),
        "r2": r2_score(truth, predicted),
    }


def class_metric(name: str, label: Any) -> str:
    """recall_<class>, in the characters MLflow allows in a metric name."""
    return f"{name}_" + re.sub(r"[^\w.\-/ ]", "_", str(label))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in metrics.items()}


def positive_label(model: Any, target: str) -> Any:
    classes = list(getattr(model, "classes_", []))
    if len(classes) != 2:
        raise StageFailed(f"task binary needs two classes; target {target!r} has {len(classes)}: {classes} "
                          "(set the pipeline's spec.task to multiclass)")
    return classes[1]  # scikit-learn sorts classes_, so this is the larger label


def positive_scores(model: Any, inputs: pd.DataFrame) -> np.ndarray:
    if hasattr(model, "predict_proba"):
        return model.predict_proba(inputs)[:, 1]
    if hasattr(model, "decision_function"):
        return model.decision_function(inputs)
    # A model that only answers (a custom pyfunc): its answers are its scores.
    return (np.asarray(model.predict(inputs)) == model.classes_[1]).astype(float)


def latency_ms(model: Any, inputs: pd.DataFrame) -> dict[str, float]:
    """Single-row predict latency, the way an online endpoint calls the model."""
    rows = [inputs.iloc[[i % len(inputs)]] for i in range(LATENCY_CALLS)]
    timings = []
    for row in rows:
        start = time.perf_counter()
        model.predict(row)
        timings.append((time.perf_counter() - start) * 1000)
    return {"p50_latency_ms": float(np.percentile(timings, 50)), "p95_latency_ms": float(np.percentile(timings, 95))}


def _group_frame(task: str, truth: pd.Series, predicted: pd.Series, groups: pd.Series, positive: Any) -> MetricFrame:
    """Per group: binary, accuracy and selection rate; multiclass, error rate; regression, mean absolute error."""
    metrics: dict[str, Any]
    if task == "binary":
        truth, predicted = (truth == positive).astype(int), (predicted == positive).astype(int)
        metrics = {"accuracy": accuracy_score, "error_rate": _error_rate, "selection_rate": selection_rate}
    elif task == "multiclass":
        metrics = {"accuracy": accuracy_score, "error_rate": _error_rate}
    else:
        metrics = {"mae": mean_absolute_error}
    return MetricFrame(metrics={**metrics, "count": count}, y_true=truth, y_pred=predicted, sensitive_features=groups)


def _error_rate(truth: Any, predicted: Any) -> float:
    return float(np.mean(np.asarray(truth) != np.asarray(predicted)))


def fairness_gaps(task: str, truth: pd.Series, predicted: pd.Series, groups: pd.Series, positive: Any = None) -> dict[str, float]:
    """The worst-group gaps (largest minus smallest group value), named as in kinds.TASK_FAIRNESS_METRICS."""
    gaps = _group_frame(task, truth, predicted, groups, positive).difference(method="between_groups")
    if task == "binary":
        return {"parity_diff": gaps["selection_rate"], "error_rate_gap": gaps["error_rate"]}
    if task == "multiclass":
        return {"error_rate_gap": gaps["error_rate"]}
    return {"mae_gap": gaps["mae"]}


def fairness_by_group(task: str, truth: pd.Series, predicted: pd.Series, groups: pd.Series,
                      positive: Any = None) -> dict[str, dict[str, float]]:
    frame = _group_frame(task, truth, predicted, groups, positive)
    return {str(group): _floats(row.to_dict()) for group, row in frame.by_group.iterrows()}


def log_evaluation(candidate: SavedCandidate, model: Any, test: pd.DataFrame, table: FeatureTable,
                   result: dict[str, Any], seed: int, task: str = "binary") -> None:
    inputs = test[table.features]
    truth = test[table.target]
    with mlflow.start_run(run_id=candidate.run_id):
        mlflow.log_metrics(result["metrics"])
        if hasattr(model, "fit") or hasattr(model, "feature_importances_"):  # permutation importance refits nothing,
            # but scikit-learn scores only estimators; a bare pyfunc gets no importance plot
            mlflow.log_figure(importance_plot(model, inputs, truth, seed), "plots/feature_importance.png")
        if task == "regression":
            mlflow.log_figure(residual_plot(truth, model.predict(inputs)), "plots/predicted_vs_actual.png")
        else:
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


def residual_plot(truth: pd.Series, predicted: np.ndarray) -> Figure:
    figure = Figure(figsize=(4, 4), layout="tight")
    axes = figure.subplots()
    axes.scatter(truth, predicted, s=8, alpha=0.6)
    low, high = float(min(truth.min(), np.min(predicted))), float(max(truth.max(), np.max(predicted)))
    axes.plot([low, high], [low, high], color="grey", linewidth=1)
    axes.set_xlabel("actual")
    axes.set_ylabel("predicted")
    return figure
