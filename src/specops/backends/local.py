"""The embedded backend: DVC runs pipelines, MLflow (SQLite) tracks and registers, endpoints serve locally.

Declarations (Project, Dataset, FeatureSet, Gate) are recorded in state and
read by the lifecycle stages; a Pipeline is applied by `dvc repro`, which takes
every stage whose inputs did not change from DVC's cache; an Endpoint by
starting (or replacing) its server and rolling traffic out (local_endpoint).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specops.backends import local_endpoint
from specops.backends.dvc_causes import pipeline_causes, pipeline_status
from specops.core.processes import run_tied
from specops.lifecycle import production
from specops.plan.backend import Reporter
from specops.errors import SpecopsError
from specops.plan.model import Action, Cause, Operation, Resource
from specops.rollout.local import local_ports
from specops.rollout.ports import RolloutPorts
from specops.render.dvc import dump_dvc, final_stage, render_dvc, stage_name
from specops.spec import KINDS, FeatureSet, Pipeline, Project, SpecSet
from specops.spec.endpoints import Endpoint
from specops.spec.refs import resolve

if TYPE_CHECKING:
    from specops.project import Project as Session

CURRENT = "current"
RECORDED = "recorded"  # every model version the pipeline's register stage made is in state
DVC_FILE = "dvc.yaml"


class LocalBackend:
    name = "local"

    def __init__(self, project: Session):
        self.project = project
        self.root = project.root
        self._causes: dict[str, tuple[Cause, ...]] = {}

    @classmethod
    def from_project(cls, project: Session) -> LocalBackend:
        return cls(project)

    def rollout_ports(self, endpoint: str) -> RolloutPorts:
        return local_ports(self.project, endpoint)

    # -- desired ---------------------------------------------------------------
    def desired(self, specs: SpecSet) -> list[Resource]:
        project = f"Project/{specs.project.name}"
        resources = []
        for doc in specs.documents:
            fields: dict[str, Any] = {"spec": doc.spec.model_dump(mode="json")}
            deps: tuple[str, ...] = () if isinstance(doc, Project) else (project,)
            live: tuple[str, ...] = ()
            if isinstance(doc, FeatureSet):
                deps += (f"Dataset/{doc.spec.dataset}",)
            if isinstance(doc, Pipeline):
                s = doc.spec
                deps += (f"Dataset/{s.dataset}", f"FeatureSet/{s.feature_set}", f"Gate/{s.gate}")
                fields["outputs"] = CURRENT
                fields["registered"] = RECORDED
                live = ("outputs", "registered")
            if isinstance(doc, Endpoint):
                deps += _training_pipelines(specs, doc)  # a model is trained before it is served
                fields["serving"] = local_endpoint.RUNNING
                live = ("serving",)
            resources.append(Resource(doc.kind, doc.name, fields, deps, live))
        return resources

    # -- observe ---------------------------------------------------------------
    def observe(self, specs: SpecSet, stored: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        self.check_rendered(specs)
        actual = {key: dict(fields) for key, fields in stored.items()}
        pipelines = [p for p in specs.of_kind(Pipeline) if p.key in actual]
        self._causes = {}
        if pipelines:
            stale = pipeline_status(self.root, pipelines)
            for p in pipelines:
                changed = sorted(s.removeprefix(f"{p.name}-") for s in stale if s.startswith(f"{p.name}-"))
                actual[p.key]["outputs"] = f"stale ({', '.join(changed)})" if changed else CURRENT
                unrecorded = self.unrecorded_versions(p)
                actual[p.key]["registered"] = (f"unrecorded v{', v'.join(unrecorded)} (registered by a run no apply "
                                               f"recorded)" if unrecorded else RECORDED)
                self._causes[p.key] = pipeline_causes(self.root, p, stale, specs, stored)
        for endpoint in specs.of_kind(Endpoint):
            if endpoint.key in actual:
                actual[endpoint.key]["serving"] = local_endpoint.observe(self.project, endpoint)
        return actual

    def unrecorded_versions(self, pipeline: Pipeline) -> list[str]:
        """The version the pipeline's register stage last wrote, when state records an older one: a run whose apply
        was killed after registering, or a `dvc repro` by hand. Versions registered outside the pipeline (by a
        notebook, say) are not its outputs and are not reported."""
        registration = self.project.paths.run(pipeline.name).registration
        if not registration.exists():
            return []
        written = str(json.loads(registration.read_text()).get("version", ""))
        applied = self.project.applied(pipeline.key)
        recorded = str((applied.outputs if applied else {}).get("version") or 0)
        if not (written.isdigit() and recorded.isdigit()) or int(written) <= int(recorded):
            return []
        return [written]

    def record_versions(self, pipeline: Pipeline, versions: list[str], report: Reporter) -> dict[str, Any]:
        """State's outputs for the newest of `versions` (what the registration file would have said), naming all
        of them as reconciled so the audit line says what entered state without a pipeline run of this apply."""
        client, name = self.project.registry, pipeline.spec.model_name
        latest = client.get_model_version(name, versions[-1])
        aliases = sorted(a for a, v in client.get_registered_model(name).aliases.items() if str(v) == str(latest.version))
        report(f"{pipeline.key}: recording model version(s) {', '.join(versions)} registered by a run no apply recorded")
        return {"model": name, "version": latest.version, "aliases": aliases, "run_id": latest.run_id,
                "model_uri": latest.source, "reconciled": versions}

    def check_rendered(self, specs: SpecSet) -> None:
        if not specs.of_kind(Pipeline):
            return
        if not (self.root / ".dvc").is_dir():
            raise SpecopsError(f"{self.root} is not a DVC repository: run `dvc init` there first")
        dvc_file = self.root / DVC_FILE
        expected = dump_dvc(render_dvc(specs))
        if not dvc_file.exists() or dvc_file.read_text() != expected:
            raise SpecopsError(f"{DVC_FILE} is out of date with specs/: run `specops render` and commit the result")

    def causes(self) -> dict[str, tuple[Cause, ...]]:
        return dict(self._causes)

    def notes(self, specs: SpecSet) -> list[str]:
        # Say what apply does not do locally, rather than let a `+` line suggest it does.
        return [
            f"{doc.key}: recorded only; score with `specops batch invoke {doc.name}`"
            for doc in specs.documents if doc.kind == "BatchEndpoint"
        ]

    def records_only(self, op: Operation) -> bool:
        if op.kind == "Endpoint":
            return False  # starting, replacing and stopping servers, moving traffic
        return op.kind != "Pipeline" or op.action is Action.DELETE

    # -- apply -----------------------------------------------------------------
    def apply(self, op: Operation, specs: SpecSet, report: Reporter) -> dict[str, Any]:
        if op.action is Action.DELETE:
            if op.kind == "Pipeline":
                report(f"{op.key}: removed from state; its registered models stay in the registry")
            if op.kind == "Endpoint":
                return local_endpoint.remove(self.project, op.name, report)
            return {}
        doc = specs.get(KINDS[op.kind], op.name)
        if isinstance(doc, Project):
            return self._apply_project(doc, specs)
        if isinstance(doc, Pipeline):
            orphans = self.unrecorded_versions(doc) if op.action is Action.UPDATE else []
            if orphans and {c.path for c in op.changes} == {"registered"}:
                return self.record_versions(doc, orphans, report)  # nothing to run: only state to catch up
            outputs = self.run_pipeline(doc, specs, report)
            return {**outputs, "reconciled": orphans} if orphans else outputs
        if isinstance(doc, Endpoint):
            return local_endpoint.deploy(self.project, doc, report)
        return {}

    def _apply_project(self, project: Project, specs: SpecSet) -> dict[str, Any]:
        env = project.spec.environments[specs.env]
        resolve(env.values)  # fail now, not mid-pipeline, if a referenced variable is missing
        self.project.paths.state_dir.mkdir(exist_ok=True)
        return {"backend": env.backend}

    def run_pipeline(self, pipeline: Pipeline, specs: SpecSet, report: Reporter, retrain_reason: str | None = None) -> dict[str, Any]:
        """`dvc repro` the pipeline. A retraining first takes new data (steps with `refresh` forced, labelled
        production rows exported), brings validation and the features up to date with it, then forces the train
        stage, whose inputs may not have changed: one training, on the newest rows."""
        commands = [["repro", final_stage(pipeline.name)]]
        if retrain_reason:
            if pipeline.spec.feedback is not None:
                rows = production.export(specs, pipeline)
                report(f"{pipeline.key}: {rows} labelled production rows from endpoint {pipeline.spec.feedback.endpoint} "
                       f"(younger than {pipeline.spec.feedback.max_age}) join the training data")
            refreshed = [["repro", "--force", "--single-item", stage_name(pipeline.name, step.name)]
                         for step in pipeline.spec.steps if step.refresh]
            commands[:0] = [*refreshed, ["repro", stage_name(pipeline.name, "features")],
                            ["repro", "--force", "--single-item", stage_name(pipeline.name, "train")]]
        self._repro(pipeline, specs, commands, retrain_reason or "apply", report)
        registration = self.project.paths.run(pipeline.name).registration
        return json.loads(registration.read_text()) if registration.exists() else {}

    def train_candidate(self, pipeline: Pipeline, specs: SpecSet, report: Reporter) -> None:
        """Train and evaluate a candidate up to evaluation.json, stopping before the gate: nothing is registered,
        nothing deployed (a pull request's review, specops.review)."""
        self._repro(pipeline, specs, [["repro", stage_name(pipeline.name, "evaluate")]], "review", report)

    def _repro(self, pipeline: Pipeline, specs: SpecSet, commands: list[list[str]], reason: str, report: Reporter) -> None:
        production.ensure(specs, pipeline)
        env = {**os.environ, "SPECOPS_ENV": specs.env, "SPECOPS_TRIGGER_REASON": reason}
        # Stage commands say `python`: make it this interpreter, whatever PATH the caller had.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        for command in commands:
            report(f"{pipeline.key}: dvc {' '.join(command)}")
            # Tied to this process: an apply killed mid-run leaves no dvc or stage running, unlocked and unaudited.
            code = run_tied([sys.executable, "-m", "dvc", *command], cwd=self.root, env=env)
            if code != 0:
                raise SpecopsError(f"pipeline {pipeline.name!r} failed (dvc exit {code}); see the stage output above")


def _training_pipelines(specs: SpecSet, endpoint: Endpoint) -> tuple[str, ...]:
    models = {d.model_ref.name for d in endpoint.spec.deployments}
    return tuple(p.key for p in specs.of_kind(Pipeline) if p.spec.model_name in models)
