"""The append-only audit log: one JSON line per change that took effect, in every environment.

It feeds the delivery KPIs, so it records only what really changed; failed
or refused operations leave it untouched. Each line says who, when, at which
git commit, in which environment, what (an `AuditAction`) and to which
resource, with the action's details.
"""
from __future__ import annotations

import getpass
import json
import os
import subprocess
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

from specops.core.clock import now
from specops.core.files import append_line
from specops.core.paths import ProjectPaths


class AuditAction(StrEnum):
    """Every kind of line the log holds; KPIs and reports match on these, never on free strings."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    ROLLOUT_STARTED = "rollout_started"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    INCIDENT = "incident"
    RECOVERED = "recovered"
    RETRAIN_STARTED = "retrain_started"
    RETRAIN_FINISHED = "retrain_finished"
    RETRAIN_FAILED = "retrain_failed"
    DRIFT_ALERT = "drift_alert"
    PERFORMANCE_ALERT = "performance_alert"
    ROLLBACK_REQUESTED = "rollback_requested"


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
    """The project's log (every environment's lines); `env` is stamped on the lines this instance writes."""

    def __init__(self, root: Path | str, env: str | None = None):
        self.root, self.env = Path(root), env
        self.path = ProjectPaths(self.root).audit_log

    def record(self, action: AuditAction, resource: str, **detail: Any) -> dict[str, Any]:
        entry = {"time": now(), "actor": actor(), "commit": git_commit(self.root), "action": AuditAction(action).value,
                 "resource": resource, **({"env": self.env} if self.env else {}), **detail}
        append_line(self.path, json.dumps(entry, sort_keys=True, default=str))
        return entry

    def entries(self) -> Iterator[dict[str, Any]]:
        if self.path.exists():
            with self.path.open(encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        yield json.loads(line)

