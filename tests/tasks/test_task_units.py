"""The task-aware pieces without a server or a registry: what is a right answer, a regression canary's
analysis on its mean absolute error, SLO correctness within a tolerance, per-task monitor signals."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from specops.core.answers import absolute_error, correct
from specops.monitoring.outcomes import fairness, performance
from specops.rollout.analysis import FAILED, INCONCLUSIVE, SUCCESSFUL, Arm, analyse, feedback_counts
from specops.rollout.metrics import AbsoluteErrors, Traffic
from specops.slo.sli import correctness_counts
from specops.spec.endpoints import CanaryRollout


def test_a_class_is_right_when_equal_and_a_number_within_the_tolerance():
    assert correct("barolo", "barolo") and not correct("barolo", "barbera")
    assert correct(101.0, 100, tolerance=2) and not correct(103.0, 100, tolerance=2)
    assert not correct("a", 1.0, tolerance=5) and absolute_error(True, 1) is None and absolute_error(float("nan"), 1) is None


def errors(values) -> AbsoluteErrors:
    total = AbsoluteErrors()
    for value in values:
        total = total.add(value)
    return total


def arm(name: str, abs_errors) -> Arm:
    spread = errors(abs_errors)
    return Arm(name, Traffic(500, 0, 5.0), spread.count, 0, spread)


def mae_canary(min_samples: int = 50) -> CanaryRollout:
    return CanaryRollout(strategy="canary", steps=[{"weight": 10}], min_samples=min_samples,
                         rollback={"metric": "mae", "metric_regression": 0.1})


def check(result, name: str = "mae regression") -> dict:
    return next(c for c in result["checks"] if c["check"] == name)


def test_a_regression_canary_fails_on_evident_mae_growth_only():
    rng = np.random.default_rng(1)
    stable = rng.exponential(10.0, 400)
    same = analyse(arm("c", rng.exponential(10.0, 400)), arm("s", stable), mae_canary(), None)
    assert check(same)["phase"] == SUCCESSFUL and same["canary"]["mae"] > 0
    worse = analyse(arm("c", rng.exponential(20.0, 400)), arm("s", stable), mae_canary(), None)
    assert check(worse)["phase"] == FAILED and check(worse)["value"] > 0.5 and worse["phase"] == FAILED
    few = analyse(arm("c", [1.0] * 10), arm("s", stable), mae_canary(), None)
    assert check(few)["phase"] == INCONCLUSIVE and "canary 10, stable 400, need 50" in check(few)["note"]


def test_feedback_counts_gather_absolute_errors_of_numeric_answers():
    records = [{"deployment": "g", "shadow": False, "time": 5.0, "prediction": p, "label": y}
               for p, y in ((10.0, 12.0), (3.0, 3.0), (7.5, 5.0))]
    labelled, right, spread = feedback_counts(records, "g", since=0.0)
    assert (labelled, right, spread.count) == (3, 1, 3)
    assert spread.mean == pytest.approx((2.0 + 0.0 + 2.5) / 3)


def test_slo_correctness_counts_a_number_within_its_tolerance():
    records = [{"deployment": "g", "prediction": p, "label": y} for p, y in ((10.0, 12.0), (3.0, 3.0), (7.5, 2.0))]
    good, bad, labelled = correctness_counts(records, {}, tolerance=2.0)
    assert (good, bad, labelled) == (2.0, 1.0, 3)
    assert correctness_counts(records, {})[:2] == (1.0, 2.0)  # without one: only exact answers


def test_performance_of_a_regression_is_its_error_growth_and_of_classes_their_macro_f1():
    labelled = pd.DataFrame({"prediction": [10.0, 20.0, 30.0, 40.0], "label": [12.0, 18.0, 33.0, 36.0]})
    grown = performance(labelled, {"mae": 2.0, "rmse": 2.5}, {"mae": 0.2}, 4, "1", "regression")
    assert grown.metrics["mae"] == pytest.approx(2.75) and grown.metrics["mae.drop"] == pytest.approx(0.375)
    assert grown.status == "alert" and "37.5% above the champion's 2" in grown.alerts[0]
    classes = pd.DataFrame({"prediction": ["a", "b", "c", "c"], "label": ["a", "b", "c", "b"]})
    judged = performance(classes, {"f1_macro": 0.8}, {"f1_score": 0.05}, 4, "1", "multiclass")
    assert judged.status == "ok" and judged.metrics["f1_score"] == pytest.approx(7 / 9)


def test_parity_of_several_classes_is_the_worst_class_gap():
    predictions = pd.Series(["a", "a", "b", "c", "a", "b", "b", "c"])
    groups = pd.Series(["x", "x", "x", "x", "y", "y", "y", "y"])
    result = fairness(predictions, groups, 0.2, "site")
    # class a: x 2/4, y 1/4 (gap 0.25); b: 1/4 vs 2/4 (0.25); c: 1/4 vs 1/4 (0)
    assert result.metrics["demographic_parity_difference"] == pytest.approx(0.25) and result.status == "alert"
    assert result.details["worst_class"] in ("a", "b") and set(result.details["by_class"]) == {"a", "b", "c"}
