"""Analysis, in Argo Rollouts' vocabulary: each check is Successful, Failed or Inconclusive.

Inputs for one window: live traffic per deployment (requests, errors, p95 from
the server's histogram) and accuracy on labelled feedback from the inference
log. The blueprint's rollback conditions are checked first; the gate named by
the step then runs on the same numbers, `compare_to: champion` meaning "minus
the stable deployment". Too few samples is Inconclusive, never a pass: a quiet
endpoint pauses for a person instead of promoting on no evidence.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from specops.core.answers import absolute_error, correct
from specops.gates import Baseline, check_metric
from specops.rollout.loadtest import LoadTestResult
from specops.rollout.metrics import AbsoluteErrors, Traffic, combined as combined_traffic
from specops.spec.endpoints import RolloutCommon
from specops.spec.kinds import Gate

SUCCESSFUL, FAILED, INCONCLUSIVE = "Successful", "Failed", "Inconclusive"
FEEDBACK_METRICS = ("accuracy", "mae")  # what labelled feedback can measure per request (mae: regression)
Z_95 = 1.6449  # one-sided 95% quantile of the standard normal


@dataclass(frozen=True)
class Arm:
    """One deployment over one analysis window."""

    deployment: str
    traffic: Traffic
    labelled: int
    correct: int
    errors: AbsoluteErrors = AbsoluteErrors()

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    def metrics(self) -> dict[str, float]:
        values = {"requests": self.traffic.requests, "error_rate": self.traffic.error_rate,
                  "p95_latency_ms": self.traffic.p95_ms, "accuracy": self.accuracy, "labelled": self.labelled,
                  "mae": self.errors.mean}
        return {name: value for name, value in values.items() if value is not None}


def combined(arms: list[Arm]) -> Arm:
    """Several deployments as one arm: traffic and labels summed."""
    if len(arms) == 1:
        return arms[0]
    return Arm("+".join(a.deployment for a in arms), combined_traffic(a.traffic for a in arms),
               sum(a.labelled for a in arms), sum(a.correct for a in arms),
               sum((a.errors for a in arms), AbsoluteErrors()))


def feedback_counts(records: Iterable[dict[str, Any]], deployment: str, since: float,
                    shadow: bool = False) -> tuple[int, int, AbsoluteErrors]:
    """(labelled, correct, absolute errors of the numeric answers) for one deployment's logged answers since `since`."""
    labelled = right = 0
    errors = AbsoluteErrors()
    for record in records:
        if record["deployment"] == deployment and record["shadow"] == shadow and record["time"] >= since and "label" in record:
            labelled += 1
            right += correct(record["prediction"], record["label"])
            error = absolute_error(record["prediction"], record["label"])
            errors = errors if error is None else errors.add(error)
    return labelled, right, errors


def _check(name: str, phase: str, value: Any = None, limit: Any = None, note: str = "") -> dict[str, Any]:
    return {"check": name, "phase": phase, "value": value, "limit": limit, "note": note}


def analyse(canary: Arm, stable: Arm, rollout: RolloutCommon, gate: Gate | None,
            budgets: dict[str, list] | None = None, measured: frozenset[str] | None = None) -> dict[str, Any]:
    """The analysis run: overall phase (Failed beats Inconclusive beats Successful) and every check.

    `budgets` holds the SLOs the gate names (`slo_budgets`); an exhausted one is a release freeze.
    `measured` is what the platform's metrics measure (None: everything). Checks on anything else
    (labelled accuracy and SLO budgets on Azure ML, which has neither) are listed under `skipped`
    rather than run: they would leave every analysis Inconclusive, and no rollout could finish.
    """
    skipped: list[str] = []
    regression = measured is None or rollout.rollback.metric in measured
    if not regression:
        skipped.append(f"{rollout.rollback.metric} regression")
    gate_checks = list(gate.spec.checks) if gate is not None else []
    if measured is not None:
        skipped += [c.describe() for c in gate_checks if c.slo is not None or c.metric not in measured]
        gate_checks = [c for c in gate_checks if c.slo is None and c.metric in measured]
    checks = [_samples(canary, rollout.min_samples)]
    if checks[0]["phase"] == SUCCESSFUL:
        checks += [_error_rate(canary, stable, rollout), *_latency(canary, rollout)]
        checks += [_regression(canary, stable, rollout)] if regression else []
        checks += [_slo_check(check, budgets) if check.slo else _gate_check(check, canary, stable, rollout.min_samples)
                   for check in gate_checks]
    return {"time": time.time(), "phase": _phase(checks), "gate": gate.name if gate else None, "checks": checks,
            "canary": canary.metrics(), "stable": stable.metrics(), "skipped": skipped}


