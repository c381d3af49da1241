"""Rolling performance on labelled requests vs the champion's evaluation; a drop alerts and queues a `performance` retrain."""
from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd

from credit_risk.generate import generate
from specops.state.audit import AuditLog
from specops.controller.events import EventQueue
from specops.monitoring.outcomes import performance
from specops.controller.monitors import run_monitor
from specops.project import Project
from specops.spec import load_specs
from specops.spec.monitors import Monitor
from tests.monitoring.conftest import FIRE, with_signals, write_scored

CHAMPION = {"accuracy": 0.90, "precision": 0.80, "recall": 0.70, "f1": 0.75}


def labelled(rows: int, correct: int) -> pd.DataFrame:
    """`rows` labelled predictions of which the first `correct` are right."""
    predictions = np.ones(rows, dtype=int)
    labels = predictions.copy()
    labels[correct:] = 0
    return pd.DataFrame({"prediction": predictions, "label": labels})


def test_an_accuracy_drop_beyond_the_tolerance_alerts():
    result = performance(labelled(1000, 850), CHAMPION, {"accuracy": 0.03}, 1000, "3")
    assert result.status == "alert" and result.metrics["accuracy"] == 0.85
    assert result.metrics["accuracy.champion"] == 0.90 and result.metrics["accuracy.drop"] == 0.05
    assert "accuracy 0.85 is 0.05 below the champion's 0.9" in result.alerts[0]
    assert performance(labelled(1000, 880), CHAMPION, {"accuracy": 0.03}, 1000, "3").status == "ok"
    # Exactly on the tolerance is tolerated (0.90 - 0.87 is not "more than 3 points" despite float rounding).
    assert performance(labelled(1000, 870), CHAMPION, {"accuracy": 0.03}, 1000, "3").status == "ok"


def test_precision_recall_and_f1_compare_with_the_evaluated_metrics():
    # 1000 predictions of 1: 600 right. Precision 0.6, recall 1.0, f1 0.75.
    result = performance(labelled(1000, 600), CHAMPION, {"precision": 0.1, "recall": 0.1, "f1_score": 0.1}, 100, "3")
    assert result.metrics["precision"] == 0.6 and result.metrics["recall"] == 1.0
    assert abs(result.metrics["f1_score"] - 0.75) < 1e-12 and result.metrics["f1_score.champion"] == 0.75
    assert [a.split()[0] for a in result.alerts] == ["precision"]  # 0.2 below; recall and f1 did not fall


def test_too_few_labels_or_an_unevaluated_metric_is_inconclusive():
    short = performance(labelled(999, 500), CHAMPION, {"accuracy": 0.03}, 1000, "3")
    assert short.status == "inconclusive" and "only 999 labelled rows" in short.reason
    missing = performance(labelled(1000, 500), {"accuracy": 0.9}, {"recall": 0.03}, 1000, "3")
    assert missing.status == "inconclusive" and "champion v3 has no evaluated recall" in missing.reason


def test_a_labelled_window_below_the_champion_queues_a_performance_retrain_once(registered, webhook):
    project = registered  # its champion was evaluated at accuracy 0.90
    with_signals(project, "  performance: {}\n")
    rows = generate(1000, seed=5)
    labels = np.zeros(1000, dtype=int)
    predictions = labels.copy()
    predictions[:150] = 1  # 850 of 1000 right: accuracy 0.85, 0.05 below the champion's 0.90
    write_scored(project, rows, FIRE - timedelta(hours=2), predictions, labels)
    specs = load_specs(project)
    spec = specs.get(Monitor, "credit-drift")

    result = run_monitor(Project.of(specs), spec, FIRE)
    assert result.status == "alert" and result.drifted == [] and result.alerted == ["performance"]
    assert result.signal("performance").metrics["accuracy"] == 0.85
    [event] = EventQueue(project).pending()
    assert event.id == f"performance:credit-drift:{FIRE.isoformat()}" and event.reason == "performance"
    assert event.pipeline == "credit-risk-training" and "accuracy 0.85" in event.detail
    [alert] = [e for e in AuditLog(project).entries() if e["action"] == "performance_alert"]
    assert alert["metrics"]["accuracy.drop"] == 0.05 and alert["labelled_rows"] == 1000
    [post] = webhook.posts
    assert list(post["alerts"]) == ["performance"] and post["drifted"] == {}
    report = json.loads((result.report_dir / "report.json").read_text())
    assert report["alerted_signals"] == ["performance"] and report["monitoring_signals"][0]["status"] == "alert"
    assert "performance: alert" in (result.report_dir / "report.html").read_text()

    again = run_monitor(Project.of(specs), spec, FIRE)
    assert again.repeat and len(EventQueue(project).statuses()) == 1 and len(webhook.posts) == 1


def test_a_performance_window_longer_than_the_drift_window_reads_its_older_labels(registered, webhook):
    with_signals(registered, "  performance: {lookback_window_size: P3D}\n")  # the drift window is P1D
    labels = np.zeros(1000, dtype=int)
    predictions = labels.copy()
    predictions[:150] = 1
    write_scored(registered, generate(1000, seed=5), FIRE - timedelta(days=2), predictions, labels)
    specs = load_specs(registered)

    result = run_monitor(Project.of(specs), specs.get(Monitor, "credit-drift"), FIRE)
    assert result.target_rows == 0 and result.alerted == ["performance"]  # nothing to judge drift on; 1000 labels
    assert result.signal("performance").metrics["accuracy"] == 0.85
