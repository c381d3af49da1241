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
import logging
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specops.backends.azure_metrics import GRAIN, AzureMonitorMetrics, EndpointMetrics, combined, workspace_id
from specops.plan.backend import Reporter
from specops.errors import SpecopsError
from specops.plan.model import Action, Operation, Resource
from specops.render.azureml import (
    TRIGGER_VARIABLE, Rendered, azureml_notes, entity_dict, read_project_files, render_entities, short_hash, slug,
)
from specops.spec import FeatureSet, Gate, Project, SpecSet
from specops.rollout.analysis import FAILED, INCONCLUSIVE, SUCCESSFUL, Arm, analyse
from specops.core.durations import seconds as duration_seconds
from specops.spec.endpoints import CanaryRollout, Endpoint
from specops.spec.refs import resolve

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

    from specops.project import Project as Session

DEFAULT_TIMEOUT = 1800.0  # seconds an apply waits for one long-running operation
# Seconds an Inconclusive analysis (too few requests yet) keeps re-querying before the canary is rolled back.
DEFAULT_ANALYSIS_WAIT = 900.0
LIVE_METRICS = ("requests", "error_rate", "p95_latency_ms")  # what Azure Monitor measures; a gate's other checks are local only
RECORDS = (Project, Gate, FeatureSet)  # kinds Azure ML has no resource for: kept in specops' state only
RECORD_KINDS = frozenset(kind.__name__ for kind in RECORDS)
NOT_APPLIED = ("CommandComponent", "Model")  # inline in the pipeline job / registered by its register step
TRAFFIC_FIELDS = ("traffic", "mirror_traffic")
ENDPOINT_FIELDS = ("auth_mode", "description", "tags")  # what an OnlineEndpoint update sets on the live endpoint
KEPT_ON_DELETE = ("Environment", "Data", "PipelineJob")  # immutable history: never deleted by a plan
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


