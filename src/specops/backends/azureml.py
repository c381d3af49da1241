"""The Azure Machine Learning backend: rendered entities applied through `MLClient`.

Desired state is what `specops.render.azureml` renders, as plain dicts (the
CLI v2 YAML shape). Observe reads each resource back with `get` (404: absent)
and keeps only the fields specops sets, so server-side defaults never show as
changes. Apply is `begin_create_or_update` with polling and a timeout.

Online endpoints are split in three resources, as Azure ML needs: the
endpoint without traffic, its deployments, then the traffic (a deployment must
exist before it takes traffic). Batch endpoints likewise get their default
deployment last.

The workspace comes from the Project environment's `${VAR}` target, resolved
only when a client is needed; plans and state keep the references.
"""
from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from specops.backends.azure_data import upload_beside, upload_dataset
from specops.backends.azure_metrics import AzureMonitorMetrics, EndpointMetrics, workspace_id
from specops.backends.azure_rollout import AzureLiveMetrics, AzureRouter, model_version
from specops.core.credentials import azure_credential
from specops.plan.backend import Reporter, quiet
from specops.errors import SpecopsError
from specops.plan.model import Action, Cause, Operation, Resource
from specops.registry import CHAMPION, tagged_aliases
from specops.render.azureml import (
    REFERENCE, SIGNAL_NAMES, TRIGGER_VARIABLE, Rendered, azureml_notes, entity_dict, mltable_text, promotion_registry,
    read_project_files, render_entities, render_online_deployments, render_pipeline_job, short_hash, slug,
)
from specops.spec import Dataset, FeatureSet, Gate, Pipeline, Project, SpecSet
from specops.rollout.analysis import FAILED
from specops.rollout.engine import Rollout
from specops.rollout.ports import RolloutPorts
from specops.state.records import ACTIVE, DEGRADED, HEALTHY, RolloutRecord
from specops.spec.endpoints import BatchEndpoint, CanaryRollout, Endpoint
from specops.spec.refs import resolve

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

    from specops.project import Project as Session

DEFAULT_TIMEOUT = 1800.0  # seconds an apply waits for one long-running operation
# Seconds an analysis waits for min_samples (re-querying each minute) before it judges; Inconclusive pauses.
DEFAULT_ANALYSIS_WAIT = 900.0
RECORDS = (Project, Gate, FeatureSet)  # kinds Azure ML has no resource for: kept in specops' state only
RECORD_KINDS = frozenset(kind.__name__ for kind in RECORDS)
NOT_APPLIED = ("CommandComponent", "Model")  # inline in the pipeline job / registered by its register step
TRAFFIC_FIELDS = ("traffic", "mirror_traffic")
ENDPOINT_FIELDS = ("auth_mode", "description", "tags")  # what an OnlineEndpoint update sets on the live endpoint
KEPT_ON_DELETE = ("Environment", "Data", "PipelineJob", "RegistryModel")  # immutable history: never deleted by a plan
ARM_ID = re.compile(r"^(?:azureml:)?/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
                    r"Microsoft\.MachineLearningServices/workspaces/[^/]+/(?P<path>.+)$", re.IGNORECASE)
# The ids the service returns, written back as the short references specs render.
SHORT_REFERENCES = (
    (re.compile(r"^(?:models|environments|data)/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$"), "azureml:{name}:{version}"),
    (re.compile(r"^onlineEndpoints/(?P<name>[^/]+)/deployments/(?P<version>[^/]+)$"), "azureml:{name}:{version}"),
    (re.compile(r"^computes/(?P<name>[^/]+)$"), "azureml:{name}"),
)
WHOLE_MAPS = frozenset({"traffic", "mirror_traffic", "environment_variables"})
JOB_DIGEST = "specops.job"  # tag on a JobSchedule: the service rewrites its job's references to ids
# A deployment of a model with no version yet waits for the pipeline job that registers the first one.
JOB_ENDED = ("Completed", "Failed", "Canceled", "NotResponding")
JOB_POLL = 60.0  # seconds between looks at that job
DEFAULT_JOB_WAIT = 6 * 3600.0  # how long apply waits for it (the credentials refresh; the job runs on its cluster)
DEPLOYMENTS = ("OnlineDeployment", "BatchDeployment")
# On a monitor's run that found a signal over its thresholds: "The signal '<name>' has failed due to ..."
BREACHED_TAG = "azureml_modelmonitor_threshold_breached"
NEWEST = "*newest"  # in a promoted environment, what every alias but champion stands for: the newest version shared


@dataclass(frozen=True)
class MonitorRun:
    name: str
    created: datetime | None
    breached: tuple[str, ...]  # the Monitor's signal blocks (data_drift, ...) whose thresholds the run found breached
    message: str


