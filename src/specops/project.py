"""`Project(root, env)`: one project in one environment, the session every command goes through.

Like DVC's `Repo` or Kedro's `KedroSession`, it holds what a command needs:
the specs of one environment (loaded once, on first use), where everything
lives, the state store, the audit log, the registry client and the backend,
and it carries out the reconcile loop: validate, plan, apply, status,
render. Long-running processes (endpoint server, controller, rollout driver)
are handed the same object, so nothing below it guesses the environment.

Backends are named in `BACKENDS` and imported only when a project uses one,
so this module sits low in the layers and the backends above it may take a
Project in turn.
"""
from __future__ import annotations

import importlib
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specops.core.paths import ProjectPaths
from specops.errors import SpecopsError
from specops.plan.backend import Backend, Reporter, quiet
from specops.plan.diff import make_plan
from specops.plan import saved as saved_plan
from specops.plan.model import Action, Operation, Plan, digest
from specops.plan.saved import SavedPlan
from specops.spec import SpecSet, load_specs
from specops.spec.kinds import Environment
from specops.state.audit import AuditAction, AuditLog, actor
from specops.state.records import AppliedResource, RolloutRecord
from specops.state.storage import Storage, open_storage
from specops.state.store import StateStore

if TYPE_CHECKING:
    from mlflow import MlflowClient

APPLY_LOCK = ProjectPaths.relative(lambda p: p.apply_lock)
# name -> "module:class"; the class has `from_project(project)`. Imported on first use only.
BACKENDS = {"local": "specops.backends.local:LocalBackend", "azureml": "specops.backends.azureml:AzureMLBackend"}


def create_backend(project: Project) -> Backend:
    name = project.environment.backend
    if name not in BACKENDS:
        raise SpecopsError(f"backend {name!r} is not available in this version of specops (available: {', '.join(BACKENDS)})")
    module, cls = BACKENDS[name].split(":")
    backend: Backend = getattr(importlib.import_module(module), cls).from_project(project)  # named in BACKENDS above
    return backend


@dataclass
class ApplyResult:
    plan: Plan
    applied: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResourceStatus:
    key: str
    applied_at: str
    outputs: dict[str, Any]
    live: dict[str, Any]  # what the backend observes now (a pipeline's outputs current or stale, a server running)


@dataclass(frozen=True)
class Status:
    environment: str
    serial: int
    resources: list[ResourceStatus]
    rollouts: dict[str, RolloutRecord]

    def to_dict(self) -> dict[str, Any]:
        return {"environment": self.environment, "serial": self.serial,
                "resources": {r.key: {"applied_at": r.applied_at, "outputs": r.outputs, "live": r.live}
                              for r in self.resources},
                "rollouts": {name: record.to_dict() for name, record in self.rollouts.items()}}


