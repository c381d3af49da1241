"""What a Gate check naming an SLO decides: the release freeze.

An exhausted error budget fails the check (Google SRE's error-budget policy:
releases stop until the budget recovers, i.e. until the bad events slide out
of the window); `min` on the check freezes earlier, at that remaining
fraction. An objective with no data does not freeze: the check passes with a
note, because a freeze needs evidence that the budget is spent.
"""
from __future__ import annotations

from typing import Any

from specops.core.tables import plain_number
from specops.slo.budget import ObjectiveStatus
from specops.spec.kinds import Check, Gate
from specops.spec.loader import SpecSet

Budgets = dict[str, list[ObjectiveStatus]]  # SLO name -> its objectives' statuses


def slo_budgets(specs: SpecSet, gate: Gate | None, now: float | None = None) -> Budgets:
    """The budgets of every SLO the gate's checks name (none: an empty dict, and nothing is read)."""
    from specops.slo.engine import evaluate
    from specops.spec.slos import SLO

    names = {c.slo for c in gate.spec.checks if c.slo is not None} if gate is not None else set()
    budgets: Budgets = {}
    for name in sorted(names):
        slo = specs.get(SLO, name)
        if slo is not None:
            budgets[name] = evaluate(specs, slo, now)
    return budgets


def judge(check: Check, budgets: Budgets) -> dict[str, Any]:
    """{"passed", "value" (the lowest remaining fraction), "note"} for one SLO check."""
    if check.slo not in budgets:
        return {"passed": False, "value": None, "note": f"SLO {check.slo!r} was not evaluated (is it defined?)"}
    statuses = [s for s in budgets[check.slo] if check.objective in (None, s.objective)]
    exhausted = [s for s in statuses if s.exhausted]
    measured = [(s.remaining, s) for s in statuses if s.remaining is not None]
    lowest = min(measured, key=lambda m: m[0], default=None)  # (remaining, status) of the worst objective
    if exhausted:
        spent = "; ".join(_spent(s) for s in exhausted)
        return {"passed": False, "value": lowest[0] if lowest else None,
                "note": f"release freeze: error budget exhausted ({spent}); promotions resume when it recovers"}
    if lowest is None:
        return {"passed": True, "value": None, "note": "no data for " + ", ".join(s.objective for s in statuses) + ": no freeze"}
    value, worst = lowest
    if not _within(check, value):
        return {"passed": False, "value": value, "note": f"release freeze: {_spent(worst)}, outside the check's bounds"}
    return {"passed": True, "value": value, "note": f"lowest remaining: {worst.objective} {value:.0%}"}


def _within(check: Check, value: float) -> bool:
    return (check.min is None or value >= check.min) and (check.max is None or value <= check.max)


def _spent(status: ObjectiveStatus) -> str:
    if status.events is not None and status.bad is not None and status.budget is not None:
        used = (f"{plain_number(status.bad)} bad of {plain_number(status.budget)} allowed in "
                f"{plain_number(status.events)} events")
    else:
        used = (f"{plain_number(status.sli)} against a bound of {plain_number(status.budget)}"
                if status.sli is not None else "no data")
    return f"{status.slo}/{status.objective} {used}, remaining {status.remaining:.0%}"