def _phase(checks: list[dict[str, Any]]) -> str:
    phases = {c["phase"] for c in checks}
    return FAILED if FAILED in phases else INCONCLUSIVE if INCONCLUSIVE in phases else SUCCESSFUL


def load_test_analysis(result: LoadTestResult, rollout: RolloutCommon) -> dict[str, Any]:
    """A load test judged as an analysis run: any failed request, or p95 over the latency SLO + margin, is Failed."""
    checks = [_check("load test requests", SUCCESSFUL if result.requests else INCONCLUSIVE, result.requests, 1,
                     "" if result.requests else "locust sent no request"),
              _check("load test failures", FAILED if result.failures else SUCCESSFUL, result.failures, 0,
                     "; ".join(f"{n} x {error}" for error, n in list(result.errors.items())[:3]))]
    slo = rollout.rollback.latency_slo_ms
    if slo is not None and result.p95 is not None:  # None: no requests to time
        limit = slo * (1 + rollout.rollback.latency_margin)
        checks.append(_check("load test p95 latency ms", FAILED if result.p95 > limit else SUCCESSFUL, result.p95, limit,
                             f"client-side; SLO {slo:g} ms + {rollout.rollback.latency_margin:.0%}"))
    return {"time": time.time(), "phase": _phase(checks), "kind": "load test", "gate": None, "checks": checks,
            "canary": result.to_dict(), "stable": {}}


def _samples(canary: Arm, minimum: int) -> dict[str, Any]:
    n = canary.traffic.requests
    return _check("samples", SUCCESSFUL if n >= minimum else INCONCLUSIVE, n, minimum,
                  "" if n >= minimum else f"{canary.deployment} answered {n} of the {minimum} requests analysis needs")


def _error_rate(canary: Arm, stable: Arm, rollout: RolloutCommon) -> dict[str, Any]:
    # A stable deployment with no errors would make any single canary error a rollback:
    # its baseline is at least one error's worth of its own traffic.
    baseline = max(stable.traffic.errors, 1) / max(stable.traffic.requests, 1)
    limit = rollout.rollback.error_rate_ratio * baseline
    rate = canary.traffic.error_rate or 0.0
    return _check("error rate", FAILED if rate > limit else SUCCESSFUL, rate, limit,
                  f"> {rollout.rollback.error_rate_ratio:g}x the stable baseline fails")


def _latency(canary: Arm, rollout: RolloutCommon) -> list[dict[str, Any]]:
    slo = rollout.rollback.latency_slo_ms
    if slo is None:
        return []
    limit = slo * (1 + rollout.rollback.latency_margin)
    p95 = canary.traffic.p95_ms
    phase = INCONCLUSIVE if p95 is None else FAILED if p95 > limit else SUCCESSFUL
    return [_check("p95 latency ms", phase, p95, limit, f"SLO {slo:g} ms + {rollout.rollback.latency_margin:.0%}")]