class Project:
    def __init__(self, root: Path | str = ".", env: str | None = None):
        self.root = Path(root).resolve()
        self.requested_env = env
        self.paths = ProjectPaths(self.root)

    @classmethod
    def of(cls, specs: SpecSet) -> Project:
        """The session for specs already loaded (their root and environment)."""
        project = cls(specs.root, specs.env)
        project.__dict__["specs"] = specs  # what cached_property would have loaded
        return project

    def __repr__(self) -> str:
        return f"Project({str(self.root)!r}, env={self.requested_env!r})"

    # -- what the session holds ----------------------------------------------------------
    @cached_property
    def specs(self) -> SpecSet:
        """Every spec rendered for this environment and checked; SpecErrors lists all problems."""
        return load_specs(self.root, self.requested_env)

    @property
    def env(self) -> str:
        return self.specs.env

    @property
    def environment(self) -> Environment:
        return self.specs.project.spec.environments[self.env]

    @cached_property
    def storage(self) -> Storage:
        """Where this environment's records and apply lock live: .specops/, or the blob container its
        Environment spec names (`state:`), so every machine applying it sees one truth."""
        return open_storage(self.specs)

    @cached_property
    def state(self) -> StateStore:
        return StateStore(self.storage, self.env)

    @cached_property
    def audit(self) -> AuditLog:
        return AuditLog(self.root, self.env, self.storage)

    @cached_property
    def backend(self) -> Backend:
        return create_backend(self)

    @cached_property
    def registry(self) -> MlflowClient:
        from specops.registry import connect  # MLflow is slow to import: only for commands that need it

        return connect(self.specs)

    def lock(self, what: str) -> AbstractContextManager[None]:
        """The apply lock: one change to this project at a time; LockHeld names the holder."""
        return self.storage.lock(APPLY_LOCK, what, actor())

    def reloaded(self) -> Project:
        """The same project and environment with the specs read again (a long-running loop's next pass)."""
        return Project(self.root, self.requested_env)

    # -- the reconcile loop --------------------------------------------------------------
    def validate(self) -> SpecSet:
        return self.specs

    def plan(self) -> Plan:
        backend = self.backend
        desired = backend.desired(self.specs)
        state = self.state.read()
        actual = backend.observe(self.specs, state.fields())
        result = make_plan(self.env, backend.name, desired, actual, backend.causes())
        result.serial = state.serial
        result.notes.extend(backend.notes(self.specs))
        return result

    def save_plan(self, path: Path) -> tuple[Plan, SavedPlan]:
        """`plan -out FILE`: the plan, and the file that lets `apply FILE` carry out exactly it."""
        result = self.plan()
        return result, saved_plan.save(result, self.specs, path)

    def apply(self, report: Reporter = quiet, reviewed: Path | None = None) -> ApplyResult:
        """Plan and carry out the plan under the lock.

        With `reviewed` (a file from `plan -out`), the plan computed under the lock must be
        that one: same specs, params, data and state serial, same operations; otherwise
        StalePlan names what moved and nothing is applied.

        Operations with an effect (a pipeline run) are committed and audited as each
        finishes, so a crash converges on the next apply. Operations that only record
        a declaration are committed once everything succeeded: a failed apply (failed
        expectations, failed gate) leaves state and audit log untouched.
        """
        saved = saved_plan.load(reviewed) if reviewed is not None else None
        with self.lock(f"apply --env {self.env}"):
            plan = self.plan()
            if saved is not None and reviewed is not None:
                saved_plan.check(saved, plan, self.specs, reviewed)
            result, deferred = ApplyResult(plan), []
            for op in plan.operations:
                report(f"{op.action.symbol} {op.key}")
                outputs = self.backend.apply(op, self.specs, report)
                if self.backend.records_only(op):
                    deferred.append((op, outputs))
                else:
                    self._commit_operation(op, outputs, result)
            for op, outputs in deferred:
                self._commit_operation(op, outputs, result)
            return result

    def commit(self, key: str, fields: dict[str, Any] | None, outputs: dict[str, Any], action: AuditAction,
               **detail: Any) -> int:
        """The one way a change enters state: the state write (`fields` None removes the resource), then its
        audit line carrying the new serial. Apply, the controller's retrains and rollouts all come here."""
        serial = self.state.remove(key) if fields is None else self.state.put(key, fields, outputs)
        self.audit.record(action, key, serial=serial, outputs=outputs, **detail)
        return serial

    def _commit_operation(self, op: Operation, outputs: dict[str, Any], result: ApplyResult) -> None:
        fields = None if op.action is Action.DELETE or op.resource is None else op.resource.stored_fields
        self.commit(op.key, fields, outputs, AuditAction(op.action.value), before=digest(op.before),
                    after=digest(op.after), changed=[c.path for c in op.changes])
        result.applied.append(op.key)
        result.outputs[op.key] = outputs

    def status(self) -> Status:
        """What is deployed: every applied resource, its outputs, and what the backend observes of it now."""
        state = self.state.read()
        observed = self.backend.observe(self.specs, state.fields()) if state.resources else {}
        live_keys = {r.key: r.live for r in self.backend.desired(self.specs)} if state.resources else {}
        resources = [ResourceStatus(key, entry.applied_at, entry.outputs,
                                    {k: observed.get(key, {}).get(k) for k in live_keys.get(key, ())})
                     for key, entry in sorted(state.resources.items())]
        return Status(self.env, state.serial, resources, state.rollouts)

    def applied(self, key: str) -> AppliedResource | None:
        return self.state.read().resources.get(key)

    def render(self, out: Path | None = None, check: bool = False) -> RenderResult:
        """What the specs render to for this environment's backend: dvc.yaml (local) or Azure ML YAML."""
        if self.environment.backend == "azureml":
            if check:
                raise SpecopsError("--check compares dvc.yaml, which only local environments use")
            from specops.render.azureml import render_azureml

            folder = out or self.root / "build" / self.env / "azureml"
            return RenderResult(render_azureml(self.specs, folder), folder, changed=True)
        from specops.render.dvc import dump_dvc, render_dvc

        text = dump_dvc(render_dvc(self.specs))
        target = self.root / "dvc.yaml"
        current = target.read_text() if target.exists() else None
        if check and current != text:
            raise SpecopsError("dvc.yaml is stale: run `specops render` and commit the result")
        if not check and current != text:
            target.write_text(text)
        return RenderResult([target], target.parent, changed=current != text)


@dataclass(frozen=True)
class RenderResult:
    files: list[Path]
    folder: Path
    changed: bool
