"""The Monitor kind: validated fields, cross-references, and what a monitor run reads from it."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

import pytest

from specops.errors import SpecErrors
from specops.spec.signals import AZUREML, BLUEPRINT, KS, PSI
from specops.spec import KINDS, Dataset, Document, load_specs
from specops.core.durations import parse_duration
from specops.spec.monitors import Monitor, baseline_dataset, monitored_features
from tests.conftest import copy_specs

REPO = Path(__file__).resolve().parents[2]
MONITOR = """apiVersion: specops/v1
kind: Monitor
metadata:
  name: credit-drift
spec:
  baseline:
    dataset: credit-applications
  target:
    endpoint: credit-risk
    lookback_window_size: P1D
  schedule: "0 * * * *"
  actions:
    retrain: credit-risk-training
    notify: ${DRIFT_WEBHOOK_URL}
"""


class Endpoint(Document):
    """A stand-in for the Endpoint kind, so these tests do not depend on its fields."""

    kind: Literal["Endpoint"]
    spec: dict


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    # Endpoint references are checked only while an Endpoint kind is registered.
    monkeypatch.delitem(KINDS, "Endpoint", raising=False)
    # The example's own endpoints and monitors stay out: these tests declare their own (and stand in for Endpoint).
    copy_specs(tmp_path / "specs")
    return tmp_path


def with_monitor(project: Path, text: str = MONITOR, **replacements: str) -> Path:
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    (project / "specs" / "monitor.yaml").write_text(text)
    return project


def with_spec_fields(project: Path, fields: str) -> Path:
    """The example monitor with more fields under spec (YAML indented by two)."""
    return with_monitor(project, **{"  schedule:": fields + "  schedule:"})


def load_monitor(project: Path) -> tuple[Monitor, object]:
    specs = load_specs(project)
    [monitor] = specs.of_kind(Monitor)
    return monitor, specs


def errors_of(project: Path) -> list[str]:
    with pytest.raises(SpecErrors) as info:
        load_specs(project)
    return [str(e) for e in info.value.errors]


def test_a_valid_monitor_defaults_to_azure_signals_and_every_model_input(project):
    monitor, specs = load_monitor(with_monitor(project))
    assert monitor.spec.data_drift.signals() == AZUREML
    assert parse_duration(monitor.spec.target.lookback_window_size) == timedelta(days=1)
    dataset = baseline_dataset(specs, monitor)
    assert dataset.name == "credit-applications"
    # The label (default) and the sensitive attribute (gender) are not model inputs.
    assert monitored_features(dataset, monitor) == {
        "income": "numerical", "debt_ratio": "numerical", "credit_score": "numerical", "age": "numerical",
        "employment_years": "numerical", "region": "categorical",
    }


def test_the_blueprint_rule_and_explicit_thresholds_are_declared_choices(project):
    blueprint = with_spec_fields(project, "  data_drift: {preset: blueprint}\n")
    assert load_monitor(blueprint)[0].spec.data_drift.signals() == BLUEPRINT
    explicit = with_spec_fields(project, (
        "  data_drift:\n    metric_thresholds:\n      numerical: {population_stability_index: 0.25,"
        " two_sample_kolmogorov_smirnov_test: 0.01}\n"))
    signals = load_monitor(explicit)[0].spec.data_drift.signals()
    assert dict(signals.numerical) == {PSI: 0.25, KS: 0.01} and dict(signals.categorical) == {}


def test_champion_baseline_resolves_to_the_pipeline_dataset(project):
    monitor, specs = load_monitor(with_monitor(project, **{"dataset: credit-applications": "champion: credit-risk"}))
    assert baseline_dataset(specs, monitor) == specs.get(Dataset, "credit-applications")


def test_field_errors_point_at_the_field(project):
    errors = errors_of(with_monitor(project, **{
        '"0 * * * *"': '"0 * * *"',
        "P1D": "1 day",
        "${DRIFT_WEBHOOK_URL}": "https://hooks.example.com/x",
        "  schedule:": "  data_drift:\n    metric_thresholds:\n      categorical: {normalized_wasserstein_distance: 0.1}\n  schedule:",
    }))
    text = "\n".join(errors)
    assert "spec.schedule: invalid cron expression '0 * * *'" in text
    assert "spec.target.lookback_window_size: invalid duration '1 day'" in text
    assert "spec.actions.notify: must be a reference like ${" in text
    assert "spec.data_drift.metric_thresholds.categorical.normalized_wasserstein_distance" in text
    assert all(e.startswith("specs/monitor.yaml:") for e in errors)


def test_thresholds_must_make_sense(project):
    errors = errors_of(with_spec_fields(project, (
        "  data_drift:\n    metric_thresholds:\n      numerical: {two_sample_kolmogorov_smirnov_test: 5}\n")))
    assert any("two_sample_kolmogorov_smirnov_test is a significance level" in e for e in errors)
    errors = errors_of(with_monitor(project, **{"  baseline:\n    dataset: credit-applications\n": "  baseline: {}\n"}))
    assert any("baseline needs exactly one of dataset or champion" in e for e in errors)


def test_cross_references_are_checked(project):
    errors = errors_of(with_monitor(project, **{
        "retrain: credit-risk-training": "retrain: nightly",
        "  schedule:": "  features: [income, colour, default]\n  schedule:",
    }))
    text = "\n".join(errors)
    assert "spec.actions.retrain: no Pipeline named 'nightly' (known: credit-risk-training)" in text
    assert "spec.features[1]: column 'colour' is not in dataset 'credit-applications'" in text
    assert "spec.features[2]: column 'default' is the label" in text
    errors = errors_of(with_monitor(project, **{"dataset: credit-applications": "champion: fraud"}))
    assert any("spec.baseline.champion: no pipeline registers model 'fraud' (known: credit-risk)" in e for e in errors)
    errors = errors_of(with_monitor(project, **{"dataset: credit-applications": "dataset: loans"}))
    assert any("spec.baseline.dataset: no Dataset named 'loans'" in e for e in errors)


def test_endpoint_references_are_checked_once_the_endpoint_kind_exists(project, monkeypatch):
    monkeypatch.setitem(KINDS, "Endpoint", Endpoint)
    with_monitor(project, **{"notify:": "rollback: credit-risk-old\n    notify:"})
    errors = errors_of(project)
    assert any("spec.target.endpoint: no Endpoint named 'credit-risk' (known: none defined)" in e for e in errors)
    assert any("spec.actions.rollback: no Endpoint named 'credit-risk-old'" in e for e in errors)
    (project / "specs" / "endpoints.yaml").write_text("".join(
        f"---\napiVersion: specops/v1\nkind: Endpoint\nmetadata: {{name: {name}}}\nspec: {{}}\n"
        for name in ("credit-risk", "credit-risk-old")))
    assert load_monitor(project)[0].spec.actions.rollback == "credit-risk-old"
