"""A pull request's candidate: trained on this machine when the change feeds training, measured against
the champion, never registered nor deployed.

The champion is what the base branch committed: its `dvc.lock` and each pipeline's `evaluation.json`
(a DVC metric kept in git, `cache: false`), read with `git show`. A CI runner has no registry of its
own, and the committed evaluation is what `dvc metrics diff` compares too.

Whether a change feeds training is DVC's answer (specops.backends.dvc_causes): a changed parameter,
spec, data or code file, or stage command. Outputs merely missing from a fresh clone do not count.
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from specops.backends.dvc_causes import FEEDS_TRAINING, pipeline_causes, pipeline_status
from specops.backends.local import LocalBackend
from specops.core.paths import RunPaths
from specops.errors import SpecopsError
from specops.gates import Baseline, select_best
from specops.plan.backend import Reporter, quiet
from specops.plan.model import Cause, Plan
from specops.project import Project
from specops.spec import Pipeline

ROC_POINTS = 11  # the ROC curve sampled at false positive rates 0, 0.1, ..., 1: enough to see its shape
TOP_FEATURES = 10


@dataclass(frozen=True)
class Plots:
    """What the reviewer sees drawn: the selected candidate on the held-out rows."""

    labels: tuple[str, str]  # the negative and the positive class, as the data spells them
    confusion: tuple[tuple[int, int], tuple[int, int]]  # rows: true negative, positive; columns: predicted
    roc: tuple[float, ...]  # true positive rate at false positive rates 0, 0.1, ..., 1
    importance: tuple[tuple[str, float], ...]  # the most important features first


@dataclass(frozen=True)
class PipelineReview:
    pipeline: str
    causes: tuple[Cause, ...]
    trained: bool
    failed: bool = False  # training (or data validation before it) failed: `note` says how
    note: str = ""  # why nothing was trained, what failed, or what could not be compared
    candidate: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    champion: str | None = None  # the candidate the base revision's committed evaluation selected
    champion_metrics: dict[str, float] | None = None
    gate: str = ""
    checks: tuple[dict[str, Any], ...] = ()
    by_group: dict[str, dict[str, float]] = field(default_factory=dict)
    champion_by_group: dict[str, dict[str, float]] = field(default_factory=dict)
    plots: Plots | None = None
    metrics_diff: str = ""  # `dvc metrics diff --md` against the base revision

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check["passed"] for check in self.checks)


@dataclass(frozen=True)
class Review:
    base: str
    plan: Plan
    pipelines: tuple[PipelineReview, ...]

    @property
    def failed(self) -> list[str]:
        return [p.pipeline for p in self.pipelines if p.failed]


def review(project: Project, base: str, plan: Plan | None = None, report: Reporter = quiet) -> Review:
    """The plan of `project` (or `plan`, made elsewhere, e.g. for an Azure environment) and, for each pipeline
    whose training inputs changed, its candidate trained by the local backend and compared with `base`."""
    _check_revision(project.root, base)
    backend = project.backend
    if not isinstance(backend, LocalBackend):
        raise SpecopsError(f"environment {project.env!r} uses the {backend.name} backend: the review trains candidates "
                           "locally, so pass a local environment with --env (the plan can be another's: --plan-env)")
    plan = plan if plan is not None else project.plan()
    specs = project.specs
    pipelines = specs.of_kind(Pipeline)
    backend.check_rendered(specs)
    # Up to evaluate: what the gate and register stages would do is not training (and never runs here).
    status = pipeline_status(project.root, pipelines, until="evaluate") if pipelines else {}
    reviews = []
    for pipeline in pipelines:
        causes = pipeline_causes(project.root, pipeline, status, specs, project.state.read().fields())
        if not any(cause.kind in FEEDS_TRAINING for cause in causes):
            reviews.append(PipelineReview(pipeline.name, causes, trained=False,
                                          note="nothing that feeds training changed: no candidate trained"))
            continue
        report(f"Pipeline/{pipeline.name}: training a candidate (not registered, not deployed)")
        try:
            backend.train_candidate(pipeline, specs, report)
        except SpecopsError as exc:  # the reviewer sees why in the comment; the command then exits 1
            reviews.append(PipelineReview(pipeline.name, causes, trained=False, failed=True, note=str(exc)))
            continue
        reviews.append(_measure(project, pipeline, causes, base))
    return Review(base, plan, tuple(reviews))


def _measure(project: Project, pipeline: Pipeline, causes: tuple[Cause, ...], base: str) -> PipelineReview:
    from specops.lifecycle.context import StageContext
    from specops.lifecycle.gate import check_result
    from specops.slo.gates import slo_budgets

    ctx = StageContext.of(project.specs, pipeline)
    evaluation = json.loads(ctx.paths.evaluation.read_text(encoding="utf-8"))
    selected = select_best(evaluation["candidates"], pipeline.spec.selection)
    candidate = evaluation["candidates"][selected]
    committed = _committed_evaluation(project.root, ctx.paths, base)
    champion, champion_metrics, champion_groups, note = None, None, {}, ""
    if committed is None:
        note = (f"{base} has no committed {ctx.paths.rel(ctx.paths.evaluation)}: nothing to compare with "
                "(commit dvc.lock and the evaluation after training on the base branch)")
    else:
        champion = select_best(committed["candidates"], pipeline.spec.selection)
        champion_metrics = committed["candidates"][champion]["metrics"]
        champion_groups = committed["candidates"][champion].get("by_group", {})
    baseline = (Baseline(f"the champion committed on {base} ({champion})", champion_metrics)
                if champion_metrics is not None else None)
    budgets = slo_budgets(ctx.specs, ctx.gate)
    checks = tuple(check_result(check, candidate["metrics"], baseline, budgets) for check in ctx.gate.spec.checks)
    return PipelineReview(
        pipeline.name, causes, trained=True, note=note, candidate=selected, metrics=candidate["metrics"],
        champion=champion, champion_metrics=champion_metrics, gate=ctx.gate.name, checks=checks,
        by_group=candidate.get("by_group", {}), champion_by_group=champion_groups,
        plots=candidate_plots(ctx, selected), metrics_diff=_metrics_diff(project.root, base))


def candidate_plots(ctx: Any, candidate_id: str) -> Plots:
    """Confusion matrix, ROC curve and feature importance of one candidate on the held-out rows of its split."""
    from sklearn.metrics import confusion_matrix, roc_curve

    from specops.lifecycle.candidates import saved_candidate
    from specops.lifecycle.evaluate import feature_importance, positive_label, positive_scores
    from specops.lifecycle.featurize import read_feature_table

    table = read_feature_table(ctx.paths)
    split = json.loads(ctx.paths.split.read_text(encoding="utf-8"))
    test = table.frame.iloc[split["test_rows"]]
    model = saved_candidate(ctx.paths, candidate_id).load_model(ctx.paths)
    inputs, positive = test[table.features], positive_label(model, table.target)
    negative = next(c for c in model.classes_ if c != positive)
    truth = (test[table.target] == positive).astype(int)
    predicted = (np.asarray(model.predict(inputs)) == positive).astype(int)
    (tn, fp), (fn, tp) = confusion_matrix(truth, predicted, labels=[0, 1]).tolist()
    fpr, tpr, _ = roc_curve(truth, positive_scores(model, inputs))
    grid = np.linspace(0.0, 1.0, ROC_POINTS)
    importance = feature_importance(model, inputs, test[table.target], split["seed"]).sort_values(ascending=False)
    return Plots(
        labels=(str(negative), str(positive)),
        confusion=((tn, fp), (fn, tp)),
        roc=tuple(round(float(v), 4) for v in np.interp(grid, fpr, tpr)),
        importance=tuple((str(k), round(float(v), 4)) for k, v in importance.head(TOP_FEATURES).items()),
    )


def _committed_evaluation(root: Path, paths: RunPaths, base: str) -> dict[str, Any] | None:
    shown = _git(root, "show", f"{base}:{paths.rel(paths.evaluation)}", check=False)
    if shown.returncode != 0:
        return None
    try:
        return json.loads(shown.stdout)
    except json.JSONDecodeError:
        return None


def _metrics_diff(root: Path, base: str) -> str:
    """Every committed metric against the workspace's, as DVC reports it (all sweep candidates)."""
    import sys

    done = subprocess.run([sys.executable, "-m", "dvc", "metrics", "diff", base, "--md"], cwd=root,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        return f"`dvc metrics diff {base}` failed: {done.stderr.strip().splitlines()[-1:] or ['no output']}"
    return done.stdout.strip()


def _check_revision(root: Path, base: str) -> None:
    if _git(root, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}", check=False).returncode != 0:
        raise SpecopsError(f"--base {base!r} is not a commit of the git repository at {root} "
                           "(in CI: fetch the base branch first, e.g. `git fetch origin main`)")


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=check, timeout=60)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SpecopsError(f"git {' '.join(args)} failed in {root}: {exc}") from None
