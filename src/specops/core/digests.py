"""Content digests of data files: the md5 DVC recorded for a path, else one computed now.

The register stage writes it into a version's lineage; the controller's
data-change trigger compares it with the file as it is now.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, TypedDict

from ruamel.yaml import YAML


class DataHash(TypedDict):
    path: str
    md5: str | None  # None: computed for a file that is not there
    source: str  # dvc.lock, <file>.dvc or computed


def data_hash(root: Path, relative: str) -> DataHash:
    """The md5 DVC recorded for a data file (dvc.lock, then <file>.dvc), else one computed now."""
    for source, md5 in (("dvc.lock", _md5_in_dvc_lock(root, relative)), (f"{relative}.dvc", _md5_in_dvc_file(root, relative))):
        if md5:
            return {"path": relative, "md5": md5, "source": source}
    return {"path": relative, "md5": file_digest(root / relative, "md5"), "source": "computed"}


def _md5_in_dvc_lock(root: Path, relative: str) -> str | None:
    lock = _yaml_file(root / "dvc.lock")
    for stage in (lock.get("stages") or {}).values():
        for entry in [*(stage.get("outs") or []), *(stage.get("deps") or [])]:
            if entry.get("path") == relative and entry.get("md5"):
                return str(entry["md5"])
    return None


def _md5_in_dvc_file(root: Path, relative: str) -> str | None:
    tracked = _yaml_file(root / f"{relative}.dvc")
    name = Path(relative).name
    return next((o["md5"] for o in tracked.get("outs") or [] if o.get("path") == name and o.get("md5")), None)


def _yaml_file(path: Path) -> dict[str, Any]:
    return (YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}


def file_digest(path: Path, algorithm: str) -> str | None:
    """The file's digest; for a folder (a data set in partitions), the digest of its files' names and digests."""
    if path.is_dir():
        digest = hashlib.new(algorithm)
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{file.relative_to(path).as_posix()}\0{file_digest(file, algorithm)}\0".encode())
        return digest.hexdigest()
    if not path.is_file():
        return None
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
