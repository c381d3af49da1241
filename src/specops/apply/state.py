"""The local record of what was applied, one JSON file per environment.

Written atomically after each successful operation, so a crash leaves a file
that is exactly as true as the operations that finished before it.
"""
from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from specops.lifecycle.paths import STATE_DIR


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class StateStore:
    def __init__(self, root: Path, env: str):
        self.path = root / STATE_DIR / "state" / f"{env}.json"
        self._data: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {"resources": {}}

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self._data["resources"]

    def fields(self) -> dict[str, dict[str, Any]]:
        return {key: entry["fields"] for key, entry in self.resources.items()}

    def put(self, key: str, fields: dict[str, Any], outputs: dict[str, Any] | None = None) -> None:
        self.resources[key] = {"fields": fields, "outputs": outputs or {}, "applied_at": now()}
        self._save()

    def remove(self, key: str) -> None:
        self.resources.pop(key, None)
        self._save()

    def _save(self) -> None:
        atomic_write(self.path, json.dumps(self._data, indent=2, sort_keys=True, default=str))