class AzureMLBackend:
    name = "azureml"

    def __init__(self, root: Path, credential: Any = None, timeout: float = DEFAULT_TIMEOUT, *,
                 metrics: EndpointMetrics | None = None, analysis_wait: float = DEFAULT_ANALYSIS_WAIT,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], datetime] | None = None,
                 **client_options: Any):
        """`credential` defaults to DefaultAzureCredential (OIDC in CI); `client_options` go to MLClient
        (e.g. `transport=` for tests, retry settings) and to the Azure Monitor client. `metrics` defaults
        to Azure Monitor; `sleep` and `clock` are what canary pauses and analyses wait with."""
        self.root = Path(root)
        self.credential = credential
        self.timeout = timeout
        self.client_options = client_options
        self.analysis_wait = analysis_wait
        self._sleep = sleep
        self._clock = clock or (lambda: datetime.now(UTC))
        self._metrics = metrics
        self._client: MLClient | None = None
        # Why pipelines run in this apply: `specops retrain`, the retrain workflow and monitors set it.
        self.trigger_reason = os.environ.get(TRIGGER_VARIABLE) or "apply"
        self._asked_at = self._clock()
        # Rendering builds many SDK objects (slow): done once per loaded SpecSet and kept for observe and apply.
        self._rendered_for: SpecSet | None = None
        self._entities: dict[str, Rendered] = {}
        self._desired: list[Resource] = []

    @classmethod
    def from_project(cls, project: Session) -> AzureMLBackend:
        return cls(project.root)

    # -- desired ---------------------------------------------------------------
    def desired(self, specs: SpecSet) -> list[Resource]:
        if self._rendered_for is not specs:
            self._render(specs)
        return list(self._desired)

    def _render(self, specs: SpecSet) -> None:
        project = specs.project.key
        resources = [Resource(d.kind, d.name, {"spec": d.spec.model_dump(mode="json")}, () if d is specs.project else (project,))
                     for d in specs.documents if isinstance(d, RECORDS)]
        rendered = render_entities(specs, read_project_files(specs.root), self.trigger_reason)
        self._entities = {r.key: r for r in rendered if r.kind not in NOT_APPLIED}
        for r in self._entities.values():
            resources.extend(self._resources(r, project))
        self._desired, self._rendered_for = resources, specs

    def _resources(self, r: Rendered, project: str) -> list[Resource]:
        fields = entity_dict(r, self.root)
        # The Project first, as on the local backend: plans read top-down from the workspace's owner.
        deps = (project, *(d for d in r.depends_on if not d.startswith(NOT_APPLIED)))
        if r.kind == "JobSchedule":
            r.entity.tags = {**(r.entity.tags or {}), JOB_DIGEST: short_hash(fields["create_job"])}
            fields = entity_dict(r, self.root)
        if r.kind == "PipelineJob":
            # A job is a run, not a resource: its name is its content, so an unchanged pipeline is not re-run;
            # a retraining is a new run whatever the content, named for when it was asked for.
            fields["name"] = f"{r.name}-{short_hash(fields)}"
            if self.trigger_reason != "apply":
                fields["name"] += f"-{slug(self.trigger_reason)}-{self._asked_at:%Y%m%d%H%M%S}"
        if r.kind == "OnlineEndpoint":
            traffic = {k: live_weights(fields.pop(k, {})) for k in TRAFFIC_FIELDS}
            deployments = tuple(f"OnlineDeployment/{r.name}.{name}" for name in self._deployments_of(r.name, "OnlineDeployment"))
            return [Resource(r.kind, r.name, fields, deps), Resource("OnlineTraffic", r.name, traffic, deployments)]
        if r.kind == "BatchEndpoint":
            defaults = {"defaults": fields.pop("defaults")}
            deployments = tuple(f"BatchDeployment/{r.name}.{name}" for name in self._deployments_of(r.name, "BatchDeployment"))
            return [Resource(r.kind, r.name, fields, deps), Resource("BatchDefaults", r.name, defaults, deployments)]
        return [Resource(r.kind, r.name, fields, deps)]

    def _deployments_of(self, endpoint: str, kind: str) -> list[str]:
        return [r.entity.name for r in self._entities.values() if r.kind == kind and r.entity.endpoint_name == endpoint]

    def notes(self, specs: SpecSet) -> list[str]:
        return azureml_notes(specs)  # every local-only feature, rollout steps included, is the renderer's to say

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
            entity = self._call(kind, name, getters[kind])
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
        if kind == "OnlineDeployment":
            _instance_type_kept(name, found, desired)
        return found

    def _same_model(self, specs: SpecSet, found: dict[str, Any], desired: dict[str, Any]) -> None:
        """A `name@latest` deployment is unchanged while it serves the latest version."""
        name, _, label = str(desired.get("model", "")).removeprefix("azureml:").partition("@")
        if not label:
            return
        client = self.client(specs)
        latest = self._call("Model", name, lambda: client.models.get(name, label=label))
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
        return self._create_or_update(op, specs)

    def _create_or_update(self, op: Operation, specs: SpecSet) -> dict[str, Any]:
        client = self.client(specs)
        entity = self._entities[op.key].entity  # rendered for this apply's specs: changing it here is safe
        if op.kind == "OnlineEndpoint":
            entity = self._endpoint_update(op, specs, entity)
        if op.kind == "BatchEndpoint":
            entity.defaults = None
        if op.kind == "PipelineJob":
            entity.name = op.desired["name"]
            job = self._call(op.kind, op.name, lambda: client.jobs.create_or_update(entity))
            return {"job": job.name}
        create = {
            "Environment": client.environments.create_or_update,
            "Data": client.data.create_or_update,
        }.get(op.kind)
        if create is not None:
            result = self._call(op.kind, op.name, lambda: create(entity))
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

    def _endpoint_update(self, op: Operation, specs: SpecSet, rendered: Any) -> Any:
        """The endpoint to send: on create, the rendered one without traffic (its deployments come after);
        on update, the live one with the spec's fields set on it (the SDK's get, modify, create_or_update),
        so the traffic its deployments take now is kept."""
        if op.action is Action.CREATE:
            rendered.traffic, rendered.mirror_traffic = {}, {}
            return rendered
        client = self.client(specs)
        live = self._call(op.kind, op.name, lambda: client.online_endpoints.get(op.name))
        for field in ENDPOINT_FIELDS:
            setattr(live, field, getattr(rendered, field))
        return live

    def _shift_traffic(self, op: Operation, specs: SpecSet, report: Reporter) -> dict[str, Any]:
        """A canary rollout walks its steps (weights, timed pauses, analyses on live metrics); others switch at once."""
        current = (op.before or {}).get("traffic") or {}
        target = op.desired
        endpoint = specs.get(Endpoint, op.name)
        canary = canary_of(current, target["traffic"], endpoint)
        rollout = endpoint.spec.rollout if endpoint is not None else None
        if canary is None or not isinstance(rollout, CanaryRollout):  # canary_of finds one only under a canary rollout
            self._set_traffic(op, specs, target["traffic"], target["mirror_traffic"], report)
        else:
            self._roll_out(op, specs, rollout, canary, report)
        return {"traffic": target["traffic"]}

    def _set_traffic(self, op: Operation, specs: SpecSet, traffic: dict[str, int], mirror: dict[str, int],
                     report: Reporter) -> None:
        client = self.client(specs)
        report(f"{op.key}: traffic {traffic}")
        endpoint = self._call(op.kind, op.name, lambda: client.online_endpoints.get(op.name))
        endpoint.traffic, endpoint.mirror_traffic = traffic, mirror
        self._wait(op.kind, op.name, lambda: client.online_endpoints.begin_create_or_update(endpoint))

    # -- canary rollouts ---------------------------------------------------------
    def _roll_out(self, op: Operation, specs: SpecSet, rollout: CanaryRollout, canary: str, report: Reporter) -> None:
        """The canary's steps in order, then the declared traffic.

        Whatever stops the walk (a Failed or still-Inconclusive analysis, an error from Azure) puts the
        pre-rollout traffic back in one update before the error is raised: a canary half rolled out must
        not be left serving unwatched, and the next apply would take its weight as already analysed.
        """
        before, target = op.before or {}, op.desired
        try:
            self._walk(op, specs, rollout, canary, report)
            self._set_traffic(op, specs, target["traffic"], target["mirror_traffic"], report)
        except SpecopsError as exc:
            self._roll_back(op, specs, before, exc, report)
            raise SpecopsError(f"{exc}; rolled back: all traffic on {before['traffic']} again, and the plan still "
                               "shows the change") from exc

    def _walk(self, op: Operation, specs: SpecSet, rollout: CanaryRollout, canary: str, report: Reporter) -> None:
        current, target = (op.before or {}).get("traffic") or {}, op.desired  # as _shift_traffic found the canary
        stable = {name: weight for name, weight in current.items() if name != canary and weight > 0}
        since = self._clock()  # the analysis window starts at the last weight change
        for number, step in enumerate(rollout.steps, 1):
            where = f"{op.key}: step {number}"
            if step.weight is not None and step.weight >= target["traffic"][canary]:
                if number < len(rollout.steps):  # the spec's traffic is where this rollout ends
                    report(f"{where}: weight {step.weight} reaches the declared {target['traffic'][canary]}; "
                           f"the {len(rollout.steps) - number} steps after it are not run")
                return
            if step.weight is not None:
                self._set_traffic(op, specs, canary_split(stable, canary, step.weight), target["mirror_traffic"], report)
                since = self._clock()
            elif step.pause is not None and step.pause.duration is not None:
                report(f"{where}: pause {step.pause.duration}")
                self._sleep(duration_seconds(step.pause.duration))
            elif step.analysis is not None:
                self._analyse(op, specs, rollout, step.analysis, canary, list(stable), since, report)
            else:
                kind = "pause without a duration (waits for `rollout promote`)" if step.pause else "load_test"
                report(f"{where}: {kind} runs on the local backend only; skipped")

    def _analyse(self, op: Operation, specs: SpecSet, rollout: CanaryRollout, gate_name: str, canary: str,
                 stable: list[str], since: datetime, report: Reporter) -> None:
        """Analysis on Azure Monitor's metrics; Inconclusive re-queries each minute for up to `analysis_wait` s."""
        gate = specs.get(Gate, gate_name)
        deadline = self._clock() + timedelta(seconds=self.analysis_wait)
        while True:
            self._wait_for_a_minute(since)  # the metrics have a 1-minute grain: a shorter window holds nothing
            result = self._analysis_run(specs, op.name, rollout, gate, canary, stable, since)
            skipped = f"; skipped, local only: {', '.join(result['skipped'])}" if result["skipped"] else ""
            report(f"{op.key}: analysis {gate_name}: {result['phase']} ({_summary(result)}{skipped})")
            if result["phase"] == SUCCESSFUL:
                return
            if result["phase"] == FAILED:
                raise SpecopsError(f"{op.key}: analysis {gate_name} Failed: {_summary(result, FAILED)}")
            if self._clock() >= deadline:
                raise SpecopsError(f"{op.key}: analysis {gate_name} still Inconclusive after {self.analysis_wait:g}s: "
                                   f"{_summary(result, INCONCLUSIVE)}; no evidence is no promotion")
            self._sleep(GRAIN.total_seconds())

    def _wait_for_a_minute(self, since: datetime) -> None:
        short = GRAIN - (self._clock() - since)
        if short > timedelta(0):
            self._sleep(short.total_seconds())

    def _analysis_run(self, specs: SpecSet, endpoint: str, rollout: CanaryRollout, gate: Gate | None, canary: str,
                      stable: list[str], since: datetime) -> dict[str, Any]:
        metrics, end = self.metrics(specs), self._clock()
        canary_arm = Arm(canary, metrics.window(endpoint, canary, since, end), 0, 0)
        stable_traffic = combined(metrics.window(endpoint, name, since, end) for name in stable)
        return live_analysis(canary_arm, Arm("+".join(stable), stable_traffic, 0, 0), rollout, gate)

    def _roll_back(self, op: Operation, specs: SpecSet, before: dict[str, Any], cause: SpecopsError,
                   report: Reporter) -> None:
        """The pre-rollout traffic (and mirror) in one update."""
        report(f"{op.key}: rolling back ({cause})")
        try:
            self._set_traffic(op, specs, before["traffic"], before.get("mirror_traffic") or {}, report)
        except SpecopsError as exc:
            raise SpecopsError(f"{cause}; ROLLBACK FAILED, the canary may still take traffic "
                               f"(set {before['traffic']} by hand): {exc}") from exc

    def _set_batch_default(self, op: Operation, specs: SpecSet) -> dict[str, Any]:
        client = self.client(specs)
        endpoint = self._call(op.kind, op.name, lambda: client.batch_endpoints.get(op.name))
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
            from azure.identity import DefaultAzureCredential

            # Each credential it tries logs its own failure; specops reports the outcome once.
            logging.getLogger("azure.identity").setLevel(logging.ERROR)
            self.credential = DefaultAzureCredential()
        return self.credential

    def _call(self, kind: str, name: str, call: Callable[[], Any]) -> Any:
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
        poller = self._call(kind, name, begin)
        result = self._call(kind, name, lambda: poller.result(timeout=self.timeout))
        if not poller.done():
            raise SpecopsError(f"{kind}/{name}: still running after {self.timeout:g}s; apply again to converge")
        return result


