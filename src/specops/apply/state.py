"""The local record of what was applied, one JSON file per environment.

Written atomically after each successful operation, so a crash leaves a file
that is exactly as true as the operations that finished before it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from specops.core.clock import now
from specops.core.files import atomic_write
from specops.core.paths import STATE_DIR


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
