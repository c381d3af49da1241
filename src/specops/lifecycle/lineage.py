"""Lineage records: what a registered model was built from (specops.registry reads them back).

A record names the data (by the md5 DVC recorded, or one computed here), the
git commit and whether the tree had uncommitted changes, a hash of the source
code and of the dependency lock, the parameters, the feature set and the gate
result. It is stored with each model version, as tags and as an artifact.
"""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

from specops.core.digests import file_digest

LOCK_FILE = "requirements.lock"


def code_hash(root: Path) -> str | None:
    """sha256 over every Python file under src/, by sorted relative path, so renames count too."""
    files = sorted((root / "src").rglob("*.py"))
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def git_state(root: Path) -> dict[str, Any]:
    commit = _git(root, "rev-parse", "HEAD")
    dirty = bool(_git(root, "status", "--porcelain")) if commit else None
    return {"commit": commit, "dirty": dirty}


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):  # no git installed, or a hung repository
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def environment_lock_hash(root: Path) -> str | None:
    return file_digest(root / LOCK_FILE, "sha256")


def lineage_tags(lineage: dict[str, Any]) -> dict[str, str]:
    """The searchable summary of a lineage record, as model-version tags."""
    return {
        "lineage.data_path": lineage["data"]["path"],
        "lineage.data_md5": lineage["data"]["md5"] or "",
        "lineage.git_commit": lineage["git"]["commit"] or "",
        "lineage.git_dirty": str(lineage["git"]["dirty"]).lower(),
        "lineage.code_sha256": lineage["code_sha256"] or "",
        "lineage.requirements_sha256": lineage["requirements_lock_sha256"] or "",
        "lineage.feature_set": f"{lineage['feature_set']['name']}@v{lineage['feature_set']['version']}",
        "lineage.gate_passed": str(lineage["gate"]["passed"]).lower(),
        "lineage.task": lineage.get("task", "binary"),
        **({"lineage.production_rows_md5": rows["md5"] or "", "lineage.production_rows": str(rows["rows"])}
           if (rows := lineage["data"].get("production_rows")) else {}),
    }
