"""One apply at a time (core.locks: released by the kernel when the holder dies)."""
from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

from specops.apply.audit import actor
from specops.core.locks import exclusive
from specops.core.paths import ProjectPaths


def apply_lock(root: Path, what: str) -> AbstractContextManager[None]:
    return exclusive(ProjectPaths(root).apply_lock, what, actor())
