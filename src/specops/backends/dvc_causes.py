"""Why DVC finds a pipeline's stages stale: each changed input named, with its old and new value.

`dvc status` says *that* a dependency changed ("params.yaml: train modified"); a reviewer needs *what*
changed. The old side is what `dvc.lock` recorded at the last run, the new side the workspace:
parameter values are diffed leaf by leaf (`train.fixed.n_estimators: 100 → 150`), a spec file
is expanded into the fields of its documents that differ from what was last applied, data and code
files show their md5 before and after.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

from specops.errors import SpecopsError
from specops.plan.diff import diff_fields
from specops.plan.model import Cause
from specops.render.dvc import final_stage, stage_name
from specops.spec import Pipeline, SpecSet

CODE_SUFFIXES = (".py", ".r", ".sh", ".ipynb", ".sql", ".jinja")
HASH_CHARS = 8  # enough to tell two versions apart in a plan line
# Kinds of cause that change what training produces; `outputs` and `missing` only say a file is not
# in this workspace (a fresh clone has no DVC-cached outputs), which a rerun restores unchanged.
FEEDS_TRAINING = ("params", "spec", "data", "code", "command", "new")


def pipeline_status(root: Path, pipelines: list[Pipeline], until: str | None = None) -> dict[str, list[Any]]:
    """Stage name -> its `dvc status` entries, for every stale stage up to each pipeline's final stage
    (or its `until` step, e.g. evaluate)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    # Full paths: DVC resolves bare stage names against the process's cwd.
    targets = [f"{root / 'dvc.yaml'}:{stage_name(p.name, until) if until else final_stage(p.name)}" for p in pipelines]
    try:
        with Repo(str(root)) as repo:
            status = repo.status(targets=targets, with_deps=True)
    except DvcException as exc:
        raise SpecopsError(f"DVC could not read the pipeline status: {exc}") from None
    return {addr.rsplit(":", 1)[-1]: entries for addr, entries in status.items()}


def pipeline_causes(root: Path, pipeline: Pipeline, status: dict[str, list[Any]], specs: SpecSet,
                    stored: dict[str, dict[str, Any]]) -> tuple[Cause, ...]:
    """Every cause in the pipeline's stale stages (`status` from pipeline_status), upstream stages first."""
    return tuple(cause for stage, entries in status.items() if stage.startswith(f"{pipeline.name}-")
                 for cause in stage_causes(root, stage, entries, specs, stored))


def stage_causes(root: Path, stage: str, entries: list[Any], specs: SpecSet,
                 stored: dict[str, dict[str, Any]]) -> list[Cause]:
    """The causes in one stage's `dvc status` entries (a list of dicts and strings, DVC's own shape)."""
    locked = _lock(root).get(stage)
    if locked is None:
        return [Cause(stage, "new", "dvc.lock", note="never run: no entry in dvc.lock")]
    causes: list[Cause] = []
    for entry in entries:
        if entry == "changed command":
            causes.append(Cause(stage, "command", "cmd", locked.get("cmd"), _dvc_yaml(root)["stages"][stage]["cmd"]))
        elif entry == "always changed":
            causes.append(Cause(stage, "command", "always_changed", note="runs every time"))
        elif isinstance(entry, dict):
            for path, status in (entry.get("changed deps") or {}).items():
                causes += _dep_causes(root, stage, path, status, locked, specs, stored)
            for path, status in (entry.get("changed outs") or {}).items():
                causes.append(Cause(stage, "outputs", path, note=str(status)))
    return causes


def _dep_causes(root: Path, stage: str, path: str, status: Any, locked: dict[str, Any], specs: SpecSet,
                stored: dict[str, dict[str, Any]]) -> list[Cause]:
    if isinstance(status, dict):  # a params file: {section or key: "modified" | "new" | "deleted"}
        return _param_causes(root, stage, path, locked)
    if status == "deleted":  # not in this workspace: an upstream output not reproduced yet, data not pulled
        return [Cause(stage, "missing", path, note="not in the workspace")]
    if path in {source.file for source in specs.sources.values()}:
        return _spec_causes(stage, path, specs, stored) or [Cause(stage, "spec", path, note=str(status))]
    kind = "code" if path.lower().endswith(CODE_SUFFIXES) or path.startswith("src/") else "data"
    old = next((d.get("md5") for d in locked.get("deps", []) if d.get("path") == path), None)
    return [Cause(stage, kind, path, _short(old), _short(_md5(root / path)), str(status))]


def _param_causes(root: Path, stage: str, file: str, locked: dict[str, Any]) -> list[Cause]:
    old = (locked.get("params") or {}).get(file, {})
    current = _yaml(root / file)
    new = {key: _get(current, key) for key in old} if old else {}
    for key in _tracked_params(root, stage, file):  # a key added to dvc.yaml since the last run
        new.setdefault(key, _get(current, key))
    changes = diff_fields(old, new)
    return [Cause(stage, "params", c.path, c.old, c.new) for c in changes]


def _spec_causes(stage: str, file: str, specs: SpecSet, stored: dict[str, dict[str, Any]]) -> list[Cause]:
    """The fields of the file's documents that differ from what the last apply recorded."""
    causes = []
    for key, source in specs.sources.items():
        doc = specs.index.get(key) if source.file == file else None
        if doc is None or key not in stored:
            continue
        desired = {"spec": doc.spec.model_dump(mode="json")}
        for change in diff_fields({"spec": stored[key].get("spec")}, desired):
            causes.append(Cause(stage, "spec", f"{key} {change.path}", change.old, change.new))
    return causes


def _tracked_params(root: Path, stage: str, file: str) -> list[str]:
    keys: list[str] = []
    for item in _dvc_yaml(root)["stages"].get(stage, {}).get("params", []):
        if isinstance(item, str) and file == "params.yaml":
            keys.append(item)
        elif isinstance(item, dict) and file in item:
            keys += list(item[file] or [])
    return keys


def _get(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _md5(path: Path) -> str | None:
    """DVC 3's hash of a file (plain md5 of its bytes); directories and missing files: none."""
    if not path.is_file():
        return None
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _short(value: str | None) -> str | None:
    return value[:HASH_CHARS] if value else value


def _lock(root: Path) -> dict[str, Any]:
    lock = root / "dvc.lock"
    return (_yaml(lock).get("stages") or {}) if lock.exists() else {}


def _dvc_yaml(root: Path) -> dict[str, Any]:
    return _yaml(root / "dvc.yaml")


def _yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
