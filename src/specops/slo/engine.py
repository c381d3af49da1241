"""Evaluate an SLO: gather each objective's data, then compute its SLI and error budget.

Where each SLI comes from, and why:

| objective    | source                                              | why there                                  |
|--------------|-----------------------------------------------------|--------------------------------------------|
| availability | recorded /metrics scrapes (slo/history.py)          | failed requests are never in the inference log |
| latency      | inference log, answered requests                    | durable, per request, exact windows        |
| correctness  | inference log joined with feedback labels           | only labelled answers can be right or wrong |
| freshness    | MLflow: the served versions' training runs          | the registry knows when a model was trained |
| fairness     | inference log, rows whose inputs carry the column   | predictions per group                      |

`evaluate_objective` is pure (data in, status out), so the arithmetic is tested
on hand-made records; `evaluate` does the reading.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from specops.slo import budget as b
from specops.slo import history, sli
from specops.spec.loader import SpecSet
from specops.state.storage import open_storage
from specops.core.durations import seconds
from specops.spec.slos import (
    SLO, Availability, Correctness, Fairness, Freshness, Latency, Objective, endpoint_of, sensitive_column,
)

TrainedAt = Callable[[SpecSet, SLO], dict[str, float]]  # served model (name vN) -> training start, epoch seconds
Measured = tuple[str, dict[str, Any]]  # the target as people read it, and the ObjectiveStatus fields


@dataclass
class Inputs:
    """Everything one SLO's objectives are computed from."""

    records: list[dict[str, Any]] = field(default_factory=list)  # the endpoint's inference log
    samples: list[dict[str, Any]] = field(default_factory=list)  # recorded /metrics scrapes
    rates: Mapping[str, float] = field(default_factory=dict)  # deployment -> sampling rate of the log
    mirrors: frozenset[str] = frozenset()  # deployments that only see mirrored copies
    trained_at: Mapping[str, float] = field(default_factory=dict)
    sensitive: Mapping[str, str | None] = field(default_factory=dict)  # fairness objective -> column
    notes: list[str] = field(default_factory=list)  # problems gathering the data


def evaluate_objective(slo: SLO, objective: Objective, inputs: Inputs, now: float) -> b.ObjectiveStatus:
    window = objective.window or slo.spec.window
    start, recent = now - seconds(window), now - min(seconds(slo.spec.burn_window), seconds(window))
    target, fields = _HANDLERS[type(objective)](objective, inputs, start, recent, now)
    return b.ObjectiveStatus(slo=slo.name, objective=objective.key, sli_kind=objective.sli, window=window,
                             target=target, **{"sli": None, **fields})


def _percent(target: float) -> str:
    return f">= {target * 100:g}%"


def _availability(objective: Availability, inputs: Inputs, start: float, recent: float, now: float) -> Measured:
    good, bad = history.increase(inputs.samples, start, now, inputs.mirrors)
    recent_good, recent_bad = history.increase(inputs.samples, recent, now, inputs.mirrors)
    fields = b.event_budget(good=good, bad=bad, target=objective.target, recent=(recent_bad, recent_good + recent_bad))
    notes = list(inputs.notes)  # a failed scrape: the window ends at the last one that worked
    if fields["status"] == b.NO_DATA:
        notes.append("no requests in the recorded /metrics scrapes of this window (is the endpoint served, "
                     "and the controller running beside it? it records the scrapes)")
    fields["note"] = "; ".join(notes)
    return _percent(objective.target), fields


def _latency(objective: Latency, inputs: Inputs, start: float, recent: float, now: float) -> Measured:
    records = sli.in_window(inputs.records, start, now)
    good, bad = sli.latency_counts(records, objective.threshold_ms, inputs.rates)
    recent_good, recent_bad = sli.latency_counts(sli.in_window(records, recent, now), objective.threshold_ms, inputs.rates)
    fields = b.event_budget(good=good, bad=bad, target=objective.target, recent=(recent_bad, recent_good + recent_bad))
    measured = sli.p95(records)
    notes = [f"p95 {measured:.1f} ms" if measured is not None else "no logged requests", *_sampling_note(records, inputs.rates)]
    fields["note"] = "; ".join(notes)
    return f"{_percent(objective.target)} within {objective.threshold_ms:g} ms", fields


def _correctness(objective: Correctness, inputs: Inputs, start: float, recent: float, now: float) -> Measured:
    records = sli.in_window(inputs.records, start, now)
    good, bad, labelled = sli.correctness_counts(records, inputs.rates, objective.tolerance)
    target = f"accuracy {_percent(objective.target)}" if objective.tolerance is None else \
        f"{_percent(objective.target)} within {objective.tolerance:g} of the label"
    if labelled < objective.min_samples:
        accuracy = good / (good + bad) if labelled else None
        return target, {"sli": accuracy, "events": good + bad, "bad": bad,
                        "note": f"{labelled} labelled answers in the window, need {objective.min_samples}"}
    recent_good, recent_bad, _ = sli.correctness_counts(sli.in_window(records, recent, now), inputs.rates, objective.tolerance)
    fields = b.event_budget(good=good, bad=bad, target=objective.target, recent=(recent_bad, recent_good + recent_bad))
    fields["note"] = f"{labelled} labelled answers"
    return target, fields


