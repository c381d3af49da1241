"""The work one sweep worker process does: fit a trial's parameters on a share of the training rows and
score the selection metric on the held-out rows, as evaluate computes it.

`setup` runs once per worker (the data crosses the process boundary once); `fit_and_score` once per
trial and rung. Kept apart from train.py so the workers do not import MLflow's logging side.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from specops.errors import SpecopsError
from specops.lifecycle.featurize import FeatureTable


@dataclass(frozen=True)
class TrialData:
    estimator: type
    seed_params: dict[str, Any]  # random_state from params.yaml's seed, when the estimator takes one
    inputs: pd.DataFrame  # training rows, in the split's (shuffled) order: a share is a prefix
    target: pd.Series
    test: pd.DataFrame
    table: FeatureTable
    sensitive: str | None
    metric: str
    task: str = "binary"


_data: TrialData | None = None


def setup(data: TrialData) -> None:
    global _data
    _data = data


def fit_and_score(params: dict[str, Any], share: float) -> tuple[Any, float, float]:
    """(model, selection metric on the held-out rows, seconds to fit)."""
    from specops.lifecycle.evaluate import evaluate_model

    assert _data is not None, "setup() runs first in every worker"
    rows = max(1, math.ceil(len(_data.inputs) * share))
    start = time.perf_counter()
    try:
        model = _data.estimator(**{**_data.seed_params, **params}).fit(_data.inputs.iloc[:rows], _data.target.iloc[:rows])
    except (ValueError, TypeError) as exc:  # how estimators reject bad parameter values or data
        raise TrialFailed(f"{exc}") from None
    seconds = time.perf_counter() - start
    metrics = evaluate_model(model, _data.test, _data.table, _data.sensitive, _data.task)["metrics"]
    if _data.metric not in metrics:
        raise SpecopsError(f"selection metric {_data.metric!r} is not one evaluate computes ({', '.join(sorted(metrics))})")
    return model, metrics[_data.metric], seconds


class TrialFailed(Exception):
    """An estimator refused a trial's parameters or data (the message is the estimator's)."""
