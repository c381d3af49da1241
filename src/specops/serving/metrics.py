"""Prometheus metrics per deployment, summed over the server's worker processes.

Each worker owns one slice of a shared array (single writer, so no locks);
a scrape, which any worker may answer, sums the slices. Three families:
requests by status class, errors (5xx and timeouts: the server's fault, not
the client's; a 422 for a row the model cannot score is the client's), and a
latency histogram. Beside them, a gauge from the answering worker: 1 for each
state file it follows (traffic.json, config.json, keys.json) whose last change
it could not use.

prometheus_client renders the text format: this module is a custom collector
over the array (the scrapers parse it with core.http.scrape_metrics). The
library's own multiprocess mode (mmap files) would replace the array, but its
`observe`, on every request, costs 4-12x the array's in a microbenchmark and
about 4x inside a loaded worker: bench/RESULTS.md, "Metrics".
"""
from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from itertools import accumulate
from multiprocessing.sharedctypes import SynchronizedArray

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
STATUS_CLASSES = ("2xx", "4xx", "5xx")
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # what generate_latest writes
_LE = [*map(floatToGoString, BUCKETS), "+Inf"]
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
        self.faults: Callable[[], dict[str, str | None]] = dict  # state file -> why it cannot be used (None: fine)
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

    def exposition(self) -> bytes:
        """The text format (version 0.0.4, CONTENT_TYPE), summed over workers."""
        return generate_latest(self)  # any object with collect() will do as the registry

    def collect(self) -> Iterator[Metric]:
        """The three families, as a prometheus_client collector (histogram buckets made cumulative here)."""
        requests = CounterMetricFamily("specops_requests", "Scoring requests answered, by deployment and status class.",
                                       labels=["deployment", "status"])
        errors = CounterMetricFamily("specops_errors", "Requests that failed on the server side (5xx, timeouts).",
                                     labels=["deployment"])
        latency = HistogramMetricFamily("specops_request_duration_seconds", "Time from request read to answer.",
                                        labels=["deployment"])
        for name, row in self._totals().items():
            for i, status_class in enumerate(STATUS_CLASSES):
                requests.add_metric([name, status_class], row[i])
            errors.add_metric([name], row[_ERRORS])
            latency.add_metric([name], list(zip(_LE, accumulate(row[_BUCKET0:_SUM]))), row[_SUM])
        faults = GaugeMetricFamily("specops_state_file_fault", "1 while a state file the worker follows cannot be used "
                                   "(the last good value stays in force).", labels=["file"])
        for file, problem in sorted(self.faults().items()):
            faults.add_metric([file], 1.0 if problem else 0.0)
        yield from (requests, errors, latency, faults)

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
