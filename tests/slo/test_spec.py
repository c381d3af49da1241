"""The SLO kind and SLO gate checks: every mistake reported at its file, line and column."""
from __future__ import annotations

from pathlib import Path

import pytest

from specops.errors import SpecErrors
from specops.spec import Gate, load_specs
from specops.spec.kinds import ERROR_BUDGET_METRIC
from specops.spec.slos import SLO


def errors_of(root: Path) -> list[str]:
    with pytest.raises(SpecErrors) as info:
        load_specs(root)
    return [str(e) for e in info.value.errors]


def edit(root: Path, old: str, new: str) -> None:
    path = root / "specs" / "slo.yaml"
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_the_fixture_project_is_valid_and_the_freeze_check_bounds_the_budget(project: Path):
    specs = load_specs(project)
    slo = specs.get(SLO, "scoring-slo")
    assert [o.key for o in slo.spec.objectives] == ["availability", "latency"]
    [check] = specs.get(Gate, "release-freeze").spec.checks
    assert (check.metric, check.slo, check.objective) == (ERROR_BUDGET_METRIC, "scoring-slo", "availability")
    assert check.describe() == "error budget of SLO scoring-slo/availability not exhausted"


def test_an_unknown_endpoint_is_named(project: Path):
    edit(project, "  endpoint: scoring", "  endpoint: scorer")
    assert errors_of(project) == ["specs/slo.yaml:18:3: spec.endpoint: no Endpoint named 'scorer' (known: scoring)"]


def test_a_target_given_as_a_percentage_is_refused_with_the_fraction_it_meant(project: Path):
    edit(project, "target: 0.995", "target: 99.5")
    [error] = errors_of(project)
    assert error.startswith("specs/slo.yaml:22:")
    assert "target is a fraction strictly between 0 and 1" in error and "99.5% is 0.995" in error


def test_a_bad_window_and_an_unknown_sli_are_reported_together(project: Path):
    edit(project, "window: PT1H", "window: 28 days")
    edit(project, "{sli: latency,", "{sli: throughput,")
    errors = errors_of(project)
    assert len(errors) == 2
    assert errors[0].startswith("specs/slo.yaml:19:11: spec.window: ") and "invalid duration '28 days'" in errors[0]
    assert errors[1].startswith("specs/slo.yaml:23:") and "throughput" in errors[1]


def test_fairness_needs_a_sensitive_attribute_of_the_model_s_dataset(project: Path):
    edit(project, "    - {sli: latency,", "    - {sli: fairness, sensitive: income}\n    - {sli: latency,")
    assert errors_of(project) == ["specs/slo.yaml:23:23: spec.objectives[1].sensitive: column 'income' is not a sensitive "
                                  "attribute of dataset 'credit-applications' (sensitive: gender)"]
    edit(project, "sensitive: income}", "sensitive: gender}")
    load_specs(project)


def test_duplicate_objectives_need_names(project: Path):
    edit(project, "{sli: latency, threshold_ms: 350, target: 0.95}",
         "{sli: latency, threshold_ms: 350, target: 0.95}\n    - {sli: latency, threshold_ms: 1000, target: 0.99}")
    assert errors_of(project) == ["specs/slo.yaml:24:7: spec.objectives[2]: duplicate objective 'latency': give it a distinct name"]
    edit(project, "{sli: latency, threshold_ms: 1000,", "{sli: latency, name: latency-1s, threshold_ms: 1000,")
    load_specs(project)


def test_a_gate_check_must_name_an_existing_slo_and_objective(project: Path):
    edit(project, "{slo: scoring-slo, objective: availability}", "{slo: scoring-slos}")
    assert errors_of(project) == ["specs/slo.yaml:30:8: spec.checks[0].slo: no SLO named 'scoring-slos' (known: scoring-slo)"]
    edit(project, "{slo: scoring-slos}", "{slo: scoring-slo, objective: uptime}")
    assert errors_of(project) == ["specs/slo.yaml:30:26: spec.checks[0].objective: SLO 'scoring-slo' has no objective "
                                  "'uptime' (objectives: availability, latency)"]


def test_a_gate_check_naming_an_slo_bounds_only_the_budget(project: Path):
    edit(project, "{slo: scoring-slo, objective: availability}", "{slo: scoring-slo, metric: accuracy}")
    [error] = errors_of(project)
    assert error.startswith("specs/slo.yaml:30:7: spec.checks[0]: ") and "bounds error_budget_remaining, not 'accuracy'" in error


def test_a_pipeline_gate_may_hold_an_slo_check(project: Path):
    """The promotion gate's metrics must come from the pipeline, but an SLO check reads its budget instead."""
    gate = project / "specs" / "gates" / "promotion.yaml"
    gate.write_text(gate.read_text() + "    - slo: scoring-slo\n")
    specs = load_specs(project)
    assert specs.get(Gate, "promotion").spec.checks[-1].slo == "scoring-slo"


def test_a_window_longer_than_the_endpoints_log_retention_is_named(project: Path):
    edit(project, "window: PT1H", "window: P40D")
    [error] = errors_of(project)
    assert error.startswith("specs/slo.yaml:19:3: spec.window: window P40D is longer than endpoint scoring's "
                            "server.inference_log.retention (P35D)")