class AzureMLBackend:
    name = "azureml"

    def __init__(self, project: Session, credential: Any = None, timeout: float = DEFAULT_TIMEOUT, *,
                 metrics: EndpointMetrics | None = None, analysis_wait: float = DEFAULT_ANALYSIS_WAIT,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], datetime] | None = None,
                 job_wait: float = DEFAULT_JOB_WAIT, **client_options: Any):
        """`credential` defaults to `core.credentials.azure_credential()` (federated OIDC in CI); `client_options` go to MLClient
        (e.g. `transport=` for tests, retry settings) and to the Azure Monitor client. `metrics` defaults
        to Azure Monitor; `sleep` and `clock` are what canary pauses and analyses wait with."""
        self.project = project
        self.root = project.root
        self.credential = credential
        self.timeout = timeout
        self.client_options = client_options
        self.analysis_wait = analysis_wait
        self.job_wait = job_wait
        self._sleep = sleep
        self._clock = clock or (lambda: datetime.now(UTC))
        self._metrics = metrics
        self._client: MLClient | None = None
        self._registry_clients: dict[str, MLClient] = {}
        # Why pipelines run in this apply: `specops retrain`, the retrain workflow and monitors set it.
        self.trigger_reason = os.environ.get(TRIGGER_VARIABLE) or "apply"
        self._asked_at = self._clock()
        # Rendering builds many SDK objects (slow): done once per loaded SpecSet and kept for observe and apply.
        self._rendered_for: SpecSet | None = None
        self._entities: dict[str, Rendered] = {}
        self._desired: list[Resource] = []
        self._first_versions: dict[str, str] = {}  # model with no version in the workspace -> the pipeline registering it

    @classmethod
    def from_project(cls, project: Session) -> AzureMLBackend:
        return cls(project)

    # -- desired ---------------------------------------------------------------
    def desired(self, specs: SpecSet) -> list[Resource]:
        if self._rendered_for is not specs:
            self._render(specs)
        return list(self._desired)

    def _render(self, specs: SpecSet) -> None:
        project = specs.project.key
        resources = [Resource(d.kind, d.name, {"spec": d.spec.model_dump(mode="json")}, () if d is specs.project else (project,))
                     for d in specs.documents if isinstance(d, RECORDS)]
        rendered = render_entities(specs, read_project_files(specs.root), self.trigger_reason, self.alias_versions(specs))
        self._entities = {r.key: r for r in rendered if r.kind not in NOT_APPLIED}
        self._first_versions = self._unregistered_models(specs)
        for r in self._entities.values():
            resources.extend(self._resources(r, project))
        resources += self._shared_champions(specs, project)
        self._desired, self._rendered_for = resources, specs

    def _shared_champions(self, specs: SpecSet, project: str) -> list[Resource]:
        """In an environment others are promoted from: each model's champion, in each registry they take it from
        (a promotion shares the new champion at once; this keeps the first version, and a new registry, in step)."""
        registries = specs.project.spec.promoted_from(specs.env)
        if not registries:
            return []
        shared = []
        for model in sorted({p.spec.model_name for p in specs.of_kind(Pipeline)}):
            champion = self._tagged_versions(specs, model).get(CHAMPION)
            if champion is not None:
                shared += [Resource("RegistryModel", f"{model}@{registry}", {"registry": registry, "version": champion},
                                    (project,)) for registry in sorted(set(registries.values()))]
        return shared

    def _resources(self, r: Rendered, project: str) -> list[Resource]:
        fields = entity_dict(r, self.root)
        # The Project first, as on the local backend: plans read top-down from the workspace's owner.
        deps = (project, *(d for d in r.depends_on if not d.startswith(NOT_APPLIED)))
        if r.kind == "JobSchedule":
            r.entity.tags = {**(r.entity.tags or {}), JOB_DIGEST: short_hash(fields["create_job"])}
            fields = entity_dict(r, self.root)
        if r.kind == "PipelineJob":
            fields["name"] = job_name(r.name, fields, self.trigger_reason, self._asked_at)
        if r.kind in DEPLOYMENTS and deployed_model(r.entity) in self._first_versions:
            deps = (*deps, f"PipelineJob/{self._first_versions[deployed_model(r.entity)]}")  # its first version
        if r.kind == "OnlineEndpoint":
            traffic = {k: live_weights(fields.pop(k, {})) for k in TRAFFIC_FIELDS}
            deployments = tuple(f"OnlineDeployment/{r.name}.{name}" for name in self._deployments_of(r.name, "OnlineDeployment"))
            return [Resource(r.kind, r.name, fields, deps), Resource("OnlineTraffic", r.name, traffic, deployments)]
        if r.kind == "BatchEndpoint":
            defaults = {"defaults": fields.pop("defaults")}
            deployments = tuple(f"BatchDeployment/{r.name}.{name}" for name in self._deployments_of(r.name, "BatchDeployment"))
            return [Resource(r.kind, r.name, fields, deps), Resource("BatchDefaults", r.name, defaults, deployments)]
        return [Resource(r.kind, r.name, fields, deps)]

    def alias_versions(self, specs: SpecSet) -> dict[str, dict[str, str]]:
        """endpoint (a batch endpoint by its key) -> deployment -> the version its `model@alias` stands for now:
        the newest version of the model holding the `specops.alias.<alias>` tag (Azure ML has no aliases; the register
        step and promotions set the tags). Resolved at plan time, so the plan shows `model: azureml:credit-risk:3 -> azureml:credit-risk:4`
        and what apply deploys is the version the plan showed. An alias on no version renders as `@latest`."""
        wanted = [(e.name, d.name, d.model_ref) for e in specs.of_kind(Endpoint) for d in e.spec.deployments if d.model_ref.alias]
        # Batch endpoints by their document key: an online and a batch endpoint may share a name.
        wanted += [(b.key, d.name, d.model_ref) for b in specs.of_kind(BatchEndpoint) for d in b.spec.deployments
                   if d.model_ref.alias]
        resolve = self._promoted_versions if promotion_registry(specs) else self._tagged_versions
        tagged = {name: resolve(specs, name) for name in sorted({ref.name for _, _, ref in wanted})}
        versions: dict[str, dict[str, str]] = {}
        for endpoint, deployment, ref in wanted:
            version = tagged[ref.name].get(str(ref.alias), tagged[ref.name].get(NEWEST))
            if version is not None:
                versions.setdefault(endpoint, {})[deployment] = version
        return versions

    def _tagged_versions(self, specs: SpecSet, model: str) -> dict[str, str]:
        """alias -> the newest version of `model` tagged with it."""
        return tagged_aliases((str(v.version), v.tags or {}) for v in self._model_versions(specs, model))

    def _promoted_versions(self, specs: SpecSet, model: str) -> dict[str, str]:
        """In an environment promoted from another: `@champion` is the version its own rollouts last promoted
        (kept in its state; the first time, the newest), every other alias the newest the source shared."""
        promotion = specs.project.spec.environments[specs.env].promotion
        assert promotion is not None
        shared = [str(v.version) for v in self._registry_versions(specs, promotion.registry, model)]
        if not shared:
            raise SpecopsError(f"{specs.project.key}: {specs.env} serves the versions {promotion.source} promotes, and "
                               f"registry {promotion.registry} holds no version of {model} yet: apply "
                               f"{promotion.source} first (its champion is shared into the registry)")
        newest = max(shared, key=version_order)
        champion = self.project.state.champion(model)
        return {CHAMPION: champion if champion in shared else newest, NEWEST: newest}

    def registry_client(self, specs: SpecSet, registry: str) -> MLClient:
        """An MLClient on an Azure ML registry (discovery finds its region, subscription and resource group)."""
        if registry not in self._registry_clients:
            from azure.ai.ml import MLClient
            from azure.core.exceptions import ResourceNotFoundError

            target = self._target(specs)
            try:  # the client looks the registry up (its discovery call) as it is made
                self._registry_clients[registry] = self.call("Registry", registry, lambda: MLClient(
                    self._credential(), target["subscription_id"], target["resource_group"], registry_name=registry,
                    **self.client_options))
            except ResourceNotFoundError:
                raise SpecopsError(f"{specs.project.key}: Azure ML registry {registry!r} not found (the promotion.registry "
                                   "of an environment promoted from another): create it (infra: mlRegistryName / "
                                   "ml_registry_name) or correct the name") from None
        return self._registry_clients[registry]

    def _registry_versions(self, specs: SpecSet, registry: str, model: str) -> list[Any]:
        from azure.core.exceptions import ResourceNotFoundError

        models = self.registry_client(specs, registry).models
        try:
            return self.call("Registry", registry, lambda: list(models.list(name=model)))
        except ResourceNotFoundError:
            return []

    def share(self, specs: SpecSet, model: str, version: str, report: Reporter, only: str | None = None) -> None:
        """Copy `model` `version` from this workspace into each registry an environment promoted from this one
        takes its versions from, unless it is there already."""
        for target, registry in specs.project.spec.promoted_from(specs.env).items():
            if only not in (None, registry) or any(str(v.version) == version
                                                   for v in self._registry_versions(specs, registry, model)):
                continue
            self._share_into(specs, registry, model, version)
            report(f"RegistryModel/{model}: v{version} shared into registry {registry} for {target}")

    def withdraw_newer(self, specs: SpecSet, model: str, champion: str, report: Reporter) -> None:
        """The champion went back to an older version (a promotion undone): the versions after it are archived in
        each registry, so environments promoted from this one stop taking them (a registry lists active versions)."""
        for target, registry in specs.project.spec.promoted_from(specs.env).items():
            newer = [str(v.version) for v in self._registry_versions(specs, registry, model)
                     if version_order(str(v.version)) > version_order(champion)]
            for version in newer:
                self._archive(specs, registry, model, version)
                report(f"RegistryModel/{model}: v{version} withdrawn from registry {registry} ({specs.env}'s "
                       f"champion is v{champion} again; {target} stops taking it)")

    def _archive(self, specs: SpecSet, registry: str, model: str, version: str) -> None:
        models = self.registry_client(specs, registry).models
        self.call("Registry", registry, lambda: models.archive(model, version=version))

    def _share_into(self, specs: SpecSet, registry: str, model: str, version: str) -> None:
        """The SDK's `models.share`, on the registry client this backend configured (share builds its own)."""
        from azure.ai.ml.entities._assets.workspace_asset_reference import WorkspaceAssetReference

        client = self.client(specs)
        workspace = self.call("Workspace", str(client.workspace_name), lambda: client.workspaces.get(client.workspace_name))
        source = f"azureml://locations/{workspace.location}/workspaces/{workspace._workspace_id}/models/{model}/versions/{version}"
        reference = WorkspaceAssetReference(name=model, version=version, asset_id=source)
        models = self.registry_client(specs, registry).models
        self.call("Registry", registry, lambda: models.create_or_update(reference))

    def _model_versions(self, specs: SpecSet, model: str) -> list[Any]:
        from azure.core.exceptions import ResourceNotFoundError

        client = self.client(specs)
        try:
            return self.call("Model", model, lambda: list(client.models.list(name=model)))
        except ResourceNotFoundError:
            return []

    def _unregistered_models(self, specs: SpecSet) -> dict[str, str]:
        """Deployed models with no version in the workspace yet (a fresh workspace), each with the pipeline that
        registers it: its job runs first, and apply waits for that first version before creating the deployments."""
        deployed = {deployed_model(r.entity) for r in self._entities.values() if r.kind in DEPLOYMENTS}
        registering = {p.spec.model_name: p.name for p in specs.of_kind(Pipeline)
                       if f"PipelineJob/{p.name}" in self._entities}
        return {model: registering[model] for model in sorted(deployed & set(registering))
                if not self._model_versions(specs, model)}

    def _deployments_of(self, endpoint: str, kind: str) -> list[str]:
        return [r.entity.name for r in self._entities.values() if r.kind == kind and r.entity.endpoint_name == endpoint]

    def notes(self, specs: SpecSet) -> list[str]:
        self.desired(specs)
        waiting = [f"model {model} has no version in the workspace yet: apply submits PipelineJob/{pipeline} first and "
                   f"waits for it to register one before creating the deployments that serve it"
                   for model, pipeline in self._first_versions.items()]
        return [*azureml_notes(specs), *waiting]  # every local-only feature is the renderer's to say

    def causes(self) -> dict[str, tuple[Cause, ...]]:
        return {}  # Azure ML observes no pipeline outputs: a spec's own diff is the whole story

    def records_only(self, op: Operation) -> bool:
        if op.kind in RECORD_KINDS:
            return True
        return op.action is Action.DELETE and op.kind in KEPT_ON_DELETE

    # -- observe ---------------------------------------------------------------
    def observe(self, specs: SpecSet, stored: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        wanted = {r.key: r for r in self.desired(specs)}
        actual: dict[str, dict[str, Any]] = {}
        for key in sorted(set(wanted) | set(stored)):
            kind, name = key.split("/", 1)
            if kind in RECORD_KINDS:
                if key in stored:
                    actual[key] = stored[key]
                continue
            desired = wanted[key].fields if key in wanted else stored[key]
            found = self._get(specs, kind, name, desired)
            if found is not None:
                actual[key] = project(found, desired)
            elif kind == "PipelineJob" and key in stored:
                actual[key] = stored[key]  # an earlier run of a since-changed pipeline: plan an update (a new run)
        return actual

    def _get(self, specs: SpecSet, kind: str, name: str, desired: dict[str, Any]) -> dict[str, Any] | None:
        from azure.core.exceptions import ResourceNotFoundError

        if kind == "RegistryModel":
            return self._registry_model(specs, name, desired)
        client = self.client(specs)
        endpoint, _, deployment = name.partition(".")
        getters: dict[str, Callable[[], Any]] = {
            "Environment": lambda: client.environments.get(name, version=desired.get("version")),
            "Data": lambda: client.data.get(name, version=desired.get("version")),
            "PipelineJob": lambda: client.jobs.get(desired["name"]),
            "JobSchedule": lambda: client.schedules.get(name),
            "MonitorSchedule": lambda: client.schedules.get(name),
            "OnlineEndpoint": lambda: client.online_endpoints.get(name),
            "OnlineTraffic": lambda: client.online_endpoints.get(name),
            "OnlineDeployment": lambda: client.online_deployments.get(deployment, endpoint_name=endpoint),
            "BatchEndpoint": lambda: client.batch_endpoints.get(name),
            "BatchDefaults": lambda: client.batch_endpoints.get(name),
            "BatchDeployment": lambda: client.batch_deployments.get(deployment, endpoint_name=endpoint),
        }
        try:
            entity = self.call(kind, name, getters[kind])
        except ResourceNotFoundError:
            return None
        if kind == "PipelineJob":
            return desired  # its name is a digest of its content: found means unchanged
        found = normalize(json.loads(json.dumps(entity._to_dict(), default=str)))
        if kind == "JobSchedule":
            _same_job(found, desired)
        if kind == "OnlineTraffic":
            found.update({k: live_weights(found.get(k) or {}) for k in TRAFFIC_FIELDS})
        if kind == "BatchDeployment":
            _model_batch_shape(found, desired)
        if kind in ("OnlineDeployment", "BatchDeployment"):
            self._same_model(specs, found, desired)
            _same_code(found, desired)
        if kind == "OnlineDeployment":
            _instance_type_kept(name, found, desired)
        return found

    def _registry_model(self, specs: SpecSet, name: str, desired: dict[str, Any]) -> dict[str, Any] | None:
        """The champion as the registry holds it: the version asked for when shared, else the newest there."""
        model = name.rpartition("@")[0]
        shared = sorted((str(v.version) for v in self._registry_versions(specs, desired["registry"], model)), key=version_order)
        if not shared:
            return None
        return {"registry": desired["registry"], "version": desired["version"] if desired["version"] in shared else shared[-1]}

    def _same_model(self, specs: SpecSet, found: dict[str, Any], desired: dict[str, Any]) -> None:
        """A `name@latest` deployment is unchanged while it serves the latest version."""
        name, _, label = str(desired.get("model", "")).removeprefix("azureml:").partition("@")
        if not label:
            return
        client = self.client(specs)
        latest = self.call("Model", name, lambda: client.models.get(name, label=label))
        if found.get("model") == f"azureml:{name}:{latest.version}":
            found["model"] = desired["model"]

    # -- apply -----------------------------------------------------------------
    def apply(self, op: Operation, specs: SpecSet, report: Reporter) -> dict[str, Any]:
        if self.records_only(op):
            if op.action is Action.DELETE:
                report(f"{op.key}: kept in the workspace (Azure ML keeps asset versions and job history)")
            return {}
        if op.action is Action.DELETE:
            return self._delete(op, specs, report)
        if self._rendered_for is not specs:
            self._render(specs)
        if op.kind == "OnlineTraffic":
            return self._shift_traffic(op, specs, report)
        if op.kind == "BatchDefaults":
            return self._set_batch_default(op, specs)
        if op.kind == "RegistryModel":
            self.share(specs, op.name.rpartition("@")[0], op.desired["version"], report, only=op.desired["registry"])
            return {}
        if op.kind in DEPLOYMENTS:
            self._await_first_version(specs, deployed_model(self._entities[op.key].entity), report)
        result = self._create_or_update(op, specs, report)
        if op.kind in DEPLOYMENTS and promotion_registry(specs):
            self._first_champion(specs, self._entities[op.key].entity)
        if op.kind == "OnlineDeployment" and op.action is Action.UPDATE:
            result.update(self._challenger_rollout(op, specs, report))
        return result

    def _create_or_update(self, op: Operation, specs: SpecSet, report: Reporter) -> dict[str, Any]:
        client = self.client(specs)
        entity = self._entities[op.key].entity  # rendered for this apply's specs: changing it here is safe
        if op.kind == "OnlineEndpoint":
            entity = self._endpoint_update(op, specs, entity)
        if op.kind == "BatchEndpoint":
            entity.defaults = None
        if op.kind == "PipelineJob":
            entity.name = op.desired["name"]
            job = self.call(op.kind, op.name, lambda: client.jobs.create_or_update(entity))
            return {"job": job.name}
        if op.kind == "Data" and op.name.endswith(REFERENCE):  # the MLTable file beside the Dataset's file
            dataset = specs.require(Dataset, op.name.removesuffix(REFERENCE))
            report(f"{op.key}: {upload_beside(client, self.call, specs, dataset, entity.path + 'MLTable', mltable_text(dataset))}")
        elif op.kind == "Data":  # the file first: the asset must never point at an empty path
            report(f"{op.key}: {upload_dataset(client, self.call, specs, specs.require(Dataset, op.name), entity.path)}")
        create = {
            "Environment": client.environments.create_or_update,
            "Data": client.data.create_or_update,
        }.get(op.kind)
        if create is not None:
            result = self.call(op.kind, op.name, lambda: create(entity))
            return {"version": result.version}
        begin = {
            "JobSchedule": client.schedules.begin_create_or_update,
            "MonitorSchedule": client.schedules.begin_create_or_update,
            "OnlineEndpoint": client.online_endpoints.begin_create_or_update,
            "OnlineDeployment": client.online_deployments.begin_create_or_update,
            "BatchEndpoint": client.batch_endpoints.begin_create_or_update,
            "BatchDeployment": client.batch_deployments.begin_create_or_update,
        }[op.kind]
        self._wait(op.kind, op.name, lambda: begin(entity))
        return {}

    def _first_champion(self, specs: SpecSet, deployment: Any) -> None:
        """In a promoted environment, the version first deployed as `@champion` is its champion until a rollout
        there promotes another (the state keeps it: a registry has no tags specops moves)."""
        model = deployed_model(deployment)
        if self.project.state.champion(model) is not None:
            return
        endpoints: list[Endpoint | BatchEndpoint] = [*specs.of_kind(Endpoint), *specs.of_kind(BatchEndpoint)]
        aliases = [d.model_ref.alias for e in endpoints if e.name == deployment.endpoint_name
                   for d in e.spec.deployments if d.name == deployment.name]
        if aliases and aliases[0] == CHAMPION:
            self.project.state.set_champion(model, str(model_version(deployment.model)))

    def _await_first_version(self, specs: SpecSet, model: str, report: Reporter) -> None:
        """Wait for the pipeline job that registers `model`'s first version (submitted earlier in this apply)."""
        pipeline = self._first_versions.get(model)
        if pipeline is None:
            return
        job_key = f"PipelineJob/{pipeline}"
        job = next(r.fields["name"] for r in self._desired if r.key == job_key)
        client = self.client(specs)
        report(f"{job_key}: waiting for job {job} to register the first version of {model}")
        deadline = self._clock() + timedelta(seconds=self.job_wait)
        status = self._job_status(client, pipeline, job)
        while status not in JOB_ENDED:
            if self._clock() >= deadline:
                raise SpecopsError(f"{job_key}: job {job} is still {status} after {self.job_wait:g}s, so {model} has no "
                                   "version to deploy yet; apply again once it has finished")
            self._sleep(JOB_POLL)
            status = self._job_status(client, pipeline, job)
        if status != "Completed":
            raise SpecopsError(f"{job_key}: job {job} ended {status}, so {model} has no version to deploy; "
                               "see the job in Azure ML studio, fix it and apply again")
        registered = [int(v.version) for v in self._model_versions(specs, model)]
        if not registered:
            raise SpecopsError(f"{job_key}: job {job} completed without registering {model} (did its gate refuse the "
                               "candidate? see gate.json in the job's outputs)")
        report(f"{job_key}: {model} v{max(registered)} registered")
        del self._first_versions[model]
        champion = self._tagged_versions(specs, model).get(CHAMPION)
        if champion is not None:  # the first champion goes to the environments promoted from this one at once
            self.share(specs, model, champion, report)

    # -- what the controller asks of the workspace ------------------------------------------
    def submit_retraining(self, specs: SpecSet, pipeline: str, reason: str) -> str:
        """A new run of `pipeline`'s job, named for `reason` and when it was asked for (what the retrain workflow's
        apply submits); returns the job's name. The run registers a challenger; the next apply rolls it out."""
        rendered = Rendered("PipelineJob", pipeline, render_pipeline_job(specs, specs.require(Pipeline, pipeline),
                                                                         read_project_files(specs.root), reason), "")
        rendered.entity.name = job_name(pipeline, entity_dict(rendered, self.root), reason, self._clock())
        client = self.client(specs)
        return str(self.call("PipelineJob", pipeline, lambda: client.jobs.create_or_update(rendered.entity)).name)

    def job_status(self, specs: SpecSet, pipeline: str, job: str) -> str:
        """The job's status; `NotFound` for a job the workspace no longer has."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self._job_status(self.client(specs), pipeline, job)
        except ResourceNotFoundError:
            return "NotFound"

    def monitor_runs(self, specs: SpecSet, monitor: str) -> list[MonitorRun]:
        """The runs the workspace made of a Monitor's schedule, each with the signals it found breached
        (Azure ML tags such a run `azureml_modelmonitor_threshold_breached`, naming the signal)."""
        client = self.client(specs)
        jobs = self.call("MonitorSchedule", monitor, lambda: list(client.jobs.list(schedule_defined=True,
                                                                                    scheduled_job_name=monitor)))
        runs = []
        for job in jobs:
            message = str((job.tags or {}).get(BREACHED_TAG, ""))
            breached = tuple(field for field, name in SIGNAL_NAMES.items() if f"'{name}'" in message)
            created = getattr(job.creation_context, "created_at", None)
            runs.append(MonitorRun(str(job.name), created if isinstance(created, datetime) else None, breached, message))
        return runs

    def _job_status(self, client: MLClient, pipeline: str, job: str) -> str:
        status = self.call("PipelineJob", pipeline, lambda: client.jobs.get(job)).status
        return str(getattr(status, "value", status))  # the SDK's JobStatus enum, or the service's string

    def _endpoint_update(self, op: Operation, specs: SpecSet, rendered: Any) -> Any:
        """The endpoint to send: on create, the rendered one without traffic (its deployments come after);
        on update, the live one with the spec's fields set on it (the SDK's get, modify, create_or_update),
        so the traffic its deployments take now is kept."""
        if op.action is Action.CREATE:
            rendered.traffic, rendered.mirror_traffic = {}, {}
            return rendered
        client = self.client(specs)
        live = self.call(op.kind, op.name, lambda: client.online_endpoints.get(op.name))
        for field in ENDPOINT_FIELDS:
            setattr(live, field, getattr(rendered, field))
        return live

    def _shift_traffic(self, op: Operation, specs: SpecSet, report: Reporter) -> dict[str, Any]:
        """The declared traffic: through the endpoint's canary rollout when one deployment new to live traffic
        gains it (walked by the rollout engine every backend shares), at once otherwise."""
        target = op.desired
        endpoint = specs.get(Endpoint, op.name)
        before = self._before(op)
        if endpoint is not None and isinstance(endpoint.spec.rollout, CanaryRollout):
            record = self.project.state.rollout(op.name)
            if record is not None and record.status in ACTIVE:
                report(f"{op.key}: resuming the canary rollout {record.stable} -> {record.canary}")
                record = self._walk(op.key, op.name, before, lambda engine: engine.resume(), report)
                return self._walked(op.key, record, target["mirror_traffic"])
            canary = canary_of(before, target["traffic"], endpoint)
            if canary is not None:
                stable = max(before, key=before.__getitem__)
                report(f"{op.key}: canary rollout {stable} -> {canary}")

                def start_and_run(engine: Rollout) -> RolloutRecord:
                    engine.start(canary, stable, target["traffic"])
                    return engine.run()

                record = self._walk(op.key, op.name, before, start_and_run, report)
                return self._walked(op.key, record, target["mirror_traffic"])
        report(f"{op.key}: traffic {target['traffic']}")
        self.set_traffic(specs, op.name, target["traffic"], target["mirror_traffic"])
        return {"traffic": target["traffic"]}

    def _challenger_rollout(self, op: Operation, specs: SpecSet, report: Reporter) -> dict[str, Any]:
        """The champion/challenger loop: a deployment whose `model@alias` now stands for a new version (a retraining
        registered a challenger) while it takes no live traffic is rolled out as a canary from the deployment taking
        the most, by the endpoint's canary rollout (the engine both backends share). Promoted, the champion tag
        moves to the new version, the deployments whose alias now stands for it follow, and the spec's traffic
        applies again, as on the local backend. Rolled back, apply fails with the incident."""
        endpoint_name, _, deployment = op.name.partition(".")
        endpoint = specs.get(Endpoint, endpoint_name)
        declared = endpoint.spec.deployment(deployment) if endpoint is not None else None
        was, now = str((op.before or {}).get("model") or ""), str(op.desired.get("model") or "")
        if (endpoint is None or declared is None or declared.model_ref.alias is None or not was or was == now
                or not isinstance(endpoint.spec.rollout, CanaryRollout)):
            return {}
        live = AzureRouter(self, specs, endpoint_name).traffic()
        if not live or live.get(deployment):
            return {}  # the first deployment, or one already serving: the traffic's own update decides
        stable = max(live, key=live.__getitem__)
        report(f"{op.key}: {declared.model} v{model_version(was)} -> v{model_version(now)}: "
               f"canary rollout {stable} -> {deployment}")

        def start_and_run(engine: Rollout) -> RolloutRecord:
            engine.start(deployment, stable)
            return engine.run()

        key = f"OnlineTraffic/{endpoint_name}"
        record = self._walk(key, endpoint_name, live, start_and_run, report)
        self._walked(key, record, None)
        if record.status == HEALTHY:
            self._settle(specs, endpoint, report)
        return {"rollout": record.status}

    def _settle(self, specs: SpecSet, endpoint: Endpoint, report: Reporter) -> None:
        """After a promotion: each deployment whose alias now stands for another version is updated to it (the
        promotion moved `champion`), then the spec's traffic applies. Until then all traffic stays on the promoted
        deployment, so no request meets the old model."""
        client = self.client(specs)
        versions = self.alias_versions(specs).get(endpoint.name, {})
        for rendered in render_online_deployments(specs, endpoint, read_project_files(specs.root), versions):
            self._follow_alias(client, endpoint.name, rendered, report)
        traffic, mirror = live_weights(dict(endpoint.spec.traffic)), dict(endpoint.spec.mirror_traffic)
        self.set_traffic(specs, endpoint.name, traffic, mirror)
        report(f"OnlineTraffic/{endpoint.name}: traffic {traffic}")
        record = self.project.state.rollout(endpoint.name)
        if record is not None and record.status == HEALTHY:  # the record shows where traffic now is
            served = AzureRouter(self, specs, endpoint.name).versions()
            record.stable = max(traffic, key=traffic.__getitem__)
            record.stable_version, record.weights = served.get(record.stable), traffic
            record.log("settled", traffic=traffic, versions=served)
            self.project.state.save_rollout(record)

    def _follow_alias(self, client: MLClient, endpoint: str, rendered: Any, report: Reporter) -> None:
        """Update a deployment to the version its alias stands for now, if it serves another."""
        live = self.call("OnlineDeployment", rendered.name, lambda: client.online_deployments.get(rendered.name, endpoint_name=endpoint))
        if _short_reference(str(live.model)) != str(rendered.model):
            report(f"OnlineDeployment/{endpoint}.{rendered.name}: now serves {rendered.model}")
            self._wait("OnlineDeployment", rendered.name, lambda: client.online_deployments.begin_create_or_update(rendered))

    def _walk(self, key: str, endpoint: str, before: dict[str, int], drive: Callable[[Rollout], RolloutRecord],
              report: Reporter) -> RolloutRecord:
        """Drive the rollout; whatever stops it short of a decision (an error from Azure, metrics that cannot be
        read) aborts it, so a canary half rolled out is never left serving unwatched."""
        engine = Rollout(self.project, endpoint, ports=self.rollout_ports(endpoint, report), sleep=self._sleep,
                         clock=lambda: self._clock().timestamp())
        try:
            record = drive(engine)
        except SpecopsError as exc:
            report(f"{key}: rolling back ({exc})")
            try:
                record = engine.abort(trigger=str(exc))
            except SpecopsError as rollback_error:
                raise SpecopsError(f"{exc}; ROLLBACK FAILED, the canary may still take traffic "
                                   f"(set {before} by hand): {rollback_error}") from rollback_error
        for event in record.history:
            if event["event"] in ("weight", "analysis", "skipped", "target reached", "paused", "promoted", "rolled back"):
                detail = ", ".join(f"{k}={v}" for k, v in event.items() if k not in ("time", "event"))
                report(f"{key}: {event['event']} {detail}")
        if record.status == DEGRADED:
            failed = record.analyses[-1] if record.analyses and record.analyses[-1]["phase"] == FAILED else None
            why = f": {_summary(failed, FAILED)}" if failed else ""
            raise SpecopsError(f"{key}: {record.message}{why}; rolled back: all traffic on {record.weights} again "
                               f"(incident {record.incident}), and the plan still shows the change")
        if record.status != HEALTHY:
            report(f"{key}: rollout {record.status}: {record.message}")
        return record

    def _walked(self, key: str, record: RolloutRecord, mirror: dict[str, int] | None) -> dict[str, Any]:
        """The traffic a walk left; the spec's shadows set when they differ from those the rollout kept."""
        if record.status == HEALTHY and mirror is not None and record.mirror != mirror:
            self.set_traffic(self.project.specs, record.endpoint, record.weights, mirror)
        return {"traffic": record.weights}

    def _before(self, op: Operation) -> dict[str, int]:
        return dict((op.before or {}).get("traffic") or {})

    def rollout_ports(self, endpoint: str, report: Reporter = quiet) -> RolloutPorts:
        specs = self.project.specs
        metrics = AzureLiveMetrics(self.metrics(specs), endpoint, self._clock, self._sleep)
        return RolloutPorts(router=AzureRouter(self, specs, endpoint, report), metrics=metrics, where=self.name,
                            max_wait_s=self.analysis_wait)

    def set_traffic(self, specs: SpecSet, name: str, traffic: dict[str, int], mirror: dict[str, int]) -> None:
        """The endpoint's live weights, the SDK's way: get the endpoint, set its traffic, send it back."""
        client = self.client(specs)
        endpoint = self.call("OnlineTraffic", name, lambda: client.online_endpoints.get(name))
        endpoint.traffic, endpoint.mirror_traffic = traffic, mirror
        self._wait("OnlineTraffic", name, lambda: client.online_endpoints.begin_create_or_update(endpoint))

    def _set_batch_default(self, op: Operation, specs: SpecSet) -> dict[str, Any]:
        client = self.client(specs)
        endpoint = self.call(op.kind, op.name, lambda: client.batch_endpoints.get(op.name))
        endpoint.defaults = op.desired["defaults"]
        self._wait(op.kind, op.name, lambda: client.batch_endpoints.begin_create_or_update(endpoint))
        return {}

    def _delete(self, op: Operation, specs: SpecSet, report: Reporter) -> dict[str, Any]:
        client = self.client(specs)
        endpoint, _, deployment = op.name.partition(".")
        begin = {
            "JobSchedule": lambda: client.schedules.begin_delete(op.name),
            "MonitorSchedule": lambda: client.schedules.begin_delete(op.name),
            "OnlineEndpoint": lambda: client.online_endpoints.begin_delete(op.name),
            "OnlineDeployment": lambda: client.online_deployments.begin_delete(deployment, endpoint_name=endpoint),
            "BatchEndpoint": lambda: client.batch_endpoints.begin_delete(op.name),
            "BatchDeployment": lambda: client.batch_deployments.begin_delete(deployment, endpoint_name=endpoint),
        }.get(op.kind)
        if begin is None:  # traffic and batch defaults go with their endpoint
            report(f"{op.key}: removed with its endpoint")
            return {}
        self._wait(op.kind, op.name, begin)
        return {}

    # -- the client and its calls ----------------------------------------------------
    def client(self, specs: SpecSet) -> MLClient:
        if self._client is None:
            from azure.ai.ml import MLClient

            target = self._target(specs)
            self._client = MLClient(self._credential(), target["subscription_id"], target["resource_group"],
                                    target["workspace"], **self.client_options)
        return self._client

    def metrics(self, specs: SpecSet) -> EndpointMetrics:
        """Azure Monitor, with MLClient's credential, transport and retry settings."""
        if self._metrics is None:
            target = self._target(specs)
            options = {k: v for k, v in self.client_options.items() if k == "transport" or k.startswith("retry_")}
            self._metrics = AzureMonitorMetrics(
                self._credential(), workspace_id(target["subscription_id"], target["resource_group"], target["workspace"]),
                **options)
        return self._metrics

    def _target(self, specs: SpecSet) -> dict[str, str]:
        environment = specs.project.spec.environments[specs.env]
        if environment.target is None:
            raise SpecopsError(f"Project/{specs.project.name}: spec.environments.{specs.env}.target is required "
                               "for the azureml backend")
        return resolve(environment.target.model_dump())  # here only: plans and state keep the ${VAR}s

    def _credential(self):
        if self.credential is None:
            # Federated credentials that fetch a fresh CI token when needed, so long applies keep signing in.
            self.credential = azure_credential()
        return self.credential

    def call(self, kind: str, name: str, call: Callable[[], Any]) -> Any:
        """Run one SDK call; Azure's errors become messages naming the resource."""
        from azure.core.exceptions import (
            ClientAuthenticationError, HttpResponseError, ResourceExistsError, ResourceNotFoundError,
        )

        try:
            return call()
        except ResourceNotFoundError:
            raise
        except ClientAuthenticationError:
            raise SpecopsError(
                "could not sign in to Azure: no credential found. In CI, log in with OIDC (azure/login); "
                "on a workstation, run `az login` (see docs/ci-cd.md)"
            ) from None
        except ResourceExistsError as exc:
            raise SpecopsError(f"{kind}/{name}: Azure ML refused the change (409 conflict): {exc.message}. Asset "
                               "versions are immutable; change the spec so it renders a new version") from exc
        except HttpResponseError as exc:
            raise SpecopsError(f"{kind}/{name}: Azure ML answered {exc.status_code}: {exc.message}") from exc

    def _wait(self, kind: str, name: str, begin: Callable[[], Any]) -> Any:
        poller = self.call(kind, name, begin)
        result = self.call(kind, name, lambda: poller.result(timeout=self.timeout))
        if not poller.done():
            raise SpecopsError(f"{kind}/{name}: still running after {self.timeout:g}s; apply again to converge")
        return result


