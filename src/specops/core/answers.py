"""Whether a served answer was right, for every task: the one rule rollouts, SLOs and monitors share.

A class is right when it equals the label; a number (regression) when it lies within `tolerance` of it.
"""
from __future__ import annotations

import math
from typing import Any


def correct(prediction: Any, label: Any, tolerance: float | None = None) -> bool:
    if tolerance is None:
        return bool(prediction == label)
    error = absolute_error(prediction, label)
    return error is not None and error <= tolerance


def absolute_error(prediction: Any, label: Any) -> float | None:
    """|prediction - label| for numbers; None when either is not a finite number (a class, a missing answer)."""
    if isinstance(prediction, bool) or isinstance(label, bool):
        return None
    try:
        error = abs(float(prediction) - float(label))
    except (TypeError, ValueError):
        return None
    return error if math.isfinite(error) else None
