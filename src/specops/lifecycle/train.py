"""Stage `train`: sweep the estimator's parameter grid in parallel, log every candidate to MLflow.

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
import itertools
import multiprocessing
import os
import pickle
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import skops.io
from mlflow.models import infer_signature
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML
from sklearn.model_selection import train_test_split

from specops.errors import SpecopsError, StageFailed
from specops.lifecycle.context import StageContext, write_json
from specops.lifecycle.evaluate import evaluate_model
from specops.lifecycle.featurize import FeatureTable, read_feature_table
from specops.lifecycle.fit import fit_candidate
from specops.registry import connect, use_experiment

PARAMS_FILE = "params.yaml"


class TrainParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    test_size: float = Field(0.25, gt=0, lt=1)
    fixed: dict[str, Any] = {}
    sweep: dict[str, list[Any]] = {}


@dataclass(frozen=True)
class Candidate:
    id: str
    params: dict[str, Any]  # what the sweep chose: fixed values and this grid point

    def label(self, swept: list[str]) -> str:
        return ", ".join(f"{k}={self.params[k]}" for k in swept) or "fixed parameters"


def run(ctx: StageContext) -> None:
    params = load_params(ctx)
    estimator = estimator_class(ctx.pipeline.spec.estimator)
    candidates = sweep_grid(params)
    check_parameters(estimator, candidates, ctx.pipeline.spec.estimator)
    table = read_feature_table(ctx.paths)
    train_rows, test_rows = split_rows(table, params)
    models = fit_all(ctx, estimator, candidates, params, table.inputs.iloc[train_rows], table.frame[table.target].iloc[train_rows])
    shutil.rmtree(ctx.paths.candidates, ignore_errors=True)
    write_json(ctx.paths.split, {"seed": params.seed, "test_size": params.test_size, "test_rows": test_rows.tolist()})
    scores = selection_scores(ctx, models, table, test_rows)
    log_candidates(ctx, params, candidates, models, table.inputs.iloc[train_rows], scores)


def selection_scores(ctx: StageContext, models: dict[str, Any], table: FeatureTable, test_rows: np.ndarray) -> dict[str, float]:
    """Candidate id -> the pipeline's selection metric on the held-out rows, computed as evaluate computes it."""
    metric = ctx.pipeline.spec.selection.metric
    test = table.frame.iloc[test_rows]
    scores = {}
    for candidate_id, model in models.items():
        metrics = evaluate_model(model, test, table, ctx.sensitive_column)["metrics"]
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


def estimator_class(dotted: str) -> type:
    module_name, _, class_name = dotted.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise SpecopsError(f"cannot import estimator {dotted!r}: no {class_name} in module {module_name}") from None
    if not (isinstance(found, type) and hasattr(found, "fit") and hasattr(found, "get_params")):
        raise SpecopsError(f"estimator {dotted!r} is not a scikit-learn compatible class (needs fit and get_params)")
    return found


def sweep_grid(params: TrainParams) -> list[Candidate]:
    """The cartesian product of the sweep values, each merged over the fixed parameters."""
    names = list(params.sweep)
    points = itertools.product(*(params.sweep[n] for n in names))
    return [
        Candidate(f"c{i:02d}", {**params.fixed, **dict(zip(names, point))})
        for i, point in enumerate(points, start=1)
    ]


def check_parameters(estimator: type, candidates: list[Candidate], dotted: str) -> None:
    accepted = set(estimator().get_params())
    unknown = sorted({name for c in candidates for name in c.params} - accepted)
    if unknown:
        raise SpecopsError(f"{PARAMS_FILE}: {dotted} has no parameter(s) {', '.join(unknown)} (it accepts: {', '.join(sorted(accepted))})")


def split_rows(table: FeatureTable, params: TrainParams) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(len(table.frame))
    try:
        return train_test_split(rows, test_size=params.test_size, random_state=params.seed, stratify=table.frame[table.target])
    except ValueError as exc:
        raise StageFailed(f"cannot split {len(rows)} rows into train and test sets: {exc}") from None


