"""Endpoint and BatchEndpoint: where registered models answer requests.

Field names follow Azure ML's online and batch endpoints (`auth_mode`,
`traffic`, `mirror_traffic`, `request_settings`, probes, `mini_batch_size`,
...) so the same spec renders to managed endpoints. Deployments are nested in
their endpoint here (Azure ML keeps them as separate resources) because a
rollout changes both at once. `rollout` follows Argo Rollouts' vocabulary.

Checks that need positions inside the document (traffic keys, mirror target)
or other documents (models, gates, datasets) are `@check`s at the bottom.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from specops.core.durations import seconds
from specops.errors import SpecError
from specops.spec.checks import missing_reference, check, model_task, registered_models
from specops.spec.kinds import (Dataset, Document, Duration, Gate, Name, Pipeline, PositiveDuration, Project, Strict,
                                 register_kind)
from specops.spec.loader import Path_, SpecSet

MODEL_REF = re.compile(r"^(?P<name>[a-z0-9]([-a-z0-9]*[a-z0-9])?)@(?P<selector>[0-9]+|[A-Za-z][-\w]*)$")
MAX_MIRROR_PERCENT = 50  # Azure ML's limit on mirrored (shadow) traffic


@dataclass(frozen=True)
class ModelRef:
    """`credit-risk@3` (a version) or `credit-risk@champion` (an alias)."""

    name: str
    version: str | None
    alias: str | None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        match = MODEL_REF.match(text)
        if match is None:
            raise ValueError(f"model reference {text!r} must be name@version or name@alias, e.g. credit-risk@champion")
        selector = match["selector"]
        return cls(match["name"], selector if selector.isdigit() else None, None if selector.isdigit() else selector)


def _check_model_ref(value: str) -> str:
    ModelRef.parse(value)
    return value


ModelRefText = Annotated[str, AfterValidator(_check_model_ref), Field(description="name@version or name@alias")]
Percent = Annotated[int, Field(ge=0, le=100)]


# --- deployments -------------------------------------------------------------

class ProbeSettings(Strict):
    """Azure ML's probe settings, in seconds."""

    initial_delay: int = Field(10, ge=0)
    period: int = Field(10, ge=1)
    timeout: int = Field(2, ge=1)
    failure_threshold: int = Field(30, ge=1)
    success_threshold: int = Field(1, ge=1)


class RequestSettings(Strict):
    request_timeout_ms: int = Field(5000, ge=1, le=180_000, description="answer 408 past this")
    max_concurrent_requests_per_instance: int | None = Field(
        None, ge=1, description="in-flight requests per instance before 429; unset: the backend's default (local: no limit)"
    )


class DataCollector(Strict):
    """Azure ML's data collector, locally the inference log under .specops/."""

    enabled: bool = True
    sampling_rate: float = Field(1.0, ge=0, le=1, description="share of requests recorded")


class ModelDeployment(Strict):
    name: Name
    model: ModelRefText

    @property
    def model_ref(self) -> ModelRef:
        return ModelRef.parse(self.model)


class Deployment(ModelDeployment):
    instance_type: str = "Standard_DS3_v2"
    instance_count: int = Field(1, ge=1, description="locally: worker processes serving the endpoint share this")
    environment_variables: dict[str, str] = {}
    request_settings: RequestSettings = RequestSettings()
    liveness_probe: ProbeSettings = ProbeSettings()
    readiness_probe: ProbeSettings = ProbeSettings()
    data_collector: DataCollector = DataCollector()


# --- rollouts ----------------------------------------------------------------

class Pause(Strict):
    duration: Duration | None = Field(None, description="resume by itself after this; unset: wait for `rollout promote`")


def _check_load_duration(value: str) -> str:
    # locust's --run-time counts whole seconds: a shorter run would not run at all
    if seconds(value) < 1:
        raise ValueError(f"a load test runs at least 1s (got {value})")
    return value


class LoadTest(Strict):
    """Synthetic single-row requests aimed at the new deployment (by header), run by locust in its own process."""

    users: int = Field(10, ge=1, le=1000, description="concurrent clients, each sending one request after another")
    spawn_rate: float | None = Field(None, gt=0, description="clients started per second; unset: all at once")
    duration: Annotated[Duration, AfterValidator(_check_load_duration)] = Field("30s", description="how long the load runs, at least 1s")
    rows: str | None = Field(None, description="CSV of input rows, relative to the project root; unset: the deployment's Dataset")


