"""The Monitor's optional signal blocks: off unless declared, Azure ML's defaults, errors at file:line:field."""
from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from credit_risk.generate import generate
from specops.controller.monitors import run_monitor
from specops.project import Project
from specops.spec import load_specs
from specops.spec.monitors import MIN_TARGET_ROWS, Monitor, alert_actions
from tests.monitoring.conftest import FIRE, with_signals, write_log
from tests.monitoring.test_monitor_spec import errors_of, load_monitor, project, with_spec_fields  # noqa: F401 (fixture)

ALL_SIGNALS = ("  prediction_drift: {}\n  data_quality: {}\n  performance: {}\n  fairness: {}\n"
               "  feature_attribution_drift: {}\n")


def test_signals_are_off_unless_declared(project):
    monitor = load_monitor(with_spec_fields(project, ""))[0]
    blocks = ("prediction_drift", "data_quality", "performance", "fairness", "feature_attribution_drift")
    assert all(getattr(monitor.spec, name) is None for name in blocks)
    assert monitor.spec.min_target_rows == MIN_TARGET_ROWS == 1000


def test_declared_blocks_take_azure_mls_names_and_defaults(project):
    spec = load_monitor(with_spec_fields(project, ALL_SIGNALS))[0].spec
    assert dict(spec.prediction_drift.signals().numerical) == {"normalized_wasserstein_distance": 0.1}
    assert dict(spec.prediction_drift.signals().categorical) == {"jensen_shannon_distance": 0.1}
    # Azure ML's 0 for nulls and type errors; out-of-bounds tolerates the chance extremes of a healthy window.
    quality = {"null_value_rate": 0.0, "data_type_error_rate": 0.0, "out_of_bounds_rate": 0.01}
    assert spec.data_quality.metric_thresholds.numerical == spec.data_quality.metric_thresholds.categorical == quality
    assert spec.performance.max_drop == {"accuracy": 0.03} and spec.performance.min_labels == 1000
    assert spec.fairness.metric_thresholds == {"demographic_parity_difference": 0.08}
    assert spec.feature_attribution_drift.metric_thresholds == {"normalized_discounted_cumulative_gain": 0.9}
    assert spec.feature_attribution_drift.model == "champion"


def test_what_an_alert_does_by_default_and_when_declared(project):
    monitor = load_monitor(with_spec_fields(project, ALL_SIGNALS))[0]  # actions: retrain and notify
    assert alert_actions(monitor, "data_drift") == ["retrain", "notify"]
    assert alert_actions(monitor, "performance") == ["retrain", "notify"]
    assert alert_actions(monitor, "prediction_drift") == ["retrain", "notify"]
    assert alert_actions(monitor, "data_quality") == alert_actions(monitor, "fairness") == ["notify"]
    declared = load_monitor(with_spec_fields(project, "  performance: {on_alert: [notify]}\n"))[0]
    assert alert_actions(declared, "performance") == ["notify"]


def test_signal_errors_point_at_the_field(project):
    errors = errors_of(with_spec_fields(project, (
        "  min_target_rows: 0\n"
        "  data_quality:\n    metric_thresholds:\n      numerical: {null_value_rate: 1.5, mean: 0.1}\n"
        "  performance:\n    max_drop: {roc_auc: 0.03}\n    on_alert: [rollback]\n"
        "  fairness: {sensitive: colour}\n"
        "  feature_attribution_drift: {metric_thresholds: {normalized_discounted_cumulative_gain: 2}}\n"
        "  prediction_drift:\n    metric_thresholds:\n      categorical: {two_sample_kolmogorov_smirnov_test: 0.05}\n"
    )))
    text = "\n".join(errors)
    assert all(e.startswith("specs/monitor.yaml:") for e in errors)
    assert "spec.min_target_rows: Input should be greater than or equal to 1" in text
    assert "spec.data_quality.metric_thresholds.numerical.null_value_rate: Input should be less than or equal to 1" in text
    assert "spec.data_quality.metric_thresholds.numerical.mean" in text
    assert "spec.performance.max_drop.roc_auc" in text
    assert "spec.feature_attribution_drift.metric_thresholds.normalized_discounted_cumulative_gain" in text
    assert "spec.prediction_drift.metric_thresholds.categorical.two_sample_kolmogorov_smirnov_test" in text
    # Cross-checks run once every block parses.
    errors = errors_of(with_spec_fields(project, "  performance: {on_alert: [rollback]}\n  fairness: {sensitive: colour}\n"))
    text = "\n".join(errors)
    assert "spec.performance.on_alert[0]: 'rollback' is not configured in spec.actions" in text
    assert "spec.fairness.sensitive: column 'colour' is not in dataset 'credit-applications'" in text
    line = next(e for e in errors if "on_alert[0]" in e).split(":")[1]
    text_lines = (project / "specs" / "monitor.yaml").read_text().splitlines()
    assert "on_alert" in text_lines[int(line) - 1]


@pytest.fixture
def monitored(project_template: Path, tmp_path: Path) -> Path:
    """The monitor project (this module's `project` is test_monitor_spec's specs-only one)."""
    dest = tmp_path / "monitored"
    shutil.copytree(project_template, dest)
    return dest


def test_the_minimum_window_is_the_specs(monitored):
    root = monitored
    write_log(root, generate(600, seed=6), FIRE - timedelta(hours=1))
    specs = load_specs(root)
    assert run_monitor(Project.of(specs), specs.get(Monitor, "credit-drift"), FIRE).status == "inconclusive"  # 600 < 1,000
    with_signals(root, "  min_target_rows: 500\n")
    specs = load_specs(root)
    result = run_monitor(Project.of(specs), specs.get(Monitor, "credit-drift"), FIRE)
    assert result.status in ("ok", "drift") and result.drift is not None and result.target_rows == 600
