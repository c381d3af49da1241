"""The team's own training code: a Pipeline's `training.command`, run once per sweep trial.

The contract (docs/training-code.md): the command runs from the project root with

    SPECOPS_TRAIN_DATA    Parquet: the training rows, the feature set's features and the target
    SPECOPS_TEST_DATA     Parquet: the held-out rows, the same columns (what evaluate scores)
    SPECOPS_PARAMS        JSON object: this trial's parameters (params.yaml's fixed values and one sweep point)
    SPECOPS_TASK          binary, multiclass or regression
    SPECOPS_TARGET        the target column
    SPECOPS_FEATURES      JSON list: the model's input columns, in order
    SPECOPS_SEED          params.yaml's seed
    SPECOPS_SELECTION_METRIC  the metric the sweep ranks trials by

and must leave

    SPECOPS_MODEL_DIR     an MLflow model, saved with any flavour's save_model (sklearn, lightgbm, xgboost, pyfunc)
    SPECOPS_METRICS_FILE  a JSON object of metrics, the selection metric among them

specops then logs both to the trial's MLflow run, and evaluates, gates, registers and serves the model
as one it trained itself. The command writes nothing to MLflow: the same code runs on Azure ML, where
the workspace's tracking server lacks parts of MLflow's API.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from specops.errors import StageFailed
from specops.lifecycle.featurize import FeatureTable

MLMODEL = "MLmodel"
NATIVE_FLAVORS = ("sklearn", "lightgbm", "xgboost")  # loaded as the estimator itself: predict_proba, importances
OUTPUT_LINES = 20  # of a failed command's output, in the error


@dataclass(frozen=True)
class CommandModel:
    """What one trial of the command left: its MLflow model (a folder) and the metrics it reported."""

    folder: Path
    metrics: dict[str, float]
    model: Any  # the loaded model, for scoring


def run_trials(root: Path, work: Path, command: str, trials: dict[str, dict[str, Any]], table: FeatureTable,
               train_rows: np.ndarray, test_rows: np.ndarray, task: str, seed: int, selection: str,
               max_parallel: int) -> dict[str, CommandModel]:
    """Candidate id -> its model, one run of `command` per trial, `max_parallel` at a time."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    columns = [*table.features, table.target]
    train, test = work / "train.parquet", work / "test.parquet"
    table.frame.iloc[train_rows][columns].to_parquet(train, index=False)
    table.frame.iloc[test_rows][columns].to_parquet(test, index=False)
    shared = {"SPECOPS_TRAIN_DATA": str(train), "SPECOPS_TEST_DATA": str(test), "SPECOPS_TASK": task,
              "SPECOPS_TARGET": table.target, "SPECOPS_FEATURES": json.dumps(table.features), "SPECOPS_SEED": str(seed),
              "SPECOPS_SELECTION_METRIC": selection}

    classes = None if task == "regression" else sorted(table.frame[table.target].dropna().unique().tolist())

    def trial(candidate: str) -> CommandModel:
        folder = work / candidate
        folder.mkdir()
        env = {**os.environ, **shared, "SPECOPS_PARAMS": json.dumps(trials[candidate], default=str),
               "SPECOPS_MODEL_DIR": str(folder / "model"), "SPECOPS_METRICS_FILE": str(folder / "metrics.json")}
        where = f"training command `{command}` (candidate {candidate}, {json.dumps(trials[candidate], default=str)})"
        # The team's own command from its own spec, run as DVC runs a stage's `cmd` and Azure ML a component's `command`.
        result = subprocess.run(command, shell=True, cwd=root, env=env, capture_output=True, text=True)  # nosec B602: the project's declared command, not outside input
        if result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-OUTPUT_LINES:])
            raise StageFailed(f"{where} exited {result.returncode}; nothing was registered\n{output}")
        return CommandModel(folder / "model", read_metrics(folder / "metrics.json", selection, where),
                            load_model(folder / "model", where, classes))

    workers = max(1, min(len(trials), max_parallel or os.cpu_count() or 1))
    print(f"training {len(trials)} candidate(s) with `{command}`, {workers} at a time")
    with ThreadPoolExecutor(workers) as pool:  # each trial is a process of its own: threads only wait
        return dict(zip(trials, pool.map(trial, trials)))


def read_metrics(path: Path, selection: str, where: str) -> dict[str, float]:
    if not path.is_file():
        raise StageFailed(f"{where} wrote no metrics: write a JSON object with {selection!r} to $SPECOPS_METRICS_FILE; "
                          "nothing was registered")
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise StageFailed(f"{where}: $SPECOPS_METRICS_FILE is not JSON ({exc}); nothing was registered") from None
    if not isinstance(metrics, dict) or not all(_number(v) for v in metrics.values()):
        raise StageFailed(f"{where}: $SPECOPS_METRICS_FILE must hold a JSON object of metric names to numbers")
    if selection not in metrics:
        raise StageFailed(f"{where} did not report the selection metric {selection!r} (it reported: "
                          f"{', '.join(sorted(metrics)) or 'nothing'}); nothing was registered")
    return {name: float(value) for name, value in metrics.items()}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_model(folder: Path, where: str = "the model", classes: list[Any] | None = None) -> Any:
    """The MLflow model in `folder`: the estimator itself for a flavour that has one, else its pyfunc."""
    from mlflow.models import Model

    if not (folder / MLMODEL).is_file():
        raise StageFailed(f"{where} saved no MLflow model: save one to $SPECOPS_MODEL_DIR "
                          "(e.g. mlflow.sklearn.save_model(model, os.environ['SPECOPS_MODEL_DIR'])); nothing was registered")
    flavors = Model.load(str(folder / MLMODEL)).flavors
    for flavor in NATIVE_FLAVORS:
        if flavor in flavors:
            loader: Callable[[str], Any] = __import__(f"mlflow.{flavor}", fromlist=["load_model"]).load_model
            return loader(str(folder))
    import mlflow.pyfunc

    return PyfuncModel(mlflow.pyfunc.load_model(str(folder)), classes)


class PyfuncModel:
    """A pyfunc model (a custom one, or a flavour without its own loader) where evaluate expects an estimator:
    predict only, its answers as numpy; a classifier's classes are the training target's. Without
    probabilities, evaluate scores ROC AUC on the answers themselves and leaves log loss out."""

    def __init__(self, model: Any, classes: list[Any] | None = None):
        self.model = model
        if classes is not None:
            self.classes_ = np.asarray(classes)

    def predict(self, inputs: pd.DataFrame) -> np.ndarray:
        predictions = self.model.predict(inputs)
        return np.asarray(predictions.iloc[:, 0] if isinstance(predictions, pd.DataFrame) else predictions)
