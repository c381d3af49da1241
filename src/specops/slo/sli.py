"""Each objective's SLI from its data, as plain functions of records and times (no I/O).

Records are the inference log's (`serving.inference_log.read_log`): one line
per scored row of a *sampled, answered* request, with `time`, `request_id`,
`row`, `deployment`, `shadow`, `inputs`, `prediction`, `latency_ms` and,
where feedback arrived, `label`. So:

- shadow records (mirrored copies no client saw) never count;
- latency counts requests (the first row of each), correctness and fairness count rows (predictions);
- a record weighs 1 / its deployment's sampling rate: with sampling_rate 0.1 each
  logged request stands for ten. Ratios (SLI, remaining, burn rate) are then
  unbiased estimates of the full traffic's; counts are estimates, not exact.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from specops.core.answers import correct

Record = dict[str, Any]


def in_window(records: Iterable[Record], start: float, end: float) -> list[Record]:
    return [r for r in records if start < r["time"] <= end and not r.get("shadow", False)]


def weight(record: Record, rates: Mapping[str, float]) -> float:
    rate = rates.get(record["deployment"], 1.0)
    return 1.0 / rate if rate > 0 else 1.0


def latency_counts(records: Iterable[Record], threshold_ms: float, rates: Mapping[str, float]) -> tuple[float, float]:
    """(good, bad): requests answered within / beyond the threshold."""
    good = bad = 0.0
    for record in records:
        if record.get("row", 0) != 0 or record.get("latency_ms") is None:
            continue
        if record["latency_ms"] <= threshold_ms:
            good += weight(record, rates)
        else:
            bad += weight(record, rates)
    return good, bad


def p95(records: Iterable[Record]) -> float | None:
    """The logged requests' 95th percentile latency (nearest rank), shown beside the share under the threshold."""
    values = sorted(r["latency_ms"] for r in records if r.get("row", 0) == 0 and r.get("latency_ms") is not None)
    return values[max(math.ceil(0.95 * len(values)) - 1, 0)] if values else None


def correctness_counts(records: Iterable[Record], rates: Mapping[str, float],
                       tolerance: float | None = None) -> tuple[float, float, int]:
    """(good, bad, labelled rows): labelled predictions that were right / wrong (a number: within `tolerance`)."""
    good = bad = 0.0
    labelled = 0
    for record in records:
        if "label" not in record:
            continue
        labelled += 1
        if correct(record["prediction"], record["label"], tolerance):
            good += weight(record, rates)
        else:
            bad += weight(record, rates)
    return good, bad, labelled


def parity_difference(records: Iterable[Record], column: str, rates: Mapping[str, float],
                      min_samples: int, positive: Any = 1) -> tuple[float | None, dict[str, dict[str, float]]]:
    """Demographic parity difference (fairlearn's definition: largest minus smallest group selection rate).

    Only rows whose log line carries the sensitive column count, and only groups with at least
    `min_samples` of them; fewer than two such groups measure nothing (None).
    """
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])  # group -> [weight, positive weight, rows]
    for record in records:
        group = sensitive_value(record, column)
        if group is None:
            continue
        share = weight(record, rates)
        entry = totals[str(group)]
        entry[0] += share
        entry[1] += share if record["prediction"] == positive else 0.0
        entry[2] += 1
    rates_by_group = {g: {"selection_rate": t[1] / t[0], "rows": t[2]} for g, t in totals.items() if t[2] >= min_samples}
    if len(rates_by_group) < 2:
        return None, rates_by_group
    selection = [g["selection_rate"] for g in rates_by_group.values()]
    return max(selection) - min(selection), rates_by_group


def sensitive_value(record: Record, column: str) -> Any:
    """The row's sensitive attribute: logged beside the inputs (`sensitive`, as the monitors read it), or as an input."""
    return (record.get("sensitive") or {}).get(column, (record.get("inputs") or {}).get(column))


def age_days(trained_at: float | None, now: float) -> float | None:
    return (now - trained_at) / 86400 if trained_at is not None else None