def job_name(pipeline: str, fields: dict[str, Any], reason: str, asked_at: datetime) -> str:
    """A job is a run, not a resource: its name is its content, so an unchanged pipeline is not re-run; a
    retraining is a new run whatever the content, named for its reason and when it was asked for."""
    name = f"{pipeline}-{short_hash(fields)}"
    return name if reason == "apply" else f"{name}-{slug(reason)}-{asked_at:%Y%m%d%H%M%S}"


def version_order(version: str) -> tuple[int, int, str]:
    """Model versions in order: numbers as numbers (Azure ML's own versions), any other label after them."""
    return (0, int(version), "") if version.isdigit() else (1, 0, version)


def deployed_model(deployment: Any) -> str:
    """The model name a rendered deployment serves (`azureml:credit-risk@latest`, `azureml:credit-risk:3`,
    `azureml://registries/<registry>/models/credit-risk/versions/3`)."""
    registered = re.search(r"/models/([^/]+)/", str(deployment.model))
    if registered is not None:
        return registered[1]
    return re.split(r"[@:]", str(deployment.model).removeprefix("azureml:"), maxsplit=1)[0]


def live_weights(weights: dict[str, int]) -> dict[str, int]:
    """Traffic without its zero weights: the service lists every deployment, serving or not."""
    return {name: weight for name, weight in weights.items() if weight}


