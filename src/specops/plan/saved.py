"""A plan written to a file (`specops plan -out FILE`) and applied as reviewed (`specops apply FILE`).

Like Terraform's saved plans: the file records what the plan was computed
from, so apply can refuse when anything moved since review: the spec files,
params.yaml, dvc.yaml/dvc.lock, the data the Datasets point at (their DVC md5
and their content), the state serial (another apply, a rollout transition or
a retrain committed) and the plan itself (what the backend observes live,
e.g. a server that stopped). Apply then re-plans under the lock and carries
out that plan only if its digest is the reviewed one.

The file holds digests and the plan's operations as `specops plan --format
json` shows them (spec fields with `${VAR}` references, never their values),
so it can travel as a CI artifact.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specops.core.digests import data_hash, file_digest
from specops.core.files import atomic_write
from specops.errors import SpecopsError
from specops.plan.model import Plan, digest
from specops.spec import SpecSet
from specops.spec.kinds import Dataset

FORMAT = "specops-plan/1"
# Beside the specs, what the plan's inputs are read from (relative to the project root).
INPUT_FILES = ("params.yaml", "dvc.yaml", "dvc.lock")


class StalePlan(SpecopsError):
    """The reviewed plan no longer describes what apply would do."""


@dataclass(frozen=True)
class SavedPlan:
    env: str
    backend: str
    serial: int
    plan_digest: str
    inputs: dict[str, str]  # "specs/x.yaml" / "params.yaml" / "data:data/credit.csv" -> digest ("absent" when missing)
    summary: str

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "environment": self.env, "backend": self.backend,
                           "state_serial": self.serial, "plan_digest": self.plan_digest,
                           "inputs": self.inputs, "summary": self.summary}, indent=2, sort_keys=True,
                          allow_nan=False)


def plan_digest(plan: Plan) -> str:
    """What the operations are: action, resource, changed paths and values, the full before/after digests."""
    ops = [{"action": op.action.value, "key": op.key, "before": digest(op.before), "after": digest(op.after),
            "changes": [[c.path, c.old, c.new] for c in op.changes]} for op in plan.operations]
    return digest({"env": plan.env, "backend": plan.backend, "operations": ops}) or ""


def inputs(specs: SpecSet) -> dict[str, str]:
    """Digests of everything the plan was computed from, by file (so a refusal can name what changed)."""
    root = specs.root
    found: dict[str, str] = {}
    spec_dir = root / "specs"
    for path in sorted(p for p in spec_dir.rglob("*") if p.is_file()):
        found[path.relative_to(root).as_posix()] = file_digest(path, "sha256") or "absent"
    for name in INPUT_FILES:
        found[name] = file_digest(root / name, "sha256") or "absent"
    for dataset in specs.of_kind(Dataset):
        relative = dataset.spec.path
        recorded = data_hash(root, relative)
        content = file_digest(root / relative, "md5") if recorded["source"] != "computed" else recorded["md5"]
        found[f"data:{relative}"] = f"{recorded['md5'] or 'absent'}/{content or 'absent'}"
    return found


def save(plan: Plan, specs: SpecSet, path: Path) -> SavedPlan:
    if plan.serial is None:
        raise SpecopsError("internal: a plan to save must carry the state serial it was computed on")
    saved = SavedPlan(plan.env, plan.backend, plan.serial, plan_digest(plan), inputs(specs), plan.summary())
    try:
        atomic_write(path, saved.to_json() + "\n")
    except OSError as exc:
        raise SpecopsError(f"cannot write the plan file {path}: {exc.strerror or exc}") from None
    return saved


def load(path: Path) -> SavedPlan:
    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except OSError as exc:
        raise SpecopsError(f"cannot read the plan file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise SpecopsError(f"{path} is not a plan file written by `specops plan -out` ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SpecopsError(f"{path} is not a plan file written by `specops plan -out` (format {FORMAT} expected)")
    try:
        return SavedPlan(env=str(data["environment"]), backend=str(data["backend"]), serial=int(data["state_serial"]),
                         plan_digest=str(data["plan_digest"]), summary=str(data["summary"]),
                         inputs={str(k): str(v) for k, v in dict(data["inputs"]).items()})
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecopsError(f"{path}: plan file field {exc} is missing or malformed") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def check(saved: SavedPlan, plan: Plan, specs: SpecSet, path: Path) -> None:
    """Refuse, naming every difference, unless `plan` (computed now, under the lock) is the reviewed one."""
    problems = []
    if (saved.env, saved.backend) != (plan.env, plan.backend):
        problems.append(f"it was written for environment {saved.env} ({saved.backend}), not {plan.env} ({plan.backend})")
    now = inputs(specs)
    for name in sorted(set(saved.inputs) | set(now)):
        before, after = saved.inputs.get(name), now.get(name)
        if before != after:
            what = "added" if before is None else "removed" if after is None or after == "absent" else "changed"
            label = f"data {name.removeprefix('data:')}" if name.startswith("data:") else name
            problems.append(f"{label} {what}")
    if plan.serial != saved.serial:
        problems.append(f"state moved from serial {saved.serial} to {plan.serial} (another apply, a rollout step or a "
                        f"retrain committed; `specops status` shows it)")
    if not problems and plan_digest(plan) != saved.plan_digest:
        problems.append(f"what the backend observes changed: the plan is now '{plan.summary()}' "
                        f"(was '{saved.summary}')")
    if problems:
        raise StalePlan(f"{path}: refusing to apply a plan that is out of date, nothing was applied: "
                        + "; ".join(problems) + ". Run `specops plan -out FILE` again and review it.")


def fingerprint_text(saved: SavedPlan) -> str:
    """A short id for the reviewed plan (printed by plan -out and apply), e.g. for a CI log."""
    return hashlib.sha256(saved.to_json().encode()).hexdigest()[:12]
