"""Data quality: null, mistyped and out-of-range values per feature against the baseline's range and categories."""
from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd

from credit_risk.generate import generate
from specops.controller.events import EventQueue
from specops.monitoring.drift import BaselineSummary, summarize
from specops.monitoring.quality import data_quality
from specops.controller.monitors import run_monitor
from specops.project import Project
from specops.spec.signals import DATA_QUALITY_DEFAULTS, NULL_RATE, OUT_OF_BOUNDS_RATE, TYPE_ERROR_RATE
from specops.core.paths import ProjectPaths
from specops.serving.inference_log import InferenceLog
from specops.spec import load_specs
from specops.spec.monitors import Monitor
from tests.monitoring.conftest import FIRE, with_signals

DEFAULTS = {"numerical": DATA_QUALITY_DEFAULTS, "categorical": DATA_QUALITY_DEFAULTS}
TYPES = {"x": "float", "n": "int", "c": "str"}


def baseline() -> BaselineSummary:
    """x in [0, 99], n in [0, 99], c in {a, b}."""
    return summarize(pd.DataFrame({"x": np.arange(100.0), "n": np.arange(100), "c": ["a", "b"] * 50}),
                     numeric=["x", "n"], categorical=["c"])


def clean() -> pd.DataFrame:
    return pd.DataFrame({"x": np.linspace(0, 99, 200), "n": np.arange(200) % 100, "c": ["b", "a"] * 100})


def test_clean_data_within_the_baseline_has_no_bad_values():
    result = data_quality(baseline(), clean(), TYPES, DEFAULTS)
    assert result.status == "ok" and set(result.metrics.values()) == {0.0} and len(result.metrics) == 9


def test_a_column_with_ten_percent_nan_has_null_rate_0_1():
    target = clean()
    target.loc[:19, "x"] = np.nan
    result = data_quality(baseline(), target, TYPES, DEFAULTS)
    assert result.metrics[f"x.{NULL_RATE}"] == 0.1
    assert result.alerts == ["x null_value_rate 0.1 > 0"]
    # A threshold above the rate tolerates it.
    loose = {"numerical": {**DATA_QUALITY_DEFAULTS, NULL_RATE: 0.15}, "categorical": DATA_QUALITY_DEFAULTS}
    assert data_quality(baseline(), target, TYPES, loose).status == "ok"


def test_values_beyond_the_baseline_range_and_unseen_categories_are_out_of_bounds():
    target = clean()
    target.loc[:9, "x"] = 99.5  # above the baseline's maximum 99
    target.loc[10:13, "x"] = -0.1  # below its minimum 0
    target.loc[:5, "c"] = "z"
    result = data_quality(baseline(), target, TYPES, DEFAULTS)
    assert result.metrics[f"x.{OUT_OF_BOUNDS_RATE}"] == 14 / 200
    assert result.metrics[f"c.{OUT_OF_BOUNDS_RATE}"] == 6 / 200
    assert result.metrics[f"n.{OUT_OF_BOUNDS_RATE}"] == 0.0 and result.metrics[f"x.{NULL_RATE}"] == 0.0
    assert result.alerts == ["x out_of_bounds_rate 0.07 > 0.01", "c out_of_bounds_rate 0.03 > 0.01"]
    # One chance extreme in 200 rows (0.5%) stays below the default 1%.
    single = clean()
    single.loc[0, "x"] = 99.5
    assert data_quality(baseline(), single, TYPES, DEFAULTS).status == "ok"


def test_strings_in_a_numeric_column_fractions_in_an_int_one_and_numbers_in_a_str_one_are_type_errors():
    target = clean().astype({"x": object, "n": object, "c": object})
    target.loc[:3, "x"] = "12.5"  # text, even if it reads as a number
    target.loc[4, "x"] = None
    target.loc[:1, "n"] = 3.5
    target.loc[2, "n"] = True
    target.loc[:4, "c"] = 1
    result = data_quality(baseline(), target, TYPES, DEFAULTS)
    assert result.metrics[f"x.{TYPE_ERROR_RATE}"] == 4 / 200 and result.metrics[f"x.{NULL_RATE}"] == 1 / 200
    assert result.metrics[f"n.{TYPE_ERROR_RATE}"] == 3 / 200
    assert result.metrics[f"c.{TYPE_ERROR_RATE}"] == 5 / 200
    # A mistyped value is not also out of bounds.
    assert result.metrics[f"x.{OUT_OF_BOUNDS_RATE}"] == 0.0 and result.metrics[f"c.{OUT_OF_BOUNDS_RATE}"] == 0.0


def test_a_missing_column_is_all_null():
    result = data_quality(baseline(), clean().drop(columns=["c"]), TYPES, DEFAULTS)
    assert result.metrics[f"c.{NULL_RATE}"] == 1.0


def test_a_monitor_reports_bad_inputs_notifies_and_does_not_retrain(project, webhook):
    with_signals(project, "  data_quality:\n    metric_thresholds:\n      numerical: {null_value_rate: 0.05}\n")
    rows = generate(1000, seed=8).drop(columns=["default", "gender"]).astype({"income": object})
    rows.loc[:99, "income"] = None  # 10% missing
    rows.loc[100:104, "income"] = "n/a"  # text where a number belongs
    records = rows.to_dict(orient="records")
    at = (FIRE - timedelta(hours=1)).timestamp()
    InferenceLog(ProjectPaths(project).endpoint("credit-risk"), 0).write_requests([
        {"time": at, "request_id": str(i), "row": 0, "deployment": "blue", "model": "credit-risk", "version": "1",
         "shadow": False, "inputs": row, "prediction": 0, "latency_ms": 1.0} for i, row in enumerate(records)])
    specs = load_specs(project)
    result = run_monitor(Project.of(specs), specs.get(Monitor, "credit-drift"), FIRE)

    quality = result.signal("data_quality")
    assert quality.metrics["income.null_value_rate"] == 0.1 and quality.metrics["income.data_type_error_rate"] == 0.005
    # The thresholds replace the numerical defaults: null rate 0.1 > 0.05 alerts, and the unset metrics are not judged.
    assert quality.alerts == ["income null_value_rate 0.1 > 0.05"]
    assert "data_quality" in result.alerted and result.drift is not None  # the text did not break the drift engine
    assert EventQueue(project).pending() == []  # data quality notifies by default; retraining would not fix inputs
    assert [list(p["alerts"]) for p in webhook.posts] == [[*(["data_quality"])]]
    report = json.loads((result.report_dir / "report.json").read_text())
    assert report["monitoring_signals"][0]["details"]["features"][0]["feature"] == "income"