def _model_batch_shape(found: dict[str, Any], desired: dict[str, Any]) -> None:
    """`batch_deployments.get` returns the generic BatchDeployment, its settings at the top level;
    specops renders a ModelBatchDeployment (type: model, settings: {...})."""
    if found.get("model"):
        found["type"] = "model"
    found["settings"] = {key: found[key] for key in desired.get("settings", {}) if key in found}
    if "environment_variables" in desired and not desired["environment_variables"]:
        found["environment_variables"] = desired["environment_variables"]  # rendered in settings: compared there


def _instance_type_kept(name: str, found: dict[str, Any], desired: dict[str, Any]) -> None:
    """Azure ML refuses to change an existing online deployment's instance type: say so at plan time,
    before anything is applied, with the way to do it."""
    live, wanted = found.get("instance_type"), desired.get("instance_type")
    if live and wanted and str(live).lower() != str(wanted).lower():
        endpoint, _, deployment = name.partition(".")
        raise SpecopsError(
            f"Endpoint/{endpoint}: deployment {deployment} runs on {live}, and Azure ML cannot change the instance "
            f"type of an existing deployment (the spec asks for {wanted}). Add a deployment on {wanted} beside it "
            f"and move the traffic to it (the rollout walks it), then remove {deployment}")


def _same_code(found: dict[str, Any], desired: dict[str, Any]) -> None:
    """The service returns a deployment's code as the id of the snapshot it stored (named by a hash of its
    content): the same scoring script there is taken as unchanged. What the script serves (feature set, Dataset,
    checks) is in the deployment's SPECOPS_SERVING variable, compared as usual; a new specops alone does not
    redeploy (documented in docs/azureml.md)."""
    live, wanted = found.get("code_configuration") or {}, desired.get("code_configuration") or {}
    if live.get("scoring_script") == wanted.get("scoring_script") and "code" in wanted:
        found["code_configuration"] = {**live, "code": wanted["code"]}


