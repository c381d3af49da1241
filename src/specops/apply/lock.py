"""One apply at a time. flock is released by the kernel when the holder dies,
so a killed apply never leaves a stale lock behind."""
from __future__ import annotations

import fcntl
import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from specops.apply.audit import actor
from specops.apply.state import now
from specops.errors import LockHeld
from specops.lifecycle.paths import STATE_DIR


@contextmanager
def apply_lock(root: Path, what: str) -> Iterator[None]:
    path = root / STATE_DIR / "apply.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(f"another apply holds the lock ({_holder(path)}); wait for it to finish") from None
        holder = {"pid": os.getpid(), "actor": actor(), "host": socket.gethostname(), "since": now(), "what": what}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "holder unknown"
    return f"pid {info.get('pid')}, {info.get('actor')}@{info.get('host')}, since {info.get('since')}, {info.get('what')}"
