"""Error-budget arithmetic: from good and bad events (or a measured value and its bound) to a verdict.

Event objectives (availability, latency, correctness), over one window:

    SLI       = good / events
    budget    = (1 - target) x events       bad events the objective allows
    consumed  = bad
    remaining = (budget - consumed) / budget  1 untouched, 0 spent, below 0 overspent
    burn rate = (bad / events over burn_window) / (1 - target)
                1 spends the budget exactly by the window's end; 14.4 spends 2% of 28 days' budget in an hour

Threshold objectives (freshness, fairness) have no events: the budget is the
bound itself (max age, max parity difference) and the measured value is what
is consumed, so remaining = 1 - value / bound; they have no burn rate.

Status: exhausted when remaining <= 0 (nothing left: one more bad event breaks
the objective), at risk when less than a quarter is left or the recent burn
rate is above 1, else ok; no data when nothing was measured.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

OK, AT_RISK, EXHAUSTED, NO_DATA = "ok", "at risk", "exhausted", "no data"
AT_RISK_REMAINING = 0.25
_DIGITS = 9  # (1 - 0.995) x 1000 is 5.000000000000004 in floating point: 5 bad events spend it exactly


@dataclass(frozen=True)
class ObjectiveStatus:
    slo: str
    objective: str
    sli_kind: str
    window: str
    target: str  # what the objective asks, e.g. ">= 99.5%" or "<= 30 days"
    sli: float | None  # the measured value
    events: float | None = None
    bad: float | None = None
    budget: float | None = None
    consumed: float | None = None
    remaining: float | None = None
    burn_rate: float | None = None
    status: str = NO_DATA
    note: str = ""

    @property
    def exhausted(self) -> bool:
        return self.status == EXHAUSTED

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def status_of(remaining: float | None, burn_rate: float | None) -> str:
    if remaining is None:
        return NO_DATA
    if remaining <= 0:
        return EXHAUSTED
    if remaining < AT_RISK_REMAINING or (burn_rate is not None and burn_rate > 1):
        return AT_RISK
    return OK


def burn_rate(bad: float, events: float, target: float) -> float | None:
    """How fast the recent events spend the budget: their bad share over the allowed share."""
    return round((bad / events) / (1 - target), _DIGITS) if events > 0 else None


def event_budget(*, good: float, bad: float, target: float, recent: tuple[float, float] | None = None) -> dict[str, Any]:
    """Budget fields for an event objective; `recent` is (bad, events) over the burn window."""
    events = good + bad
    if events <= 0:
        return {"events": 0, "bad": 0, "status": NO_DATA}
    budget = (1 - target) * events
    remaining = round((budget - bad) / budget, _DIGITS)
    burn = burn_rate(*recent, target) if recent else None
    return {"sli": good / events, "events": events, "bad": bad, "budget": round(budget, _DIGITS), "consumed": bad,
            "remaining": remaining, "burn_rate": burn, "status": status_of(remaining, burn)}


def threshold_budget(*, value: float | None, bound: float) -> dict[str, Any]:
    """Budget fields for a bounded value (lower is better): the bound is the budget, the value what is used."""
    if value is None:
        return {"status": NO_DATA}
    remaining = round(1 - value / bound, _DIGITS)
    return {"sli": value, "budget": bound, "consumed": value, "remaining": remaining, "status": status_of(remaining, None)}
