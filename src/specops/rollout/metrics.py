"""Live metrics for analysis: scrape the endpoint server's /metrics and measure one window.

Counters only grow while a server runs, so the window is the difference of two
scrapes; a counter that went down means the server restarted in between, and
the window then counts from zero (what the new server has seen).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client.samples import Sample

from specops.core.http import metric_samples, scrape_metrics

Snapshot = dict[str, dict[str, Any]]  # deployment -> {"requests", "errors", "buckets": [[le, cumulative], ...]}
# The last bucket's bound as the exposition writes it: snapshots are saved in state (a rollout's window), which is
# strict JSON, where a float infinity has no spelling.
INF = "+Inf"
# The samples read, by their names in the exposition (serving/metrics.py; dashboards read the same).
REQUESTS, ERRORS, BUCKET = "specops_requests_total", "specops_errors_total", "specops_request_duration_seconds_bucket"


def scrape(url: str, timeout_s: float = 5.0) -> Snapshot:
    return _snapshot(scrape_metrics(url, timeout_s))


def parse(text: str) -> Snapshot:
    return _snapshot(metric_samples(text))


def _snapshot(samples: Iterable[Sample]) -> Snapshot:
    snapshot: Snapshot = {}
    for sample in samples:
        deployment = sample.labels.get("deployment")
        if deployment is None or sample.name not in (REQUESTS, ERRORS, BUCKET):
            continue
        row = snapshot.setdefault(deployment, {"requests": 0.0, "errors": 0.0, "buckets": []})
        if sample.name == REQUESTS:  # summed over the status classes
            row["requests"] += sample.value
        elif sample.name == ERRORS:
            row["errors"] = sample.value
        else:
            bound = float(sample.labels["le"])
            row["buckets"].append([bound if bound != float("inf") else INF, sample.value])
    return snapshot


@dataclass(frozen=True)
class Traffic:
    """What one deployment answered within a window."""

    requests: int
    errors: int
    p95_ms: float | None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


def combined(traffic: Iterable[Traffic]) -> Traffic:
    """Several deployments as one arm (the stable side may be a split): p95 weighted by requests."""
    arms = list(traffic)
    requests = sum(t.requests for t in arms)
    timed = [(t.p95_ms, t.requests or 1) for t in arms if t.p95_ms is not None]
    p95 = sum(p * n for p, n in timed) / sum(n for _, n in timed) if timed else None
    return Traffic(requests, sum(t.errors for t in arms), p95)


def window(before: Snapshot, after: Snapshot, deployment: str) -> Traffic:
    now, then = after.get(deployment), before.get(deployment)
    if now is None:
        return Traffic(0, 0, None)
    if then is None or now["requests"] < then["requests"]:  # new deployment, or the server restarted
        then = {"requests": 0.0, "errors": 0.0, "buckets": [[b, 0.0] for b, _ in now["buckets"]]}
    buckets = [[bound, count - earlier] for (bound, count), (_, earlier) in zip(now["buckets"], then["buckets"])]
    return Traffic(int(now["requests"] - then["requests"]), int(now["errors"] - then["errors"]), quantile(buckets, 0.95))


def quantile(buckets: list[list[Any]], q: float) -> float | None:
    """Prometheus' histogram_quantile: linear within the bucket holding the q-th observation, in ms."""
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound, cumulative in buckets:
        if cumulative >= rank:
            if bound in (INF, float("inf")):
                return lower * 1000  # beyond the last finite bound: its value is the best we know
            share = (rank - below) / (cumulative - below) if cumulative > below else 1.0
            return (lower + (bound - lower) * share) * 1000
        lower, below = bound, cumulative
    return lower * 1000


@dataclass(frozen=True)
class AbsoluteErrors:
    """|prediction - label| of a regression's labelled answers: count, sum and sum of squares (for a standard error)."""

    count: int = 0
    total: float = 0.0
    squares: float = 0.0

    def add(self, error: float) -> AbsoluteErrors:
        return AbsoluteErrors(self.count + 1, self.total + error, self.squares + error * error)

    def __add__(self, other: AbsoluteErrors) -> AbsoluteErrors:
        return AbsoluteErrors(self.count + other.count, self.total + other.total, self.squares + other.squares)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    @property
    def variance(self) -> float:
        mean = self.mean or 0.0
        return max(self.squares / self.count - mean * mean, 0.0) if self.count else 0.0
