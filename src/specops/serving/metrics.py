"""Prometheus metrics per deployment, summed over the server's worker processes.

Each worker owns one slice of a shared array (single writer, so no locks);
a scrape, which any worker may answer, sums the slices. Three families, in the
text exposition format: requests by status class, errors (5xx and timeouts:
the server's fault, not the client's), and a latency histogram.
"""
from __future__ import annotations

import multiprocessing
from multiprocessing.sharedctypes import SynchronizedArray

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
STATUS_CLASSES = ("2xx", "4xx", "5xx")
_CLASS_INDEX = {2: 0, 4: 1, 5: 2}  # status // 100 -> position in STATUS_CLASSES
# Per deployment: one counter per status class, errors, one count per bucket (+Inf last), latency sum.
_ERRORS = len(STATUS_CLASSES)
_BUCKET0 = _ERRORS + 1
_SUM = _BUCKET0 + len(BUCKETS) + 1
_WIDTH = _SUM + 1


MAX_DEPLOYMENTS = 16  # metric slots per worker: a reload may add deployments, never beyond this


def shared_array(workers: int, slots: int = MAX_DEPLOYMENTS) -> SynchronizedArray:
    return multiprocessing.get_context("spawn").Array("d", workers * slots * _WIDTH, lock=False)


class Metrics:
    """One worker's view. `deployments` lists the slot owners in order; a reload appends, so slots never move."""

    def __init__(self, array, deployments: list[str], worker: int, capacity: int | None = None):
        self.array = array
        self.capacity = capacity or len(deployments)
        self.worker = worker
        self.deployments: list[str] = []
        self._offset: dict[str, int] = {}
        self.set_slots(deployments)

    def set_slots(self, deployments: list[str]) -> None:
        if len(deployments) > self.capacity:
            raise ValueError(f"{len(deployments)} deployments exceed the server's {self.capacity} metric slots")
        self.deployments = list(deployments)
        self._offset = {name: (self.worker * self.capacity + i) * _WIDTH for i, name in enumerate(deployments)}

    def observe(self, deployment: str, status: int, seconds: float) -> None:
        base = self._offset[deployment]
        a = self.array
        a[base + _CLASS_INDEX[status // 100]] += 1
        if status >= 500 or status == 408:
            a[base + _ERRORS] += 1
        a[base + _BUCKET0 + _bucket(seconds)] += 1
        a[base + _SUM] += seconds

    def exposition(self) -> str:
        """The text format, summed over workers (histogram buckets made cumulative here)."""
        totals = self._totals()
        lines = ["# HELP specops_requests_total Scoring requests answered, by deployment and status class.",
                 "# TYPE specops_requests_total counter"]
        for name, row in totals.items():
            lines += [f'specops_requests_total{{deployment="{name}",status="{cls}"}} {row[i]:g}' for i, cls in enumerate(STATUS_CLASSES)]
        lines += ["# HELP specops_errors_total Requests that failed on the server side (5xx, timeouts).",
                  "# TYPE specops_errors_total counter"]
        lines += [f'specops_errors_total{{deployment="{name}"}} {row[_ERRORS]:g}' for name, row in totals.items()]
        lines += ["# HELP specops_request_duration_seconds Time from request read to answer.",
                  "# TYPE specops_request_duration_seconds histogram"]
        for name, row in totals.items():
            cumulative = 0.0
            for bound, count in zip((*map(str, BUCKETS), "+Inf"), row[_BUCKET0:_SUM]):
                cumulative += count
                lines.append(f'specops_request_duration_seconds_bucket{{deployment="{name}",le="{bound}"}} {cumulative:g}')
            lines.append(f'specops_request_duration_seconds_sum{{deployment="{name}"}} {row[_SUM]:.6f}')
            lines.append(f'specops_request_duration_seconds_count{{deployment="{name}"}} {cumulative:g}')
        return "\n".join(lines) + "\n"

    def _totals(self) -> dict[str, list[float]]:
        values = self.array[:]
        per_worker = self.capacity * _WIDTH
        totals = {name: [0.0] * _WIDTH for name in self.deployments}
        for start in range(0, len(values), per_worker):
            for i, name in enumerate(self.deployments):
                row = values[start + i * _WIDTH: start + (i + 1) * _WIDTH]
                totals[name] = [t + v for t, v in zip(totals[name], row)]
        return totals


def _bucket(seconds: float) -> int:
    for i, bound in enumerate(BUCKETS):
        if seconds <= bound:
            return i
    return len(BUCKETS)
