"""Adaptive micro-batching: concurrent requests to one deployment share a model call.

A request waits in a queue; one loop per deployment takes everything queued
(up to max_batch_size rows) and scores it in one call. The call runs on the
event loop itself: while it runs, new requests pile up in the socket buffers,
and the next batch takes all of them. So batches grow with load by themselves:
an idle deployment scores a lone request at once, a busy one scores what
arrived during the previous call. (A worker thread would let the loop parse
during the call, but on a CPU-bound server the two only fight over the GIL.)
A batch the model fails on is retried so that only the requests that fail alone get the error
(`_score_batch`). Only when the previous batch held more than one request, i.e. under load,
does the loop also wait up to max_wait_ms for the batch to fill; a single
client never waits.

Fair by size: a request of more rows than max_batch_size waits in its own
queue and is scored on its own, one such request per turn of the loop, after
the small requests queued by then. So a client sending large requests back to
back gets one model call in turn with everyone else's batch, instead of
filling the queue in front of them (issue 11: one client's 10,000-row
requests cut everyone's throughput from 2,500 to 190 req/s).
"""
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Score = Callable[[list[list[Any]]], list[Any]]


@dataclass
class Pending:
    rows: list[list[Any]]
    future: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class MicroBatcher:
    def __init__(self, score: Score, max_batch_size: int, max_wait_ms: float):
        self._score = score
        self._max_rows = max_batch_size
        self._max_wait = max_wait_ms / 1000
        self._queue: deque[Pending] = deque()  # requests of up to max_batch_size rows, batched together
        self._large: deque[Pending] = deque()  # larger ones, scored alone, one per turn
        self._waiting = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._busy = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def submit(self, rows: list[list[Any]]) -> asyncio.Future:
        pending = Pending(rows)
        (self._large if len(rows) > self._max_rows else self._queue).append(pending)
        self._waiting.set()
        return pending.future

    async def _run(self) -> None:
        while True:
            if not self._queue and not self._large:
                self._waiting.clear()
                await self._waiting.wait()
            if self._queue:
                batch: list[Pending] = []
                self._drain(batch)
                if self._busy and self._max_wait and self._rows(batch) < self._max_rows:
                    await asyncio.sleep(self._max_wait)
                    self._drain(batch)
                self._busy = len(batch) > 1
                self._score_batch(batch)
                await asyncio.sleep(0)  # let the answers go out and new requests in before the next batch
            if self._large:  # one large request per turn, after the small ones that were waiting
                self._score_batch([self._large.popleft()])
                await asyncio.sleep(0)

    def _score_batch(self, batch: list[Pending]) -> None:
        """Score the batch in one call. If the call fails, only the requests that fail alone get the error:
        the request holding the row the error names (an exception with an int `row`, an index into the
        call's rows) is scored alone and the rest again together; an error naming no row has every
        request scored alone. So one bad row fails its own request, never the ones batched with it."""
        while batch:
            try:
                predictions = self._score([row for pending in batch for row in pending.rows])
            except Exception as exc:  # a model error fails requests, never the loop
                if len(batch) == 1:
                    if not batch[0].future.done():
                        batch[0].future.set_exception(exc)
                    return
                culprit = _holding(batch, getattr(exc, "row", None))
                for alone in batch if culprit is None else [culprit]:
                    self._score_batch([alone])
                batch = [] if culprit is None else [p for p in batch if p is not culprit]
                continue
            start = 0
            for pending in batch:
                end = start + len(pending.rows)
                if not pending.future.done():  # a timed-out request has gone already
                    pending.future.set_result(predictions[start:end])
                start = end
            return

    def _drain(self, batch: list[Pending]) -> None:
        rows = self._rows(batch)
        while rows < self._max_rows and self._queue:
            pending = self._queue.popleft()
            batch.append(pending)
            rows += len(pending.rows)

    @staticmethod
    def _rows(batch: list[Pending]) -> int:
        return sum(len(p.rows) for p in batch)


def _holding(batch: list[Pending], row: object) -> Pending | None:
    """The request that holds row `row` of the batch's rows (None when `row` is no such index)."""
    if not isinstance(row, int) or isinstance(row, bool) or row < 0:
        return None
    for pending in batch:
        if row < len(pending.rows):
            return pending
        row -= len(pending.rows)
    return None
