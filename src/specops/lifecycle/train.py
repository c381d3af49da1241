"""Stage `train`: search the estimator's parameter space in parallel (lifecycle/search.py), log every trial to MLflow.

Training runs in worker processes; all MLflow logging happens afterwards in
this process, so only one process ever writes the SQLite store.

Each candidate's run gets the pipeline's selection metric on the held-out rows
(the number evaluate computes), and the execution's run gets the best of them:
on Azure ML that run is the sweep trial's own (the job's MLFLOW_RUN_ID), and the
sweep ranks its trials by that metric, the one its `primary_metric` names.
The model is saved as an MLflow model and logged as run artifacts
(`runs:/<run>/model`), not through MLflow 3's logged-models API, which Azure ML's
tracking server does not implement.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import os
import pickle
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import skops.io
from mlflow.models import infer_signature
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML
from sklearn.model_selection import train_test_split

from specops.errors import SpecErrors, SpecopsError, StageFailed
from specops.lifecycle.command import CommandModel, run_trials
from specops.lifecycle.context import StageContext, write_json
from specops.lifecycle.featurize import FeatureTable, read_feature_table
from specops.lifecycle.evaluate import evaluate_model
from specops.lifecycle.search import SearchOutcome, TrialResult, grid_points, search
from specops.lifecycle.trial import TrialData, fit_and_score, setup
from specops.registry import connect, use_experiment
from specops.spec.sweeps import PARAMS_FILE, Space, budget_errors, parse_space, read_params_lines, trial_budget


class TrainParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    test_size: float = Field(0.25, gt=0, lt=1)
    fixed: dict[str, Any] = {}
    sweep: dict[str, Any] = {}  # the search space: spec/sweeps.py says what a value may be


@dataclass(frozen=True)
class Candidate:
    id: str
    params: dict[str, Any]  # what the sweep chose: fixed values and this point

    def label(self, swept: list[str]) -> str:
        return ", ".join(f"{k}={self.params[k]}" for k in swept) or "fixed parameters"


def run(ctx: StageContext) -> None:
    params = load_params(ctx)
    space = search_space(ctx, params)
    training = ctx.pipeline.spec.training
    table = read_feature_table(ctx.paths)
    check_target(ctx, table)
    train_rows, test_rows = split_rows(table, params, ctx.pipeline.spec.task)
    if training is None:
        estimator = estimator_class(ctx.pipeline.spec.estimator)
        check_parameters(estimator, [*params.fixed, *space], ctx.pipeline.spec.estimator)
        outcome = run_search(ctx, estimator, params, space, table, train_rows, test_rows)
    else:  # the team's own code trains: one run of its command per grid point
        outcome = run_command(ctx, training.command, params, space, table, train_rows, test_rows)
    shutil.rmtree(ctx.paths.candidates, ignore_errors=True)
    write_json(ctx.paths.split, {"seed": params.seed, "test_size": params.test_size, "test_rows": test_rows.tolist()})
    write_json(ctx.paths.search, search_record(ctx, outcome))
    log_candidates(ctx, params, outcome, table.inputs.iloc[train_rows])
    shutil.rmtree(ctx.paths.base / "trials", ignore_errors=True)  # the command's outputs, now copied and logged


def run_command(ctx: StageContext, command: str, params: TrainParams, space: Space, table: FeatureTable,
                train_rows: np.ndarray, test_rows: np.ndarray) -> SearchOutcome:
    """Every grid point through the team's command, each scored as evaluate scores it. A command trains to the
    end: random and Bayesian sampling and early termination need an estimator specops fits in rungs."""
    sweep = ctx.pipeline.spec.sweep
    if sweep.sampling_algorithm != "grid" or sweep.early_termination is not None:
        field = "sampling_algorithm" if sweep.sampling_algorithm != "grid" else "early_termination"
        raise SpecErrors([ctx.specs.error(ctx.pipeline, ("spec", "sweep", field),
                                          "a training command sweeps a grid, to the end: random or Bayesian sampling "
                                          "and early termination need an `estimator:` that specops fits")])
    started = time.monotonic()
    points = {f"c{i:03d}": {**params.fixed, **point} for i, point in enumerate(grid_points(space))}
    models = run_trials(ctx.root, ctx.paths.base / "trials", command, points, table, train_rows, test_rows,
                        ctx.pipeline.spec.task, params.seed, ctx.pipeline.spec.selection.metric,
                        sweep.concurrent_trials)
    scores = selection_scores(ctx, models, table, test_rows)
    trials = [TrialResult(cid, points[cid], "complete", [scores[cid]], models[cid]) for cid in points]
    return SearchOutcome(trials, time.monotonic() - started)


def selection_scores(ctx: StageContext, models: dict[str, Any], table: FeatureTable, test_rows: np.ndarray) -> dict[str, float]:
    """Candidate id -> the pipeline's selection metric on the held-out rows, computed as evaluate computes it."""
    metric = ctx.pipeline.spec.selection.metric
    test = table.frame.iloc[test_rows]
    scores = {}
    for candidate_id, model in models.items():
        model = model.model if isinstance(model, CommandModel) else model
        metrics = evaluate_model(model, test, table, ctx.sensitive_column, ctx.pipeline.spec.task)["metrics"]
        if metric not in metrics:
            raise SpecopsError(f"pipeline {ctx.pipeline.name}: selection metric {metric!r} is not one evaluate computes "
                               f"({', '.join(sorted(metrics))})")
        scores[candidate_id] = metrics[metric]
    return scores