def _same_job(found: dict[str, Any], desired: dict[str, Any]) -> None:
    """The service returns a schedule's job with ids for components, data and compute; the digest tag says
    whether it is the job specops sent."""
    if found.get("tags", {}).get(JOB_DIGEST) == desired["tags"][JOB_DIGEST]:
        found["create_job"] = desired["create_job"]


def canary_of(current: dict[str, int], target: dict[str, int], endpoint: Endpoint | None) -> str | None:
    """The deployment a canary rollout brings in: the only one gaining weight, with none before.

    Any other change, a rollback to a deployment already serving included, is no rollout.
    """
    rollout = endpoint.spec.rollout if endpoint is not None else None
    gaining = [name for name, weight in target.items() if weight > current.get(name, 0)]
    if not isinstance(rollout, CanaryRollout) or not current or len(gaining) != 1 or current.get(gaining[0], 0):
        return None
    return gaining[0]


def _summary(result: dict[str, Any], phase: str | None = None) -> str:
    """The checks of `phase` (all by default) as `name value (limit)`, for reports and errors."""
    def value(v: Any) -> str:
        return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    def line(check: dict[str, Any]) -> str:
        # A gate check's bounds are in its name already ("error_rate <= 0.05"); the others carry one limit.
        limit = "" if isinstance(check["limit"], tuple) else f" (limit {value(check['limit'])})"
        note = f": {check['note']}" if phase and check["note"] else ""
        return f"{check['check']} {value(check['value'])}{limit}{note}"

    return "; ".join(line(c) for c in result["checks"] if phase is None or c["phase"] == phase)


def normalize(value: Any) -> Any:
    """Plain data with the service's resource ids written as the short references specs render."""
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    if isinstance(value, str):
        return _short_reference(value)
    return value


def _short_reference(value: str) -> str:
    arm = ARM_ID.match(value)
    if arm is None:
        return value
    for pattern, template in SHORT_REFERENCES:
        match = pattern.match(arm["path"])
        if match:
            return template.format(**match.groupdict())
    return value


def project(observed: Any, desired: Any) -> Any:
    """`observed` cut down to the fields `desired` has: what the service adds is not a change.

    Maps keyed by data rather than by field name (traffic weights, environment variables)
    are kept whole, so a key removed from the spec is still a change.
    """
    if isinstance(desired, dict) and isinstance(observed, dict):
        return {k: observed[k] if k in WHOLE_MAPS else project(observed[k], v)
                for k, v in desired.items() if k in observed}
    return observed
