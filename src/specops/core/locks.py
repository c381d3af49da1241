"""The one kind of lock specops takes: an exclusive file lock (filelock, flock underneath).

The kernel releases it when its holder dies, even by SIGKILL, so a killed
process never leaves a stale lock. Who holds it is written beside the lock
file (`<lock>.holder`): the lock file itself is truncated by every contender.
"""
from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from specops.core.clock import now
from specops.core.files import atomic_write
from specops.errors import LockHeld


@contextmanager
def exclusive(path: Path, what: str, actor: str = "", wait_s: float = 0.0) -> Iterator[None]:
    """Hold the lock at `path` for `what`; LockHeld naming the holder if it is not free within `wait_s`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    try:
        lock.acquire(timeout=wait_s)
    except Timeout:
        raise LockHeld(f"another process holds the {path.stem} lock ({holder(path)}); wait for it to finish") from None
    holder_file = _holder_file(path)
    try:
        atomic_write(holder_file, json.dumps(holder_info(what, actor)))
        yield
    finally:
        holder_file.unlink(missing_ok=True)
        lock.release()


@contextmanager
def serialized(path: Path) -> Iterator[None]:
    """Wait for the lock at `path`: for short read-compare-write sections, never held across a pause."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path):
        yield


def is_held(path: Path) -> bool:
    """True while some process holds the lock at `path` (a probe that takes it and lets go at once)."""
    if not path.exists():
        return False
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def holder(path: Path) -> str:
    try:
        info = json.loads(_holder_file(path).read_text())
    except (OSError, ValueError):
        return "holder unknown"
    return describe_holder(info)


def holder_info(what: str, actor: str) -> dict[str, object]:
    """Who takes a lock, as every kind of lock records it (a file beside the lock, a leased blob)."""
    return {"pid": os.getpid(), "actor": actor, "host": socket.gethostname(), "since": now(), "what": what}


def describe_holder(info: dict[str, object]) -> str:
    return f"pid {info.get('pid')}, {info.get('actor')}@{info.get('host')}, since {info.get('since')}, {info.get('what')}"


def _holder_file(path: Path) -> Path:
    return path.with_name(path.name + ".holder")
