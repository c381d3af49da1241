"""The pull-request comment's Markdown (specops.review.comment), on a review built by hand.

The whole run — a two-commit repository, the candidate trained by `specops review` — is
tests/acceptance/test_pr_review.py (minutes); this checks the rendering in milliseconds.
"""
from __future__ import annotations

import re

from click.testing import CliRunner

from specops.cli import main as cli
from specops.plan.format import MARKER
from specops.plan.model import Action, Cause, Change, Operation, Plan
from specops.review.candidate import PipelineReview, Plots, Review
from specops.review.comment import to_comment

CAUSE = Cause("p-train", "params", "train.fixed.n_estimators", 100, 150)
PLOTS = Plots(("no", "yes"), ((300, 20), (40, 140)), (0.0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.99, 1.0),
              (("income", 0.4), ("debt ratio", 0.25)))
CHECKS = ({"check": "accuracy >= 0.72", "value": 0.88, "passed": True, "note": ""},
          {"check": "accuracy - champion >= -0.01", "value": -0.02, "passed": False,
           "note": "vs the champion committed on origin/main (depth-5)"})


def comment(**fields) -> str:
    op = Operation(Action.UPDATE, "Pipeline", "p", {"outputs": "stale (train)"}, {"outputs": "current"},
                   (Change("outputs", "stale (train)", "current"),), causes=(CAUSE,))
    trained = PipelineReview("p", (CAUSE,), True, candidate="depth-7", metrics={"accuracy": 0.88, "roc_auc": 0.9},
                             champion="depth-5", champion_metrics={"accuracy": 0.9, "roc_auc": 0.91}, gate="promotion",
                             checks=CHECKS, by_group={"north": {"accuracy": 0.87, "selection_rate": 0.3, "count": 250.0}},
                             champion_by_group={"north": {"accuracy": 0.9, "selection_rate": 0.31, "count": 250.0}},
                             plots=PLOTS, metrics_diff="| Path | Metric |")
    return to_comment(Review("origin/main", Plan("local", "local", [op]), (PipelineReview(**{**vars(trained), **fields}),)),
                      "local (Azure is not connected)")


def test_the_comment_holds_plan_reasons_metrics_gate_fairness_and_plots():
    text = comment()
    assert text.startswith(MARKER + "\n## specops plan: local (Azure is not connected)\n")
    assert text.count(MARKER) == 1 and "### specops plan" not in text  # one heading, one marker to find it by
    assert "- `p-train: params train.fixed.n_estimators: 100 → 150`" in text
    assert "candidate `depth-5` of the evaluation committed on `origin/main`" in text
    assert "| `accuracy` | 0.9 | 0.88 | -0.02 |" in text and "| `roc_auc` | 0.91 | 0.9 | -0.01 |" in text
    assert "**Gate `promotion`: the candidate fails ❌** (1 of 2 checks pass)" in text
    assert "| `accuracy - champion >= -0.01` | -0.02 | ❌ fail | vs the champion committed on origin/main (depth-5) |" in text
    assert "| `north` | 0.9 → 0.87 | 0.31 → 0.3 | 250 |" in text
    assert "| `no` | 300 | 20 |" in text and "| `yes` | 40 | 140 |" in text
    roc, importance = re.findall(r"```mermaid\n(.*?)```", text, re.S)
    assert roc.startswith("xychart-beta\n") and "line [0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.99, 1]" in roc
    assert importance.startswith("xychart-beta horizontal\n")
    assert 'x-axis ["income", "debt ratio"]' in importance and "bar [0.4, 0.25]" in importance


def test_without_a_committed_champion_or_training_the_comment_says_so():
    alone = comment(champion=None, champion_metrics=None, champion_by_group={}, note="origin/main has no committed evaluation")
    assert "against no champion" in alone and "> origin/main has no committed evaluation" in alone
    assert "| `accuracy` | - | 0.88 | - |" in alone
    untouched = comment(trained=False, note="nothing that feeds training changed: no candidate trained")
    assert "_nothing that feeds training changed: no candidate trained_" in untouched and "mermaid" not in untouched


def test_a_failed_training_is_shown_with_its_error():
    failed = comment(trained=False, failed=True, note="pipeline 'p' failed (dvc exit 1); see the stage output above")
    assert "Training the candidate **failed** ❌" in failed
    assert "```\npipeline 'p' failed (dvc exit 1); see the stage output above\n```" in failed
    assert "- `p-train: params train.fixed.n_estimators: 100 → 150`" in failed and "**Metrics**" not in failed


def test_the_command_on_a_project_without_pipelines_and_with_a_bad_base(declarations):
    """`specops review` as the workflow calls it: a bad --base is a clear error; no pipeline, nothing trained."""
    wrong = CliRunner().invoke(cli, ["review", "--root", str(declarations), "--base", "origin/nope"])
    assert wrong.exit_code == 1 and "--base 'origin/nope' is not a commit of the git repository" in wrong.output
    assert "Traceback" not in wrong.output
    done = CliRunner().invoke(cli, ["review", "--root", str(declarations), "--base", "HEAD"])
    assert done.exit_code == 0, done.output
    assert done.output.startswith(MARKER) and "+ Project/credit-risk" in done.output
    assert "_No pipeline is declared: no model to train._" in done.output
