"""Lineage records: what a registered model was built from, and reading them back.

A record names the data (by the md5 DVC recorded, or one computed here), the
git commit and whether the tree had uncommitted changes, a hash of the source
code and of the dependency lock, the parameters, the feature set and the gate
result. It is stored with each model version, as tags and as an artifact.
"""
from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from ruamel.yaml import YAML

from specops.errors import SpecopsError
from specops.lifecycle.tracking import CHAMPION, connect
from specops.spec.loader import SpecSet

LOCK_FILE = "requirements.lock"
REF = re.compile(r"^(?P<model>[^@]+)(@(?P<selector>.+))?$")


def artifact_dir(version: str) -> str:
    """Where in the candidate's run one model version's lineage and card live."""
    return f"registry/v{version}"


def data_hash(root: Path, relative: str) -> dict[str, str]:
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
                return entry["md5"]
    return None


def _md5_in_dvc_file(root: Path, relative: str) -> str | None:
    tracked = _yaml_file(root / f"{relative}.dvc")
    name = Path(relative).name
    return next((o["md5"] for o in tracked.get("outs") or [] if o.get("path") == name and o.get("md5")), None)


def _yaml_file(path: Path) -> dict:
    return (YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}


def file_digest(path: Path, algorithm: str) -> str | None:
    if not path.is_file():
        return None
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    }


def describe(specs: SpecSet, ref: str) -> dict[str, Any]:
    """Model version, aliases, lineage and model card for `MODEL[@version|@alias]` (default @champion)."""
    match = REF.match(ref.strip())
    if not match:
        raise SpecopsError(f"invalid model reference {ref!r}: expected MODEL, MODEL@VERSION or MODEL@ALIAS")
    model, selector = match["model"], match["selector"] or CHAMPION
    version = _resolve(connect(specs), model, selector)
    folder = artifact_dir(version.version)
    try:
        lineage = mlflow.artifacts.load_dict(f"runs:/{version.run_id}/{folder}/lineage.json")
        card = mlflow.artifacts.load_text(f"runs:/{version.run_id}/{folder}/model_card.md")
    except (MlflowException, OSError):
        raise SpecopsError(f"{model} version {version.version} has no lineage record (it was not registered by specops)") from None
    return {"model": model, "version": version.version, "aliases": list(version.aliases), "lineage": lineage, "model_card": card}


def _resolve(client: MlflowClient, model: str, selector: str) -> ModelVersion:
    try:
        registered = client.get_registered_model(model)
    except MlflowException:
        known = ", ".join(sorted(m.name for m in client.search_registered_models())) or "none registered yet"
        raise SpecopsError(f"no registered model {model!r} (known: {known})") from None
    try:
        if selector.isdigit():
            return client.get_model_version(model, selector)
        return client.get_model_version_by_alias(model, selector)
    except MlflowException:
        aliases = ", ".join(sorted(registered.aliases)) or "none"
        what = f"version {selector}" if selector.isdigit() else f"alias {selector!r}"
        raise SpecopsError(f"model {model!r} has no {what} (aliases: {aliases})") from None
