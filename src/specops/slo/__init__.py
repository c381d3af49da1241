"""SLOs and error budgets: each objective's SLI over its window, the budget left, the burn rate.

`engine.evaluate(specs, slo)` computes every objective of an SLO spec;
`gates.judge` turns a Gate check naming an SLO into a pass or a release
freeze, for the lifecycle's gate stage and for rollout analysis.
See docs/slo.md.
"""
from specops.slo.budget import AT_RISK, EXHAUSTED, NO_DATA, OK, ObjectiveStatus

__all__ = ["AT_RISK", "EXHAUSTED", "NO_DATA", "OK", "ObjectiveStatus"]
