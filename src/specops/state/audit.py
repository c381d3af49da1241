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
from specops.core.paths import ProjectPaths
from specops.state.storage import LocalStorage, Storage


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
    RETRAIN_REQUESTED = "retrain_requested"  # by an environment that trains nothing, of the one it is promoted from
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
    """The log in a storage (every environment sharing it writes there); `env` is stamped on the lines this
    instance writes. `root` is the project checkout, for the git commit of each line."""

    NAME = ProjectPaths.relative(lambda p: p.audit_log)

    def __init__(self, root: Path | str, env: str | None = None, storage: Storage | None = None):
        self.root, self.env = Path(root), env
        self.storage = storage or LocalStorage(ProjectPaths(self.root).state_dir)

    def record(self, action: AuditAction, resource: str, **detail: Any) -> dict[str, Any]:
        entry = {"time": now(), "actor": actor(), "commit": git_commit(self.root), "action": AuditAction(action).value,
                 "resource": resource, **({"env": self.env} if self.env else {}), **detail}
        self.storage.append(self.NAME, json.dumps(entry, sort_keys=True, default=str))
        return entry

    def entries(self) -> Iterator[dict[str, Any]]:
        for line in self.storage.lines(self.NAME):
            if line.strip():
                yield json.loads(line)