class CanaryStep(Strict):
    """Exactly one of: shift `weight`% to the canary, `pause`, run `analysis` with a gate, or a `load_test` on the canary."""

    weight: Percent | None = None
    pause: Pause | None = None
    analysis: Name | None = Field(None, description="a Gate evaluated on live metrics")
    load_test: LoadTest | None = Field(None, description="fails (and rolls back) on any failed request or p95 over the latency SLO")

    @model_validator(mode="after")
    def _exactly_one(self) -> CanaryStep:
        if sum(x is not None for x in (self.weight, self.pause, self.analysis, self.load_test)) != 1:
            raise ValueError("a canary step is exactly one of weight, pause, analysis or load_test")
        return self


class RollbackConditions(Strict):
    """When analysis fails at once, whatever the gate says (the blueprint's triggers)."""

    error_rate_ratio: float = Field(3.0, gt=1, description="canary error rate > this x the stable baseline")
    latency_slo_ms: float | None = Field(None, gt=0, description="p95 latency objective; unset: no latency trigger")
    latency_margin: float = Field(0.25, ge=0, description="p95 > SLO x (1 + this)")
    metric: str = Field("accuracy", description="the critical metric watched on labelled feedback: accuracy "
                                                "(classes), or mae (a regression's mean absolute error)")
    metric_regression: float = Field(0.02, ge=0, le=1, description="relative drop of accuracy (or growth of mae) "
                                                                    "vs the stable deployment")


class RolloutCommon(Strict):
    min_samples: int = Field(100, ge=1, description="requests an analysis needs; fewer is Inconclusive (pause)")
    rollback: RollbackConditions = RollbackConditions()
    rollback_window: Duration = Field("1h", description="`rollout undo` within this skips analysis")


class CanaryRollout(RolloutCommon):
    strategy: Literal["canary"]
    steps: list[CanaryStep] = Field(min_length=1)


class BlueGreenRollout(RolloutCommon):
    strategy: Literal["blue-green"]
    pre_promotion_load_test: LoadTest | None = Field(None, description="load aimed at the preview before its analysis")
    pre_promotion_analysis: Name | None = None
    post_promotion_analysis: Name | None = Field(None, description="a Gate run on live traffic after the switch; Failed switches back")
    auto_promotion_enabled: bool = False


class ABRollout(RolloutCommon):
    strategy: Literal["ab"]
    metrics: list[str] = Field(["accuracy", "p95_latency_ms", "error_rate"], min_length=1, description="reported per arm")
    duration: Duration | None = Field(None, description="end the experiment after this")


class Reward(Strict):
    metric: str = Field(description="per-request reward from feedback, e.g. accuracy")
    goal: Literal["maximize", "minimize"] = "maximize"


class BanditRollout(RolloutCommon):
    strategy: Literal["bandit"]
    algorithm: Literal["thompson"] = "thompson"
    reward: Reward
    floor: Percent = Field(5, description="every arm keeps at least this share of traffic")
    update_interval: Duration = "1m"


Rollout = Annotated[
    CanaryRollout | BlueGreenRollout | ABRollout | BanditRollout, Field(discriminator="strategy")
]


# --- Endpoint ----------------------------------------------------------------

class InferenceLogSettings(Strict):
    """How much of the inference log the local server keeps (.specops/endpoints/<name>/inference/)."""

    rotate_size_mb: float = Field(64, gt=0, le=1 << 20, description="a worker starts a new file past this size "
                                                                   "(besides one file per UTC hour)")
    max_size_mb: float = Field(2048, gt=0, description="all files together; past it the oldest hours are deleted "
                                                      "(the current hour never)")
    retention: PositiveDuration = Field("P35D", description="files older than this are deleted; keep it at least as long "
                                                          "as the longest SLO window or monitor lookback reading the log")


class ServerSettings(Strict):
    """How the local endpoint server runs (no Azure ML counterpart)."""

    port: int = Field(5800, ge=1, le=65535)
    workers: int = Field(0, ge=0, description="server processes; 0 = one per core")
    max_batch_size: int = Field(64, ge=1, description="rows a deployment scores in one model call")
    max_wait_ms: float = Field(2.0, ge=0, le=100, description="longest a request waits for a batch to fill, under load only")
    max_request_bytes: int = Field(1 << 20, ge=1024, description="larger bodies get 413")
    max_rows_per_request: int = Field(1000, ge=1, description="requests with more rows get 413 (before any row is checked)")
    out_of_range: Literal["reject", "flag"] = Field(
        "reject", description="a request value outside its Dataset column's min, max or allowed values: "
                              "reject (422 naming the row and column) or flag (scored; the log records why)")
    inference_log: InferenceLogSettings = InferenceLogSettings()


class EndpointSpec(Strict):
    description: str = ""
    auth_mode: Literal["key"] = "key"
    deployments: list[Deployment] = Field(min_length=1)
    traffic: dict[str, Percent] = Field(description="deployment -> percent of live requests; sums to 100")
    mirror_traffic: dict[str, Percent] = Field({}, description="one deployment -> percent copied to it, answers discarded")
    rollout: Rollout | None = None
    server: ServerSettings = ServerSettings()

    def deployment(self, name: str) -> Deployment | None:
        return next((d for d in self.deployments if d.name == name), None)