def fit_all(ctx: StageContext, estimator: type, candidates: list[Candidate], params: TrainParams, inputs, target) -> dict[str, Any]:
    # The params.yaml seed makes every candidate reproducible, unless params.yaml sets random_state itself.
    seed = {"random_state": params.seed} if "random_state" in estimator().get_params() else {}
    workers = min(len(candidates), ctx.pipeline.spec.sweep.max_parallel or os.cpu_count() or 1)
    swept = list(params.sweep)
    models: dict[str, Any] = {}
    print(f"training {len(candidates)} candidate(s) of {ctx.pipeline.spec.estimator} on {len(inputs)} rows, {workers} at a time")
    # spawn, not fork: the parent may hold MLflow/SQLite connections and threads that must not be copied.
    # (spawn re-imports the caller's __main__, so scripts calling run_stage need the __name__ guard.)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(fit_candidate, estimator, {**seed, **c.params}, inputs, target): c for c in candidates}
        for done, future in enumerate(as_completed(futures), start=1):
            candidate = futures[future]
            try:
                models[candidate.id], seconds = future.result()
            except (ValueError, TypeError) as exc:  # how estimators reject bad parameter values or data
                raise StageFailed(f"candidate {candidate.id} ({candidate.label(swept)}) failed to train: {exc}") from None
            print(f"trained {done}/{len(candidates)} candidates ({candidate.label(swept)}) in {seconds:.1f}s")
    return models


def log_candidates(ctx: StageContext, params: TrainParams, candidates: list[Candidate], models: dict[str, Any], inputs,
                   scores: dict[str, float]) -> None:
    """One parent MLflow run for this execution, a nested run (with the model) per candidate.

    The parent is the job's own run inside an Azure ML job (mlflow.start_run resumes MLFLOW_RUN_ID).
    """
    connect(ctx.specs)
    use_experiment(ctx.specs, ctx.pipeline.name)
    requirements = pip_requirements(ctx.pipeline.spec.estimator)
    selection = ctx.pipeline.spec.selection
    # Why this run happened (apply, or a controller trigger: drift, performance, stale, ...).
    tags = {"specops.pipeline": ctx.pipeline.name, "specops.trigger_reason": os.environ.get("SPECOPS_TRIGGER_REASON", "apply")}
    with mlflow.start_run(run_name=ctx.pipeline.name, tags=tags) as parent:
        mlflow.log_params({"estimator": ctx.pipeline.spec.estimator, "seed": params.seed, "test_size": params.test_size,
                           "feature_set": f"{ctx.feature_set.name}@v{ctx.feature_set.spec.version}"})
        for candidate in candidates:
            model = models[candidate.id]
            with mlflow.start_run(run_name=candidate.id, nested=True, tags={"specops.candidate": candidate.id}) as run:
                mlflow.log_params(candidate.params)
                mlflow.log_metric(selection.metric, scores[candidate.id])
                model_uri = log_model(model, inputs, requirements, run.info.run_id)
            save_candidate(ctx, candidate, model, run.info.run_id, parent.info.run_id, model_uri)
        # What this execution achieved: an Azure ML sweep reads it from the trial's run to rank its trials.
        pick = max if selection.goal == "maximize" else min
        mlflow.log_metric(selection.metric, pick(scores.values()))


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
    (folder / "model.pkl").write_bytes(pickle.dumps(model))
    write_json(folder / "meta.json", {
        "id": candidate.id,
        "params": candidate.params,
        "run_id": run_id,
        "parent_run_id": parent_run_id,
        "model_uri": model_uri,
    })


def pip_requirements(dotted: str) -> list[str]:
    """Pin what loading the model needs, instead of MLflow's slow subprocess-based inference."""
    distributions = importlib.metadata.packages_distributions().get(dotted.split(".")[0], [])
    names = dict.fromkeys(["scikit-learn", "skops", *distributions])
    return [f"{name}=={importlib.metadata.version(name)}" for name in names]
