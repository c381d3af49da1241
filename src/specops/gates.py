"""What a Gate's metric checks decide, as pure functions of numbers: no registry, no files.

The lifecycle's gate stage judges a trained candidate with them (against the
champion's recorded metrics), and rollout analysis judges a canary (against
the stable deployment's live metrics); checks that name an SLO are judged by
specops.slo, which reads the error budget.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from specops.spec.kinds import Check, Selection

@dataclass(frozen=True)
class Baseline:
    """What `compare_to: champion` compares with, and its metrics; the label names it in notes as a reader
    would ("champion v3", "stable deployment blue"), so a deployment name is never read as a version."""

    label: str
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class CheckResult:
    check: str  # the check as written, e.g. "accuracy >= 0.85"
    metric: str | None
    compare_to: str | None
    min: float | None
    max: float | None
    value: float | None  # the candidate's value, or its difference from the baseline
    passed: bool
    note: str = ""
    slo: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def select_best(candidates: Mapping[str, Mapping[str, Any]], selection: Selection) -> str:
    """The candidate id with the best selection metric; ties go to the first id in sorted order (deterministic)."""
    sign = 1 if selection.goal == "maximize" else -1
    return max(sorted(candidates), key=lambda cid: sign * candidates[cid]["metrics"][selection.metric])


def better(value: float, than: float, goal: str) -> bool:
    return value > than if goal == "maximize" else value < than


def check_metric(check: Check, metrics: Mapping[str, float], baseline: Baseline | None) -> CheckResult:
    """One metric check; `compare_to: champion` bounds the difference from `baseline` (none yet: a pass, noted)."""
    def result(value: float | None, passed: bool, note: str = "") -> CheckResult:
        return CheckResult(check.describe(), check.metric, check.compare_to, check.min, check.max, value, passed, note)

    metric = check.metric  # set on every validated check (an SLO check defaults it)
    if metric is None or metric not in metrics:
        return result(None, False, f"the candidate has no metric {metric!r}")
    value = metrics[metric]
    note = ""
    if check.compare_to is not None:  # its one value, `champion`: the registry's champion, or a rollout's stable deployment
        if baseline is None:
            return result(None, True, "no champion yet")
        if metric not in baseline.metrics:
            return result(None, True, f"{baseline.label} has no metric {metric!r}")
        value -= baseline.metrics[metric]
        note = f"vs {baseline.label}"
    return result(value, within(check, value), note)


def within(check: Check, value: float) -> bool:
    return (check.min is None or value >= check.min) and (check.max is None or value <= check.max)