@register_kind
class Endpoint(Document):
    kind: Literal["Endpoint"]
    spec: EndpointSpec


def champion_rollout(specs: SpecSet, model: str) -> Endpoint | None:
    """The Endpoint (with a rollout) serving `model@champion`, if any: its promotions move the champion alias."""
    return next((e for e in specs.of_kind(Endpoint) if e.spec.rollout is not None
                 and any(d.model_ref.name == model and d.model_ref.alias == "champion" for d in e.spec.deployments)), None)


# --- BatchEndpoint -----------------------------------------------------------

class RetrySettings(Strict):
    max_retries: int = Field(3, ge=0)
    timeout: int = Field(30, ge=1, description="seconds one mini-batch may take")


class BatchDeployment(ModelDeployment):
    instance_count: int = Field(1, ge=1)
    mini_batch_size: int = Field(1000, ge=1, description="rows per mini-batch")
    max_concurrency_per_instance: int = Field(1, ge=1)
    output_action: Literal["append_row", "summary_only"] = "append_row"
    output_file_name: str = "predictions.csv"
    retry_settings: RetrySettings = RetrySettings()
    error_threshold: int = Field(-1, ge=-1, description="failed rows tolerated; -1 = any")
    environment_variables: dict[str, str] = {}


class BatchEndpointSpec(Strict):
    description: str = ""
    deployments: list[BatchDeployment] = Field(min_length=1)
    default_deployment: Name
    dataset: Name | None = Field(None, description="Dataset scored when `batch invoke` names no input")
    output_path: str = Field("outputs/batch", description="folder for predictions, relative to the project root")


@register_kind
class BatchEndpoint(Document):
    kind: Literal["BatchEndpoint"]
    spec: BatchEndpointSpec


# --- cross-reference checks -------------------------------------------------

@check
def endpoints(specs: SpecSet) -> Iterable[SpecError]:
    for endpoint in specs.of_kind(Endpoint):
        spec = endpoint.spec
        yield from _unique_deployments(specs, endpoint, spec.deployments)
        yield from _model_refs(specs, endpoint, spec.deployments)
        yield from _traffic(specs, endpoint, spec)
        yield from _mirror(specs, endpoint, spec)
        if spec.rollout is not None:
            yield from _rollout(specs, endpoint, spec)


@check
def pipeline_feedback(specs: SpecSet) -> Iterable[SpecError]:
    """A Pipeline retrains on the labelled answers of an Endpoint that serves its model."""
    for pipeline in specs.of_kind(Pipeline):
        feedback, at = pipeline.spec.feedback, ("spec", "feedback", "endpoint")
        if feedback is None:
            continue
        endpoint = specs.get(Endpoint, feedback.endpoint)
        if endpoint is None:
            yield from missing_reference(specs, pipeline, at, Endpoint, feedback.endpoint)
            continue
        served = sorted({d.model_ref.name for d in endpoint.spec.deployments})
        if pipeline.spec.model_name not in served:
            yield specs.error(pipeline, at, f"endpoint {feedback.endpoint!r} does not serve model {pipeline.spec.model_name!r} "
                                            f"(it serves {', '.join(served)}): its answers are another model's")


@check
def batch_endpoints(specs: SpecSet) -> Iterable[SpecError]:
    for endpoint in specs.of_kind(BatchEndpoint):
        spec = endpoint.spec
        yield from _unique_deployments(specs, endpoint, spec.deployments)
        yield from _model_refs(specs, endpoint, spec.deployments)
        if spec.default_deployment not in {d.name for d in spec.deployments}:
            yield specs.error(endpoint, ("spec", "default_deployment"), _unknown_deployment(spec.default_deployment, spec.deployments))
        if spec.dataset is not None:
            yield from missing_reference(specs, endpoint, ("spec", "dataset"), Dataset, spec.dataset)
        projects = specs.of_kind(Project)
        environment = projects[0].spec.environments.get(specs.env) if projects else None
        if environment is not None and environment.backend == "azureml" and environment.compute is None:
            yield specs.error(endpoint, ("spec",), f"a batch endpoint on Azure ML runs on a compute cluster, and "
                              f"environment {specs.env!r} names none: set spec.environments.{specs.env}.compute "
                              "in the Project (batch deployments do not take serverless compute)")


def _unknown_deployment(name: str, deployments: Sequence[ModelDeployment]) -> str:
    return f"no deployment named {name!r} (deployments: {', '.join(d.name for d in deployments)})"


def _unique_deployments(specs: SpecSet, doc: Document, deployments: Sequence[ModelDeployment]) -> Iterable[SpecError]:
    names = [d.name for d in deployments]
    for i, name in enumerate(names):
        if name in names[:i]:
            yield specs.error(doc, ("spec", "deployments", i, "name"), f"duplicate deployment {name!r}")