def load_params(ctx: StageContext) -> TrainParams:
    path, section = ctx.root / PARAMS_FILE, ctx.pipeline.spec.params
    if not path.is_file():
        raise SpecopsError(f"{PARAMS_FILE} not found in {ctx.root} (pipeline {ctx.pipeline.name} reads its section {section!r})")
    document = YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}
    if section not in document:
        raise SpecopsError(f"{PARAMS_FILE} has no section {section!r} (pipeline {ctx.pipeline.name}: spec.params)")
    try:
        params = TrainParams.model_validate(document[section] or {})
    except ValidationError as exc:
        problems = "\n".join(f"  {section}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SpecopsError(f"{PARAMS_FILE}: invalid section {section!r}:\n{problems}") from None
    # An overridden parameter takes one value: it leaves the sweep and joins the fixed parameters.
    sweep = {name: values for name, values in params.sweep.items() if name not in ctx.overrides}
    return params.model_copy(update={"fixed": {**params.fixed, **ctx.overrides}, "sweep": sweep})


def search_space(ctx: StageContext, params: TrainParams) -> Space:
    """The sweep's space, or the spec errors (params.yaml or the Pipeline spec, with file and line) that stop it."""
    lines = read_params_lines(ctx.root)
    space, errors = parse_space(ctx.pipeline.spec.params, params.sweep, lines)
    if not ctx.overrides:  # an Azure ML trial: its --set values took their parameters out of the space it was given
        errors += budget_errors(ctx.pipeline, space, lines, lambda at, message: ctx.specs.error(ctx.pipeline, at, message))
    if errors:
        raise SpecErrors(errors)
    return space


def estimator_class(dotted: str) -> type:
    module_name, _, class_name = dotted.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise SpecopsError(f"cannot import estimator {dotted!r}: no {class_name} in module {module_name}") from None
    if not (isinstance(found, type) and hasattr(found, "fit") and hasattr(found, "get_params")):
        raise SpecopsError(f"estimator {dotted!r} is not a scikit-learn compatible class (needs fit and get_params)")
    return found


def check_parameters(estimator: type, names: list[str], dotted: str) -> None:
    accepted = set(estimator().get_params())
    unknown = sorted(set(names) - accepted)
    if unknown:
        raise SpecopsError(f"{PARAMS_FILE}: {dotted} has no parameter(s) {', '.join(unknown)} (it accepts: {', '.join(sorted(accepted))})")


def check_target(ctx: StageContext, table: FeatureTable) -> None:
    """The data's target fits the pipeline's task (the spec check sees only what the Dataset declares)."""
    target = table.frame[table.target]
    classes = sorted(target.dropna().unique().tolist(), key=str)
    task, problem = ctx.pipeline.spec.task, ""
    if target.isna().any():
        problem = f"target {table.target!r} has {int(target.isna().sum())} missing value(s): rows without a label cannot train"
    elif task == "regression" and not pd.api.types.is_numeric_dtype(target):
        problem = f"task regression needs a numeric target; {table.target!r} holds {target.dtype} values like {classes[:3]}"
    elif task == "binary" and len(classes) != 2:
        problem = f"task binary needs two classes; target {table.target!r} has {len(classes)}: {classes[:10]} (task multiclass?)"
    elif task == "multiclass" and len(classes) < 3:
        problem = f"task multiclass needs three classes or more; target {table.target!r} has {classes} (task binary?)"
    if problem:
        raise SpecopsError(str(ctx.specs.error(ctx.pipeline, ("spec", "task"), problem)))


def split_rows(table: FeatureTable, params: TrainParams, task: str = "binary") -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(len(table.frame))
    # Classes keep their shares in both sets; a continuous target has no classes to keep.
    stratify = None if task == "regression" else table.frame[table.target]
    try:
        return train_test_split(rows, test_size=params.test_size, random_state=params.seed, stratify=stratify)
    except ValueError as exc:
        raise StageFailed(f"cannot split {len(rows)} rows into train and test sets: {exc}") from None


def run_search(ctx: StageContext, estimator: type, params: TrainParams, space: Space, table: FeatureTable,
               train_rows: np.ndarray, test_rows: np.ndarray) -> SearchOutcome:
    sweep = ctx.pipeline.spec.sweep
    # The params.yaml seed makes every candidate reproducible, unless params.yaml sets random_state itself.
    seed = {"random_state": params.seed} if "random_state" in estimator().get_params() else {}
    workers = sweep.concurrent_trials or os.cpu_count() or 1
    data = TrialData(estimator, seed, table.inputs.iloc[train_rows], table.frame[table.target].iloc[train_rows],
                     table.frame.iloc[test_rows], table, ctx.sensitive_column, ctx.pipeline.spec.selection.metric,
                     ctx.pipeline.spec.task)
    stopping = f", {sweep.early_termination.policy} early termination" if sweep.early_termination else ""
    print(f"{sweep.sampling_algorithm} search of {ctx.pipeline.spec.estimator} on {len(train_rows)} rows, "
          f"up to {trial_budget(sweep, space)} trial(s), {workers} at a time{stopping}")
    outcome = search(sweep, space, params.fixed, params.seed, ctx.pipeline.spec.selection.goal, workers,
                     fit_and_score, setup, (data,))
    swept = list(space)
    for trial in outcome.trials:
        scores = ", ".join(f"{s:.4f}" for s in trial.reports)
        print(f"  {trial.id} {Candidate(trial.id, trial.params).label(swept)}: {trial.state} ({scores}) in {trial.seconds:.1f}s")
    pruned = sum(t.state == "pruned" for t in outcome.trials)
    print(f"{len(outcome.complete)} trial(s) complete, {pruned} stopped early, in {outcome.seconds:.1f}s"
          f"{' (timeout: no more trials started)' if outcome.stopped_by else ''}")
    if not outcome.complete:
        raise StageFailed(f"no trial of the sweep completed within limits.timeout {sweep.limits.timeout}")
    return outcome


def search_record(ctx: StageContext, outcome: SearchOutcome) -> dict[str, Any]:
    """What the search did, trial by trial: for the model card, the bench and a person asking why."""
    return {
        "sampling_algorithm": ctx.pipeline.spec.sweep.sampling_algorithm,
        "early_termination": ctx.pipeline.spec.sweep.early_termination.policy if ctx.pipeline.spec.sweep.early_termination else None,
        "metric": ctx.pipeline.spec.selection.metric,
        "seconds": outcome.seconds,
        "stopped_by": outcome.stopped_by or None,
        "trials": [{"id": t.id, "params": t.params, "state": t.state, "reports": t.reports, "seconds": t.seconds}
                   for t in outcome.trials],
    }


def log_candidates(ctx: StageContext, params: TrainParams, outcome: SearchOutcome, inputs) -> None:
    """One parent MLflow run for this execution, a nested run per trial (with the model, when it completed).

    The parent is the job's own run inside an Azure ML job (mlflow.start_run resumes MLFLOW_RUN_ID).
    Each trial's selection metric is logged at every rung (step), as Azure ML's early termination reads it.
    """
    connect(ctx.specs)
    use_experiment(ctx.specs, ctx.pipeline.name)
    requirements = pip_requirements(ctx.pipeline.spec.estimator) if ctx.pipeline.spec.training is None else []
    selection = ctx.pipeline.spec.selection
    # Why this run happened (apply, or a controller trigger: drift, performance, stale, ...).
    tags = {"specops.pipeline": ctx.pipeline.name, "specops.trigger_reason": os.environ.get("SPECOPS_TRIGGER_REASON", "apply")}
    trainer = ctx.pipeline.spec.training.command if ctx.pipeline.spec.training else ctx.pipeline.spec.estimator
    with mlflow.start_run(run_name=ctx.pipeline.name, tags=tags) as parent:
        mlflow.log_params({"estimator": trainer, "seed": params.seed, "test_size": params.test_size,
                           "feature_set": f"{ctx.feature_set.name}@v{ctx.feature_set.spec.version}",
                           "sampling_algorithm": ctx.pipeline.spec.sweep.sampling_algorithm})
        for trial in outcome.trials:
            with mlflow.start_run(run_name=trial.id, nested=True,
                                  tags={"specops.candidate": trial.id, "specops.trial_state": trial.state}) as run:
                mlflow.log_params(trial.params)
                if isinstance(trial.model, CommandModel):  # what the command reported, then specops' own measure
                    mlflow.log_metrics(trial.model.metrics)
                for step, score in enumerate(trial.reports):
                    mlflow.log_metric(selection.metric, score, step=step)
                if trial.state != "complete":
                    continue
                if isinstance(trial.model, CommandModel):
                    mlflow.log_artifacts(str(trial.model.folder), "model")
                    model_uri = f"runs:/{run.info.run_id}/model"
                else:
                    model_uri = log_model(trial.model, inputs, requirements, run.info.run_id)
            save_candidate(ctx, Candidate(trial.id, trial.params), trial.model, run.info.run_id, parent.info.run_id, model_uri)
        # What this execution achieved: an Azure ML sweep reads it from the trial's run to rank its trials.
        pick = max if selection.goal == "maximize" else min
        mlflow.log_metric(selection.metric, pick(t.reports[-1] for t in outcome.complete))


def log_model(model: Any, inputs, requirements: list[str], run_id: str) -> str:
    """Save the MLflow model and log it as the run's `model` artifacts; return its runs:/ URI."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model")
        mlflow.sklearn.save_model(
            model,
            path,
            signature=infer_signature(inputs, model.predict(inputs)),
            input_example=inputs.head(3),
            pip_requirements=requirements,
            # Our own freshly trained model: trusting the types it contains is safe.
            skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)),
        )
        mlflow.log_artifacts(path, "model")
    return f"runs:/{run_id}/model"


def save_candidate(ctx: StageContext, candidate: Candidate, model: Any, run_id: str, parent_run_id: str, model_uri: str) -> None:
    folder = ctx.paths.candidate(candidate.id)
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(model, CommandModel):  # kept as the MLflow model the command saved: any flavour loads back
        shutil.copytree(model.folder, folder / "model")
    else:
        (folder / "model.pkl").write_bytes(pickle.dumps(model))
    write_json(folder / "meta.json", {
        "id": candidate.id,
        "params": candidate.params,
        "run_id": run_id,
        "parent_run_id": parent_run_id,
        "model_uri": model_uri,
        **({"classes": _plain_list(model.model.classes_)} if isinstance(model, CommandModel)
           and hasattr(model.model, "classes_") else {}),
    })


def _plain_list(values: Any) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def pip_requirements(dotted: str) -> list[str]:
    """Pin what loading the model needs, instead of MLflow's slow subprocess-based inference."""
    distributions = importlib.metadata.packages_distributions().get(dotted.split(".")[0], [])
    names = dict.fromkeys(["scikit-learn", "skops", *distributions])
    return [f"{name}=={importlib.metadata.version(name)}" for name in names]