def live_weights(weights: dict[str, int]) -> dict[str, int]:
    """Traffic without its zero weights: the service lists every deployment, serving or not."""
    return {name: weight for name, weight in weights.items() if weight}


def _model_batch_shape(found: dict[str, Any], desired: dict[str, Any]) -> None:
    """`batch_deployments.get` returns the generic BatchDeployment, its settings at the top level;
    specops renders a ModelBatchDeployment (type: model, settings: {...})."""
    if found.get("model"):
        found["type"] = "model"
    found["settings"] = {key: found[key] for key in desired.get("settings", {}) if key in found}


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


def canary_split(stable: dict[str, int], canary: str, weight: int) -> dict[str, int]:
    """`weight`% on the canary, the rest shared by the stable deployments as they shared it before."""
    rest = 100 - weight
    total = sum(stable.values()) or 1
    shares = {name: rest * share // total for name, share in stable.items()}
    first = next(iter(shares), None)
    if first is not None:
        shares[first] += rest - sum(shares.values())  # integer weights still sum to 100
    return {**shares, canary: weight}


def live_analysis(canary: Arm, stable: Arm, rollout: CanaryRollout, gate: Gate | None) -> dict[str, Any]:
    """`analyse` restricted to what Azure Monitor measures.

    Azure ML has no feedback labels and no specops inference log, so the accuracy regression check
    and a gate's checks on other metrics or on SLO budgets are left out (listed under `skipped`)
    rather than run: they would make every analysis Inconclusive, and a rollout could never finish.
    """
    live = [c for c in gate.spec.checks if c.slo is None and c.metric in LIVE_METRICS] if gate else []
    skipped = [c.describe() for c in gate.spec.checks if c not in live] if gate else []
    live_gate = gate.model_copy(update={"spec": gate.spec.model_copy(update={"checks": live})}) if gate else None
    result = analyse(canary, stable, rollout, live_gate, budgets={})
    regression = f"{rollout.rollback.metric} regression"
    result["checks"] = [c for c in result["checks"] if c["check"] != regression]
    result["skipped"] = [regression, *skipped]
    phases = {c["phase"] for c in result["checks"]}
    result["phase"] = FAILED if FAILED in phases else INCONCLUSIVE if INCONCLUSIVE in phases else SUCCESSFUL
    return result


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
