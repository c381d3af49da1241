"""Sweeps that search: the space and budget checks, the early termination policies, a real search in the train stage."""
from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from specops.errors import SpecErrors
from specops.lifecycle.search import BanditPruner
from specops.spec.kinds import EarlyTermination
from specops.spec.loader import load_specs

PIPELINE_FILE = "specs/pipelines/training.yaml"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def set_sweep(project: Path, block: str) -> None:
    """Replace the Pipeline's `sweep:` block (two lines in the repository's spec)."""
    edit(project / PIPELINE_FILE, '  sweep:\n    max_parallel: "{{ values.max_parallel }}"\n', block)


def spec_errors(project: Path) -> list:
    """What loading the specs (`specops validate`, every command) reports."""
    with pytest.raises(SpecErrors) as caught:
        load_specs(project)
    return caught.value.errors


def test_an_empty_list_of_values_names_params_yaml_its_line_and_the_parameter(project: Path):
    edit(project / "params.yaml", "max_depth: [4, 8]", "max_depth: []")
    [error] = spec_errors(project)
    assert (error.file, error.line, error.path) == ("params.yaml", 8, "train.sweep.max_depth")
    assert "nothing to try" in error.message


def test_a_zero_budget_is_a_spec_error_at_its_line(project: Path):
    set_sweep(project, "  sweep:\n    sampling_algorithm: random\n    limits:\n      max_total_trials: 0\n")
    # (a broken Pipeline also leaves the Endpoint and Monitor naming a model no Pipeline registers)
    [error] = [e for e in spec_errors(project) if e.file == PIPELINE_FILE]
    assert (error.line, error.path) == (15, "spec.sweep.limits.max_total_trials")
    assert "greater than or equal to 1" in error.message


def test_a_range_needs_random_or_bayesian_sampling_and_a_budget(project: Path):
    edit(project / "params.yaml", "max_depth: [4, 8]", "max_depth: {low: 2, high: 9}")
    [grid] = spec_errors(project)
    assert (grid.file, grid.path) == ("params.yaml", "train.sweep.max_depth") and "grid sampling takes only lists" in grid.message
    set_sweep(project, "  sweep:\n    sampling_algorithm: bayesian\n")
    [budget] = spec_errors(project)
    assert (budget.file, budget.line, budget.path) == (PIPELINE_FILE, 12, "spec.sweep.limits.max_total_trials")


def test_policy_fields_belong_to_their_policy():
    with pytest.raises(ValueError, match="needs one of slack_factor or slack_amount"):
        EarlyTermination(policy="bandit")
    with pytest.raises(ValueError, match="truncation_percentage belongs to"):
        EarlyTermination(policy="median_stopping", truncation_percentage=20)


@pytest.mark.parametrize("goal, best, kept, stopped", [("maximize", 0.80, 0.75, 0.70), ("minimize", 0.20, 0.21, 0.25)])
def test_bandit_stops_a_trial_outside_the_slack_of_the_best(goal: str, best: float, kept: float, stopped: float):
    """Azure ML's rule, slack_factor 0.1: maximize keeps >= best / 1.1, minimize keeps <= best * 1.1."""
    pruner = BanditPruner(EarlyTermination(policy="bandit", slack_factor=0.1), goal)
    study = optuna.create_study(direction=goal)
    leader = study.ask()
    leader.report(best, 0)
    verdicts = []
    for value in (kept, stopped):
        trial = study.ask()
        trial.report(value, 0)
        verdicts.append(pruner.prune(study, study._storage.get_trial(trial._trial_id)))
    assert verdicts == [False, True]


def test_a_search_with_early_stopping_trains_fully_only_the_promising_trials(project: Path, run):
    """One trial at a time, so the order is fixed: three deep forests finish, then stumps fall below their median."""
    edit(project / "params.yaml", "max_depth: [4, 8]", "max_depth: [6, 7, 8, 1, 2]")
    set_sweep(project, "  sweep:\n    early_termination: {policy: median_stopping}\n    limits: {max_concurrent_trials: 1}\n")
    run("validate", "features", "train")
    record = json.loads((project / "artifacts/credit-risk-training/candidates/search.json").read_text())
    states = [(t["params"]["max_depth"], t["state"], len(t["reports"])) for t in record["trials"]]
    assert states == [(6, "complete", 3), (7, "complete", 3), (8, "complete", 3), (1, "pruned", 1), (2, "pruned", 1)]
    saved = sorted(p.parent.name for p in (project / "artifacts/credit-risk-training/candidates").glob("*/meta.json"))
    assert saved == ["c01", "c02", "c03"]  # a stopped trial is no candidate