def _model_refs(specs: SpecSet, doc: Document, deployments: Sequence[ModelDeployment]) -> Iterable[SpecError]:
    models = registered_models(specs)
    for i, deployment in enumerate(deployments):
        name = deployment.model_ref.name
        if name not in models:
            known = ", ".join(sorted(models)) or "none"
            yield specs.error(doc, ("spec", "deployments", i, "model"),
                              f"no Pipeline registers model {name!r} (registered: {known})")


def _traffic(specs: SpecSet, endpoint: Endpoint, spec: EndpointSpec) -> Iterable[SpecError]:
    for name in spec.traffic:
        if spec.deployment(name) is None:
            yield specs.error(endpoint, ("spec", "traffic", name), _unknown_deployment(name, spec.deployments))
    total = sum(spec.traffic.values())
    if total != 100:
        yield specs.error(endpoint, ("spec", "traffic"), f"traffic weights sum to {total}, not 100")


def _mirror(specs: SpecSet, endpoint: Endpoint, spec: EndpointSpec) -> Iterable[SpecError]:
    if len(spec.mirror_traffic) > 1:
        yield specs.error(endpoint, ("spec", "mirror_traffic"), "mirror traffic goes to one deployment only")
    for name, percent in spec.mirror_traffic.items():
        path = ("spec", "mirror_traffic", name)
        if spec.deployment(name) is None:
            yield specs.error(endpoint, path, _unknown_deployment(name, spec.deployments))
        elif spec.traffic.get(name, 0) > 0:
            yield specs.error(endpoint, path, f"deployment {name!r} takes live traffic; a mirror target must take none")
        if percent > MAX_MIRROR_PERCENT:
            yield specs.error(endpoint, path, f"mirror traffic is at most {MAX_MIRROR_PERCENT}% (got {percent}%)")


def _rollout(specs: SpecSet, endpoint: Endpoint, spec: EndpointSpec) -> Iterable[SpecError]:
    rollout = spec.rollout
    base = ("spec", "rollout")
    yield from _rollback_metric_fits(specs, endpoint, spec)
    if isinstance(rollout, CanaryRollout):
        for i, step in enumerate(rollout.steps):
            if step.analysis is not None:
                yield from missing_reference(specs, endpoint, (*base, "steps", i, "analysis"), Gate, step.analysis)
            yield from _load_test_rows(specs, endpoint, (*base, "steps", i, "load_test", "rows"), step.load_test)
    elif isinstance(rollout, BlueGreenRollout):
        for field in ("pre_promotion_analysis", "post_promotion_analysis"):
            gate = getattr(rollout, field)
            if gate is not None:
                yield from missing_reference(specs, endpoint, (*base, field), Gate, gate)
        yield from _load_test_rows(specs, endpoint, (*base, "pre_promotion_load_test", "rows"), rollout.pre_promotion_load_test)
    elif isinstance(rollout, (ABRollout, BanditRollout)):
        arms = [name for name, percent in spec.traffic.items() if percent > 0]
        if len(arms) < 2:
            yield specs.error(endpoint, ("spec", "traffic"), f"strategy {rollout.strategy} needs live traffic on at least two deployments")
        if isinstance(rollout, BanditRollout) and rollout.floor * len(arms) > 100:
            yield specs.error(endpoint, (*base, "floor"), f"a floor of {rollout.floor}% for {len(arms)} arms exceeds 100%")


def _rollback_metric_fits(specs: SpecSet, endpoint: Endpoint, spec: EndpointSpec) -> Iterable[SpecError]:
    """A regression's answers are numbers: equal to their labels by chance only, so accuracy cannot judge them."""
    metric = spec.rollout.rollback.metric if spec.rollout is not None else None
    tasks = {model_task(specs, d.model_ref.name) for d in spec.deployments}
    path = ("spec", "rollout", "rollback", "metric")
    if metric == "accuracy" and "regression" in tasks:
        yield specs.error(endpoint, path, "the endpoint serves a regression model: watch its mean absolute error "
                                          "(metric: mae), accuracy needs classes")
    elif metric == "mae" and tasks and "regression" not in tasks:
        yield specs.error(endpoint, path, "metric mae measures a regression's answers; this endpoint serves classes "
                                          "(metric: accuracy)")


def _load_test_rows(specs: SpecSet, endpoint: Endpoint, path: Path_, load_test: LoadTest | None) -> Iterable[SpecError]:
    if load_test is not None and load_test.rows is not None and not (specs.root / load_test.rows).is_file():
        yield specs.error(endpoint, path, f"rows file {load_test.rows!r} does not exist (a CSV relative to the project root)")
