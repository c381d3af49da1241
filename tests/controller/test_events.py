"""The SQLite event queue across processes: one winner per offered id, crashes, and the JSON-lines queue it replaced."""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from specops.controller.events import DONE, PENDING, STARTED, Event, EventQueue

SPAWN = multiprocessing.get_context("spawn")  # fresh interpreters, as two specops commands would be
IDS = [f"drift:p:w{i}" for i in range(200)]


def offer_all(root: str, barrier, results) -> None:
    queue = EventQueue(Path(root))
    barrier.wait()  # both start offering at once, on a queue neither has created yet
    results.put([queue.offer(Event(id, "p", "drift")) for id in IDS])


def start_then_die(root: str) -> None:
    queue = EventQueue(Path(root))
    event = Event("drift:p:w1", "p", "drift")
    queue.offer(event)
    queue.mark(event, STARTED)
    os.kill(os.getpid(), signal.SIGKILL)  # the controller dies mid-retrain: no DONE, no FAILED


def test_two_processes_offering_the_same_ids_each_id_is_won_once(tmp_path: Path):
    barrier, results = SPAWN.Barrier(2), SPAWN.Queue()
    workers = [SPAWN.Process(target=offer_all, args=(str(tmp_path), barrier, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    first, second = results.get(timeout=120), results.get(timeout=120)
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    assert [a + b for a, b in zip(first, second)] == [1] * len(IDS)  # exactly one True per id
    queue = EventQueue(tmp_path)
    assert list(queue.statuses()) == IDS and len(queue.pending()) == len(IDS)
    with sqlite3.connect(queue.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_crash_between_started_and_done_leaves_the_event_pending(tmp_path: Path):
    child = SPAWN.Process(target=start_then_die, args=(str(tmp_path),))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == -signal.SIGKILL
    queue = EventQueue(tmp_path)
    assert [e.id for e in queue.pending()] == ["drift:p:w1"] and queue.statuses()["drift:p:w1"][1] == STARTED
    queue.mark(Event("drift:p:w1", "p", "drift"), DONE)  # the restarted controller runs it
    assert EventQueue(tmp_path).pending() == []


def test_marking_an_event_that_was_never_queued_is_an_error(tmp_path: Path):
    with pytest.raises(KeyError, match="never queued"):
        EventQueue(tmp_path).mark(Event("drift:p:w1", "p", "drift"), DONE)
    assert EventQueue(tmp_path).statuses() == {}


def legacy_line(record: dict) -> str:
    return json.dumps({"time": "2026-11-20T03:00:00+00:00", **record}, sort_keys=True) + "\n"


def test_a_legacy_jsonl_queue_is_imported_once(tmp_path: Path):
    stale, drift = Event("stale:p:1", "p", "stale", "31 days"), Event("drift:p:w1", "p", "drift", "income")
    done = Event("schedule:p:2026-11-16T03:00:00+00:00", "p", "schedule")
    legacy = tmp_path / ".specops" / "controller" / "events.jsonl"
    legacy.parent.mkdir(parents=True)
    legacy.write_text("".join([
        legacy_line({"event": vars(done), "status": PENDING}),
        legacy_line({"event": vars(stale), "status": PENDING}),
        legacy_line({"event": vars(drift), "status": PENDING}),
        legacy_line({"id": done.id, "status": STARTED}),
        legacy_line({"id": done.id, "status": DONE, "note": "ran"}),
        legacy_line({"id": drift.id, "status": STARTED}),
    ]) + '{"id": "stale:p:1", "status": "do')  # torn by a crash mid-append: never happened

    queue = EventQueue(tmp_path)
    assert queue.statuses() == {done.id: (done, DONE), stale.id: (stale, PENDING), drift.id: (drift, STARTED)}
    assert queue.pending() == [drift, stale] and not queue.offer(done)  # ids kept: a known cause never queues again

    queue.mark(drift, DONE)
    with legacy.open("a") as out:  # an old version's write after the import: not read again
        out.write("\n" + legacy_line({"event": vars(Event("manual:p:1", "p", "manual")), "status": PENDING}))
    again = EventQueue(tmp_path)
    assert again.pending() == [stale] and again.statuses()[drift.id][1] == DONE and "manual:p:1" not in again.statuses()
