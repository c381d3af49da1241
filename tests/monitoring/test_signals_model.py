"""Signals that need the registered model: prediction drift and feature-attribution drift (SHAP, NDCG)."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from credit_risk.generate import generate
from specops.state.audit import AuditLog
from specops.controller.events import EventQueue
from specops.monitoring.model_baseline import Attribution, attribution, ndcg
from specops.monitoring.registered import registered_model
from specops.controller.monitors import run_monitor
from specops.project import Project
from specops.spec import load_specs
from specops.spec.monitors import Monitor
from tests.monitoring.conftest import FIRE, age_label, model_inputs_of, with_signals, write_scored


def champion_predictions(root, rows: pd.DataFrame) -> np.ndarray:
    model = registered_model(load_specs(root), "credit-risk", "champion")
    return model.load().predict(model_inputs_of(root, rows))


def run(root):
    specs = load_specs(root)
    return run_monitor(Project.of(specs), specs.get(Monitor, "credit-drift"), FIRE)


def test_ndcg_is_one_for_the_same_ranking_and_falls_when_the_top_feature_changes():
    base = Attribution({"a": 0.6, "b": 0.3, "c": 0.1, "d": 0.05}, "shap", 100)
    assert ndcg(base, base) == 1.0
    assert ndcg(base, Attribution({"a": 6, "b": 3, "c": 1, "d": 0.5}, "shap", 100)) == 1.0  # scale does not matter
    swapped = Attribution({"a": 0.1, "b": 0.3, "c": 0.6, "d": 0.05}, "shap", 100)
    assert ndcg(base, swapped) < 0.9
    # Swapping the two least important features costs little: the metric weighs the top of the ranking.
    assert ndcg(base, Attribution({"a": 0.6, "b": 0.3, "c": 0.05, "d": 0.1}, "shap", 100)) > 0.99


def test_models_shap_cannot_read_fall_back_to_permutation_importance():
    data = generate(600, seed=2)
    features = data[["income", "age", "credit_score"]].astype(float)
    features = (features - features.mean()) / features.std()
    model = LogisticRegression().fit(features, age_label(data))
    result = attribution(model, features)
    assert result.method == "permutation" and result.ranking()[0] == "age"
    assert ndcg(result, attribution(model, features)) == 1.0  # the same rows and seed: the same ranking


def test_unshifted_traffic_keeps_the_champions_predictions_and_ranking(registered, webhook):
    with_signals(registered, "  prediction_drift: {}\n  feature_attribution_drift: {}\n")
    rows = generate(1000, seed=9)
    write_scored(registered, rows, FIRE - timedelta(hours=1), champion_predictions(registered, rows))
    result = run(registered)
    prediction, attributed = result.signal("prediction_drift"), result.signal("feature_attribution_drift")
    assert prediction.status == "ok" and prediction.metrics["jensen_shannon_distance"] < 0.1
    assert attributed.status == "ok" and attributed.metrics["normalized_discounted_cumulative_gain"] >= 0.9
    assert attributed.details["method"] == "shap" and attributed.details["target_top"][0] == attributed.details["baseline_top"][0]
    assert result.status == "ok" and EventQueue(registered).pending() == [] and webhook.posts == []


def test_flipped_predictions_drift_and_queue_a_drift_retrain(registered, webhook):
    with_signals(registered, "  prediction_drift: {}\n")
    rows = generate(1000, seed=9)
    write_scored(registered, rows, FIRE - timedelta(hours=1), 1 - champion_predictions(registered, rows))
    result = run(registered)
    assert result.alerted == ["prediction_drift"] and result.drifted == []
    assert result.signal("prediction_drift").alerts[0].startswith("jensen_shannon_distance")
    [event] = EventQueue(registered).pending()
    assert event.reason == "drift" and "prediction_drift: jensen_shannon_distance" in event.detail
    [alert] = [e for e in AuditLog(registered).entries() if e["action"] == "drift_alert"]
    assert alert["features"] == [] and list(alert["signals"]) == ["prediction_drift"]


def test_a_challenger_that_ranks_another_feature_first_alerts(registered, webhook):
    with_signals(registered, "  feature_attribution_drift: {model: challenger, on_alert: [notify]}\n")
    rows = generate(1000, seed=9)
    write_scored(registered, rows, FIRE - timedelta(hours=1), champion_predictions(registered, rows))
    result = run(registered)
    signal = result.signal("feature_attribution_drift")
    assert signal.status == "alert" and signal.metrics["normalized_discounted_cumulative_gain"] < 0.9
    assert signal.details["target_top"][0] == "age" != signal.details["baseline_top"][0]
    assert signal.details["model"] == "credit-risk v2 (challenger)"
    assert EventQueue(registered).pending() == []  # on_alert: notify only
    [post] = webhook.posts
    assert list(post["alerts"]) == ["feature_attribution_drift"]
