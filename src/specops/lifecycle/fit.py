"""The work one sweep process does: fit one candidate.

Kept apart from train.py so the spawned worker processes import only this
module and the estimator's, not MLflow.
"""
from __future__ import annotations

import time
from typing import Any


def fit_candidate(estimator: type, params: dict[str, Any], inputs, target) -> tuple[Any, float]:
    """Fit `estimator(**params)`; return the model and the seconds it took."""
    start = time.perf_counter()
    model = estimator(**params).fit(inputs, target)
    return model, time.perf_counter() - start
