"""A durable record of the endpoint server's request counters, for windowed availability.

The inference log holds only answered requests (a failed one is never
logged), so it cannot count errors; the server's /metrics counts every
request, but only since the server started. The controller appends one
scrape per pass (`record_scrapes`) to slo/<endpoint>/metrics.jsonl in the
environment's storage (.specops/ or its blob container), whoever reads the SLO or not;
the count in a window is the sum of the counters' increases between
consecutive samples whose later sample falls in the window, as Prometheus'
`increase()` without extrapolation:

- a counter lower than the previous sample means the server restarted, and the
  increase is the new value (what the new server counted);
- the first sample's counts are dated at that sample (the server may have been
  running before: this errs towards counting too much, the safe side for a freeze);
- events are dated by the scrape that first saw them, so the window's edges
  are as sharp as the scrapes are frequent.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client.samples import Sample

from specops.core.http import metric_samples, scrape_metrics
from specops.core.paths import ProjectPaths
from specops.state.storage import Storage, open_storage

if TYPE_CHECKING:
    from specops.spec import SpecSet

Counts = dict[str, dict[str, float]]  # deployment -> {"good": 2xx, "bad": server failures}
# The samples read, by their names in the exposition (serving/metrics.py; dashboards read the same).
REQUESTS, ERRORS = "specops_requests_total", "specops_errors_total"


def history_path(root: Path | str, endpoint: str) -> Path:
    """Where the history is in a project's own .specops/ folder (an environment without `state:`)."""
    return ProjectPaths(Path(root)).slo_history(endpoint)


def history_name(endpoint: str) -> str:
    return ProjectPaths.relative(lambda p: p.slo_history(endpoint))


def parse_counts(text: str) -> Counts:
    """Good (2xx) and bad (5xx and timeouts: the server's errors counter) requests per deployment."""
    return _counts(metric_samples(text))


def scrape_counts(url: str, timeout_s: float = 5.0) -> Counts:
    return _counts(scrape_metrics(url, timeout_s))


def _counts(samples: Iterable[Sample]) -> Counts:
    counts: Counts = {}
    for sample in samples:
        deployment = sample.labels.get("deployment")
        if deployment is None or sample.name not in (REQUESTS, ERRORS):
            continue
        row = counts.setdefault(deployment, {"good": 0.0, "bad": 0.0})
        if sample.name == ERRORS:
            row["bad"] = sample.value
        elif sample.labels.get("status") == "2xx":
            row["good"] = sample.value
    return counts


def append_sample(storage: Storage, endpoint: str, counts: Counts, at: float | None = None) -> None:
    storage.append(history_name(endpoint), json.dumps({"time": time.time() if at is None else at, "counts": counts}))


def read_samples(storage: Storage, endpoint: str) -> list[dict[str, Any]]:
    # Complete lines only: a line still being appended by another process is skipped.
    lines = storage.lines(history_name(endpoint))
    return sorted((json.loads(line) for line in lines if line.strip()), key=lambda s: s["time"])


def increase(samples: Iterable[dict[str, Any]], start: float, end: float, skip: frozenset[str] = frozenset()) -> tuple[float, float]:
    """(good, bad) counted in (start, end], summed over deployments but those in `skip` (mirrors)."""
    good = bad = 0.0
    previous: Counts = {}
    for sample in samples:
        if sample["time"] > end:
            break
        counts = sample["counts"]
        if start < sample["time"]:
            for deployment, now in counts.items():
                if deployment not in skip:
                    added = _delta(previous.get(deployment), now)
                    good, bad = good + added["good"], bad + added["bad"]
        previous = counts
    return good, bad


def _delta(before: dict[str, float] | None, now: dict[str, float]) -> dict[str, float]:
    # All counters of a deployment reset together; a lower total means a new server counting from zero.
    if before is None or now["good"] + now["bad"] < before["good"] + before["bad"]:
        return now
    return {key: max(now[key] - before.get(key, 0.0), 0.0) for key in ("good", "bad")}


def record_scrapes(specs: SpecSet) -> list[str]:
    """One scrape of each served endpoint an SLO measures availability on; returns a line per failed scrape."""
    from specops.spec.slos import SLO, Availability

    endpoints = sorted({slo.spec.endpoint for slo in specs.of_kind(SLO)
                        if any(isinstance(o, Availability) for o in slo.spec.objectives)})
    problems, storage = [], open_storage(specs)
    for endpoint in endpoints:
        config = specs.paths.endpoint(endpoint) / "config.json"
        if not config.exists():
            continue  # never served: nothing to count
        url = f"http://127.0.0.1:{json.loads(config.read_text())['port']}/metrics"
        try:
            append_sample(storage, endpoint, scrape_counts(url, timeout_s=2.0))
        except OSError as exc:  # a stopped server adds no sample: the window then ends at the last one that worked
            problems.append(f"SLO history of {endpoint}: could not scrape {url}: {exc}")
    return problems
