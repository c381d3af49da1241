"""The library API: what the CLI calls, and what tests call directly."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specops.apply.audit import AuditLog
from specops.apply.lock import apply_lock
from specops.apply.state import StateStore
from specops.backends.base import Backend, Reporter, get_backend, quiet
from specops.plan.diff import make_plan
from specops.plan.model import Action, Plan, digest
from specops.spec import SpecSet, load_specs


@dataclass
class Reconciliation:
    specs: SpecSet
    backend: Backend
    plan: Plan


@dataclass
class ApplyResult:
    plan: Plan
    applied: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)


def validate(root: Path | str, env: str | None = None) -> SpecSet:
    """Load and check every spec; raises SpecErrors listing all problems."""
    return load_specs(root, env)


def plan(root: Path | str, env: str | None = None) -> Reconciliation:
    specs = load_specs(root, env)
    environment = specs.project.spec.environments[specs.env]
    backend = get_backend(environment.backend, specs.root)
    desired = backend.desired(specs)
    actual = backend.observe(specs, StateStore(specs.root, specs.env).fields())
    result = make_plan(specs.env, backend.name, desired, actual)
    result.notes.extend(backend.notes(specs))
    return Reconciliation(specs, backend, result)


def apply(root: Path | str, env: str | None = None, report: Reporter = quiet) -> ApplyResult:
    """Plan and carry out the plan under the lock.

    Operations with an effect (a pipeline run) are saved and audited as each
    finishes, so a crash converges on the next apply. Operations that only
    record a declaration are saved once everything succeeded: a failed apply
    (failed expectations, failed gate) leaves state and audit log untouched.
    """
    root = Path(root).resolve()
    with apply_lock(root, f"apply --env {env or 'default'}"):
        rec = plan(root, env)
        state, audit = StateStore(rec.specs.root, rec.specs.env), AuditLog(rec.specs.root)
        result, deferred = ApplyResult(rec.plan), []

        def commit(op, outputs: dict[str, Any]) -> None:
            if op.action is Action.DELETE:
                state.remove(op.key)
            else:
                state.put(op.key, op.resource.stored_fields, outputs)
            audit.record(
                env=rec.specs.env, action=op.action.value, resource=op.key,
                before=digest(op.before), after=digest(op.after),
                changed=[c.path for c in op.changes], outputs=outputs,
            )
            result.applied.append(op.key)
            result.outputs[op.key] = outputs

        for op in rec.plan.operations:
            report(f"{op.action.symbol} {op.key}")
            outputs = rec.backend.apply(op, rec.specs, report)
            if rec.backend.records_only(op):
                deferred.append((op, outputs))
            else:
                commit(op, outputs)
        for op, outputs in deferred:
            commit(op, outputs)
        return result


def status(root: Path | str, env: str | None = None) -> dict[str, Any]:
    """What is deployed: every applied resource, when, and what it produced."""
    specs = load_specs(root, env)
    store = StateStore(specs.root, specs.env)
    return {"environment": specs.env, "resources": store.resources}
