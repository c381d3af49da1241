"""The append-only audit log: one JSON line per change that took effect.

It feeds the delivery KPIs, so it records only what really changed; failed
or refused operations leave it untouched.
"""
from __future__ import annotations

import getpass
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

from specops.core.clock import now
from specops.core.files import append_line
from specops.core.paths import STATE_DIR


def actor() -> str:
    for var in ("SPECOPS_ACTOR", "GITHUB_ACTOR", "BUILD_REQUESTEDFOREMAIL"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class AuditLog:
    def __init__(self, root: Path):
        self.root = root
        self.path = root / STATE_DIR / "audit.jsonl"

    def record(self, **entry: Any) -> dict[str, Any]:
        entry = {"time": now(), "actor": actor(), "commit": git_commit(self.root), **entry}
        append_line(self.path, json.dumps(entry, sort_keys=True, default=str))
        return entry

    def entries(self) -> Iterator[dict[str, Any]]:
        if self.path.exists():
            with self.path.open(encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        yield json.loads(line)
