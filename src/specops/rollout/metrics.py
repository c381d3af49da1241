"""Live metrics for analysis: scrape the endpoint server's /metrics and measure one window.

Counters only grow while a server runs, so the window is the difference of two
scrapes; a counter that went down means the server restarted in between, and
the window then counts from zero (what the new server has seen).
"""
from __future__ import annotations

import re
import urllib.request
from dataclasses import dataclass
from typing import Any

Snapshot = dict[str, dict[str, Any]]  # deployment -> {"requests", "errors", "buckets": [[le, cumulative], ...]}
_LINE = re.compile(r'^(?P<name>specops_\w+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$', re.M)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def scrape(url: str, timeout_s: float = 5.0) -> Snapshot:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 -- our own server's URL
        return parse(response.read().decode())


def parse(text: str) -> Snapshot:
    snapshot: Snapshot = {}
    for match in _LINE.finditer(text):
        labels = dict(_LABEL.findall(match["labels"]))
        row = snapshot.setdefault(labels["deployment"], {"requests": 0.0, "errors": 0.0, "buckets": []})
        value = float(match["value"])
        if match["name"] == "specops_requests_total":
            row["requests"] += value
        elif match["name"] == "specops_errors_total":
            row["errors"] = value
        elif match["name"] == "specops_request_duration_seconds_bucket":
            row["buckets"].append([_bound(labels["le"]), value])
    return snapshot


def _bound(text: str) -> float:
    return float("inf") if text == "+Inf" else float(text)


@dataclass(frozen=True)
class Traffic:
    """What one deployment answered within a window."""

    requests: int
    errors: int
    p95_ms: float | None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


def window(before: Snapshot, after: Snapshot, deployment: str) -> Traffic:
    now, then = after.get(deployment), before.get(deployment)
    if now is None:
        return Traffic(0, 0, None)
    if then is None or now["requests"] < then["requests"]:  # new deployment, or the server restarted
        then = {"requests": 0.0, "errors": 0.0, "buckets": [[b, 0.0] for b, _ in now["buckets"]]}
    buckets = [[bound, count - earlier] for (bound, count), (_, earlier) in zip(now["buckets"], then["buckets"])]
    return Traffic(int(now["requests"] - then["requests"]), int(now["errors"] - then["errors"]), quantile(buckets, 0.95))


def quantile(buckets: list[list[float]], q: float) -> float | None:
    """Prometheus' histogram_quantile: linear within the bucket holding the q-th observation, in ms."""
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound, cumulative in buckets:
        if cumulative >= rank:
            if bound == float("inf"):
                return lower * 1000  # beyond the last finite bound: its value is the best we know
            share = (rank - below) / (cumulative - below) if cumulative > below else 1.0
            return (lower + (bound - lower) * share) * 1000
        lower, below = bound, cumulative
    return lower * 1000
