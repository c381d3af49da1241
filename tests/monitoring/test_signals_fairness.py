"""Fairness by group: fairlearn's demographic parity difference of the logged predictions, reported (and notified)."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
from fairlearn.metrics import demographic_parity_difference

from credit_risk.generate import generate
from specops.controller.events import EventQueue
from specops.monitoring.outcomes import fairness
from specops.controller.monitors import run_monitor
from specops.project import Project
from specops.spec import load_specs
from specops.spec.monitors import Monitor
from tests.monitoring.conftest import FIRE, with_signals, write_scored


def test_the_difference_is_fairlearns_and_alerts_above_the_threshold():
    rng = np.random.default_rng(3)
    groups = pd.Series(rng.choice(["F", "M", "X"], 2000))
    # Group M is selected more often: rates about 0.3, 0.45 and 0.3.
    predictions = pd.Series((rng.random(2000) < np.where(groups == "M", 0.45, 0.3)).astype(int))
    expected = demographic_parity_difference(predictions, predictions, sensitive_features=groups)
    result = fairness(predictions, groups, 0.08, "gender")
    assert result.metrics["demographic_parity_difference"] == expected > 0.08
    assert result.status == "alert" and result.alerts[0].endswith("> 0.08 across gender")
    rates = {g: row["selection_rate"] for g, row in result.details["by_group"].items()}
    assert max(rates.values()) - min(rates.values()) == expected
    assert fairness(predictions, groups, 0.5, "gender").status == "ok"


def test_rows_without_a_group_are_left_out_and_one_group_is_inconclusive():
    predictions = pd.Series([1, 0, 1, 1])
    result = fairness(predictions, pd.Series(["F", "F", None, "M"]), 0.08, "gender")
    assert result.metrics["demographic_parity_difference"] == 0.5  # F: 1 of 2 selected, M: 1 of 1
    single = fairness(predictions, pd.Series(["F"] * 4), 0.08, "gender")
    assert single.status == "inconclusive" and "parity needs two" in single.reason


def test_a_monitor_judges_the_logged_groups_and_only_notifies(project, webhook):
    with_signals(project, "  fairness: {}\n")  # default: the dataset's sensitive column, threshold 0.08
    rows = generate(1000, seed=4)
    predictions = (rows["gender"] == "M").astype(int).to_numpy()  # every M selected, no F
    write_scored(project, rows, FIRE - timedelta(hours=1), predictions)
    specs = load_specs(project)
    result = run_monitor(Project.of(specs), specs.get(Monitor, "credit-drift"), FIRE)
    assert result.signal("fairness").metrics["demographic_parity_difference"] == 1.0
    assert result.alerted == ["fairness"] and result.status == "alert"
    assert EventQueue(project).pending() == []  # reported and notified, never a retraining by default
    [post] = webhook.posts
    assert list(post["alerts"]) == ["fairness"]


def test_a_log_without_the_sensitive_attribute_is_inconclusive(project, webhook):
    with_signals(project, "  fairness: {sensitive: gender}\n")
    rows = generate(1000, seed=4)
    write_scored(project, rows, FIRE - timedelta(hours=1), np.zeros(1000), sensitive=False)
    specs = load_specs(project)
    result = run_monitor(Project.of(specs), specs.get(Monitor, "credit-drift"), FIRE)
    signal = result.signal("fairness")
    assert signal.status == "inconclusive" and "carry no 'gender'" in signal.reason
    assert result.status == "ok" and webhook.posts == []