def _regression(canary: Arm, stable: Arm, rollout: RolloutCommon) -> dict[str, Any]:
    metric, allowed = rollout.rollback.metric, rollout.rollback.metric_regression
    name = f"{metric} regression"
    if metric not in FEEDBACK_METRICS:
        return _check(name, INCONCLUSIVE, note=f"{metric!r} cannot be measured from feedback (only {', '.join(FEEDBACK_METRICS)})")
    if metric == "mae":
        return _error_regression(name, canary, stable, allowed, rollout.min_samples)
    canary_accuracy, stable_accuracy = canary.accuracy, stable.accuracy  # None without labels
    if canary_accuracy is None or stable_accuracy is None or min(canary.labelled, stable.labelled) < rollout.min_samples:
        return _check(name, INCONCLUSIVE, note=f"labelled answers: canary {canary.labelled}, stable {stable.labelled}, "
                                               f"need {rollout.min_samples} each")
    drop = (stable_accuracy - canary_accuracy) / stable_accuracy if stable_accuracy else 0.0
    # Fail on evidence, not on noise: two equal models' accuracies on 300 labels each differ by more than
    # 2% about half the time. The drop must exceed `allowed` at its one-sided 95% lower confidence bound.
    evidence = drop - Z_95 * _drop_standard_error(canary_accuracy, canary.labelled, stable_accuracy, stable.labelled)
    return _check(name, FAILED if evidence > allowed else SUCCESSFUL, drop, allowed,
                  f"relative drop vs stable; its 95% lower bound {evidence:.3g} must stay within {allowed:g}")


def _error_regression(name: str, canary: Arm, stable: Arm, allowed: float, minimum: int) -> dict[str, Any]:
    """A regression's canary fails when its mean absolute error grows by more than `allowed` (relative), on evidence."""
    new, old = canary.errors, stable.errors
    if new.mean is None or old.mean is None or min(new.count, old.count) < minimum:
        return _check(name, INCONCLUSIVE, note=f"labelled numeric answers: canary {new.count}, stable {old.count}, "
                                               f"need {minimum} each")
    if not old.mean:
        growth, standard_error = (0.0 if not new.mean else float("inf")), 0.0
    else:
        growth = (new.mean - old.mean) / old.mean
        standard_error = (new.variance / new.count + old.variance / old.count) ** 0.5 / old.mean
    evidence = growth - Z_95 * standard_error  # as for accuracy: fail on evidence, not on noise
    return _check(name, FAILED if evidence > allowed else SUCCESSFUL, growth, allowed,
                  f"relative growth of the mean absolute error vs stable ({new.mean:.4g} vs {old.mean:.4g}); "
                  f"its 95% lower bound {evidence:.3g} must stay within {allowed:g}")


def _drop_standard_error(canary: float, canary_labelled: int, stable: float, stable_labelled: int) -> float:
    """Standard error of (stable - canary) / stable accuracy, two independent proportions (delta method, stable fixed)."""
    if not stable:
        return 0.0
    variance = canary * (1 - canary) / canary_labelled + stable * (1 - stable) / stable_labelled
    return variance ** 0.5 / stable


def slo_budgets(specs, gate: Gate | None) -> dict[str, list]:
    """The error budgets of the SLOs `gate` names, for `analyse` (nothing is read when it names none)."""
    if gate is None or not any(check.slo for check in gate.spec.checks):
        return {}
    from specops.slo.gates import slo_budgets as budgets_of

    return budgets_of(specs, gate)


def _slo_check(check, budgets: dict[str, list] | None) -> dict[str, Any]:
    # An exhausted error budget freezes releases (Google SRE's error-budget policy): the rollout
    # pauses Inconclusive rather than rolling back, since the canary is not shown to be at fault,
    # and `resume` promotes once the budget has recovered.
    from specops.slo.gates import judge

    verdict = judge(check, budgets or {})
    return _check(check.describe(), SUCCESSFUL if verdict["passed"] else INCONCLUSIVE, verdict["value"],
                  (check.min, check.max), verdict["note"])


def _gate_check(check, canary: Arm, stable: Arm, minimum: int) -> dict[str, Any]:
    name = check.describe()
    if check.metric == "mae" and canary.errors.count < minimum:
        return _check(name, INCONCLUSIVE, note=f"{canary.errors.count} labelled numeric answers, need {minimum}")
    if check.metric in FEEDBACK_METRICS and canary.labelled < minimum:
        return _check(name, INCONCLUSIVE, note=f"{canary.labelled} labelled answers, need {minimum}")
    result = check_metric(check, canary.metrics(), Baseline(f"stable deployment {stable.deployment}", stable.metrics()))
    if result.value is None and not result.passed:
        return _check(name, INCONCLUSIVE, note=result.note)
    return _check(name, SUCCESSFUL if result.passed else FAILED, result.value, (check.min, check.max), result.note)