def _freshness(objective: Freshness, inputs: Inputs, start: float, recent: float, now: float) -> Measured:
    bound = seconds(objective.max_age) / 86400
    target = f"model age <= {bound:g} days"
    if not inputs.trained_at:
        return target, {"note": "; ".join(inputs.notes) or "no served model version found in the registry"}
    model, trained = min(inputs.trained_at.items(), key=lambda item: item[1])  # the oldest served model decides
    fields = b.threshold_budget(value=sli.age_days(trained, now), bound=bound)
    fields["note"] = f"{model} trained {datetime.fromtimestamp(trained, UTC):%Y-%m-%d %H:%M} UTC"
    return target, fields


def _fairness(objective: Fairness, inputs: Inputs, start: float, recent: float, now: float) -> Measured:
    target = f"parity difference <= {objective.max_parity_diff:g}"
    column = inputs.sensitive.get(objective.key) or objective.sensitive
    if column is None:
        return target, {"note": "no sensitive column"}
    records = sli.in_window(inputs.records, start, now)
    diff, groups = sli.parity_difference(records, column, inputs.rates, objective.min_samples)
    fields = b.threshold_budget(value=diff, bound=objective.max_parity_diff)
    if diff is None:
        fields["note"] = (f"fewer than two groups of {column!r} with {objective.min_samples} logged rows each "
                          f"(a sensitive column is not a model input: it is logged only beside the inputs, under `sensitive`)")
    else:
        fields["note"] = ", ".join(f"{g}: {v['selection_rate']:.3f} of {int(v['rows'])}" for g, v in sorted(groups.items()))
    return target, fields


# By the objective's class; each handler takes its own kind of objective.
_HANDLERS: dict[type[Objective], Callable[..., Measured]] = {
    Availability: _availability, Latency: _latency, Correctness: _correctness, Freshness: _freshness, Fairness: _fairness,
}


def _sampling_note(records: list[dict[str, Any]], rates: Mapping[str, float]) -> list[str]:
    logged = {r["deployment"] for r in records}
    sampled = {name: rate for name, rate in rates.items() if 0 < rate < 1 and name in logged}
    if not sampled:
        return []
    return ["estimated from a sample of the log (" + ", ".join(f"{n} {r:g}" for n, r in sorted(sampled.items())) + ")"]


# --- reading the data -----------------------------------------------------------------------

def evaluate(specs: SpecSet, slo: SLO, now: float | None = None, *, trained_at: TrainedAt | None = None) -> list[b.ObjectiveStatus]:
    """Every objective of `slo` over its window ending `now` (default: the current time). Reads only: the
    availability history is recorded by the controller's scraper (history.record_scrapes), not by who asks."""
    now = time.time() if now is None else now
    inputs = gather(specs, slo, now, trained_at=trained_at)
    return [evaluate_objective(slo, objective, inputs, now) for objective in slo.spec.objectives]


def evaluate_series(specs: SpecSet, slo: SLO, times: list[float], *,
                    trained_at: TrainedAt | None = None) -> list[tuple[float, list[b.ObjectiveStatus]]]:
    """Every objective at each of `times` (budgets over time, for reports): the data is read once, back to
    the earliest time's window, and each point judged as `evaluate` would have judged it then."""
    if not times:
        return []
    inputs = gather(specs, slo, min(times), trained_at=trained_at)  # reads from min(times) - window onward
    return [(t, [evaluate_objective(slo, objective, inputs, t) for objective in slo.spec.objectives]) for t in sorted(times)]


def gather(specs: SpecSet, slo: SLO, now: float, *, trained_at: TrainedAt | None = None) -> Inputs:
    from specops.serving.inference_log import read_log

    endpoint = endpoint_of(specs, slo)
    kinds = {type(o) for o in slo.spec.objectives}
    inputs = Inputs(sensitive={o.key: sensitive_column(specs, slo, o) for o in slo.spec.objectives if isinstance(o, Fairness)})
    if endpoint is not None:
        inputs.rates = {d.name: d.data_collector.sampling_rate if d.data_collector.enabled else 0.0
                        for d in endpoint.spec.deployments}
        inputs.mirrors = frozenset(endpoint.spec.mirror_traffic)
    if kinds & {Latency, Correctness, Fairness}:
        # Only the log that the longest window can see: older hourly files are never opened.
        since = now - max(seconds(o.window or slo.spec.window) for o in slo.spec.objectives)
        inputs.records = read_log(specs.paths.endpoint(slo.spec.endpoint), since=since)
    if Availability in kinds:
        inputs.samples = history.read_samples(open_storage(specs), slo.spec.endpoint)
    if Freshness in kinds:
        inputs.trained_at = (trained_at or served_versions_trained_at)(specs, slo)
    return inputs


def served_versions_trained_at(specs: SpecSet, slo: SLO) -> dict[str, float]:
    """When each model version the endpoint sends live traffic to was trained (its MLflow run's start)."""
    from specops.registry import connect, version_by_alias

    endpoint = endpoint_of(specs, slo)
    if endpoint is None:
        return {}
    client = connect(specs)
    found: dict[str, float] = {}
    for deployment in endpoint.spec.deployments:
        if endpoint.spec.traffic.get(deployment.name, 0) <= 0:
            continue
        ref = deployment.model_ref
        try:
            version = (client.get_model_version(ref.name, ref.version) if ref.version
                       else version_by_alias(client, ref.name, ref.alias) if ref.alias else None)
        except Exception:  # a version the registry does not have is simply not served
            version = None
        if version is None:
            continue
        started = client.get_run(version.run_id).info.start_time if version.run_id else version.creation_timestamp
        found[f"{ref.name} v{version.version}"] = started / 1000
    return found
