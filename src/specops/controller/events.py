"""Retraining events and their durable queue.

Every event has an id derived from what caused it (the cron fire time, the
data hash, the monitor window), so the same cause never queues twice. The
queue is a SQLite table with one row per event ever queued, keyed by that id,
holding its latest status: an event that was started but never finished (the
controller died) is still pending after a restart.

Several processes share it (the controller thread inside `specops endpoint
serve`, `specops retrain`, a monitor run). WAL mode lets them read while one
writes, the busy timeout makes a writer wait its turn instead of failing, and
`offer` is a single INSERT on the unique id, so of two processes offering the
same event exactly one gets True.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from specops.core.clock import now
from specops.core.paths import STATE_DIR

# The blueprint's order: drift first, then performance, then staleness; other causes after.
REASONS = ("drift", "performance", "stale", "data_change", "schedule", "manual")
PENDING, STARTED, DONE, FAILED, COALESCED = "pending", "started", "done", "failed", "coalesced"
STATUSES = (PENDING, STARTED, DONE, FAILED, COALESCED)

# Long enough to outwait any other process's write (each is one short transaction).
BUSY_TIMEOUT_S = 30.0
SCHEMA_VERSION = 1  # PRAGMA user_version: 0 is a database nobody has set up yet
_SCHEMA = (
    f"""CREATE TABLE events (
        id       TEXT PRIMARY KEY,
        pipeline TEXT NOT NULL,
        reason   TEXT NOT NULL,
        detail   TEXT NOT NULL,
        status   TEXT NOT NULL CHECK (status IN ({", ".join(f"'{s}'" for s in STATUSES)})),
        note     TEXT NOT NULL DEFAULT '',
        queued   TEXT NOT NULL,
        changed  TEXT NOT NULL
    )""",
    "CREATE INDEX events_by_status ON events (status)",  # pending() skips the finished thousands
)
_COLUMNS = "id, pipeline, reason, detail, status, note, queued, changed"
_INSERT = (f"INSERT INTO events ({_COLUMNS}) VALUES ({', '.join(f':{c}' for c in _COLUMNS.split(', '))})"
           " ON CONFLICT (id) DO NOTHING")  # the unique id: of two offers of one event, one inserts


@dataclass(frozen=True)
class Event:
    id: str
    pipeline: str
    reason: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown trigger reason {self.reason!r}; expected one of {', '.join(REASONS)}")

    @property
    def priority(self) -> int:
        return REASONS.index(self.reason)


def _use_wal(db: sqlite3.Connection) -> None:
    """Switch the file to WAL (stored in it: every later connection gets it). Two processes opening a new queue
    at once both ask; SQLite refuses the second at once with "database is locked", ignoring the busy timeout,
    so ask again until the timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class EventQueue:
    def __init__(self, root: Path):
        self.path = root / STATE_DIR / "controller" / "events.db"
        self.legacy = self.path.with_name("events.jsonl")  # the queue before SQLite; imported once
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """The queue's one connection, opened on first use and kept: closing the last connection to a
        WAL database checkpoints it, several fsyncs per call. The lock lets the controller's thread
        and a command's share it; specops starts other processes by spawn, so none inherits it."""
        with self._lock:
            if self._db is None:
                self._db = self._open()
            yield self._db

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: each statement commits by itself, so offer and mark are one transaction each.
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA synchronous = FULL")  # durable at commit, as the fsync'ed JSON lines were
        self._set_up(db)
        return db

    def _set_up(self, db: sqlite3.Connection) -> None:
        """Create the table and import a legacy events.jsonl, once, whichever process comes first."""
        _use_wal(db)
        db.execute("BEGIN IMMEDIATE")  # the others wait here, then find the version set and do nothing
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                for statement in _SCHEMA:
                    db.execute(statement)
                db.executemany(_INSERT, _legacy_rows(self.legacy))
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def statuses(self) -> dict[str, tuple[Event, str]]:
        """Every event ever queued, in the order they were queued, with its latest status."""
        with self._connect() as db:
            rows = db.execute("SELECT id, pipeline, reason, detail, status FROM events ORDER BY rowid").fetchall()
        return {row[0]: (Event(*row[:4]), row[4]) for row in rows}

    def offer(self, event: Event) -> bool:
        """Queue an event unless one with the same id was ever queued; True when it was new."""
        with self._connect() as db:
            inserted = db.execute(_INSERT, _row(event, PENDING, now())).rowcount
        return inserted == 1

    def mark(self, event: Event, status: str, note: str = "") -> None:
        with self._connect() as db:
            changed = db.execute("UPDATE events SET status = ?, note = ?, changed = ? WHERE id = ?",
                                 (status, note, now(), event.id)).rowcount
        if not changed:
            raise KeyError(f"event {event.id!r} was never queued")

    def pending(self) -> list[Event]:
        """Events still to run, most urgent first; started-but-unfinished ones count (a crash)."""
        with self._connect() as db:
            rows = db.execute("SELECT id, pipeline, reason, detail FROM events WHERE status IN (?, ?)",
                              (PENDING, STARTED)).fetchall()
        return sorted((Event(*row) for row in rows), key=lambda e: (e.priority, e.id))


def _row(event: Event, status: str, at: str) -> dict[str, str]:
    """A newly queued event's row, for _INSERT."""
    return {**asdict(event), "status": status, "note": "", "queued": at, "changed": at}


def _legacy_rows(path: Path) -> list[dict[str, str]]:
    """The JSON-lines queue's events as rows: ids kept, the latest status (and its note) wins."""
    if not path.exists():
        return []
    rows: dict[str, dict[str, str]] = {}
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.endswith("\n"):  # torn by a crash mid-append: that change never happened
                continue
            record = json.loads(line)
            if "event" in record:
                event = Event(**record["event"])
                rows[event.id] = _row(event, record["status"], record["time"])
            elif record["id"] in rows:
                rows[record["id"]].update(status=record["status"], note=record.get("note", ""), changed=record["time"])
    return list(rows.values())
