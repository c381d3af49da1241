"""Specs -> the azure-ai-ml SDK's own entities, and Azure ML CLI v2 YAML.

`render_entities` is pure: specs, params.yaml and the lock text in, entities
out. `render_azureml` is the I/O wrapper that reads those files and writes one
YAML file per entity. Whatever a spec asks for that Azure ML cannot express is
returned by `azureml_notes`, so plans say it instead of dropping it silently.
"""
from __future__ import annotations

import logging

import hashlib
import json
import math
import os
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from azure.ai.ml import Input, Output
from azure.ai.ml.constants import MonitorDatasetContext
from azure.ai.ml.entities import (
    BaselineDataRange,
    BatchEndpoint as AzureBatchEndpoint,
    BatchRetrySettings,
    CategoricalDriftMetrics,
    CommandComponent,
    CronTrigger,
    Data,
    DataCollector as AzureDataCollector,
    DataDriftMetricThreshold,
    DataDriftSignal,
    DataQualityMetricsCategorical,
    DataQualityMetricsNumerical,
    DataQualityMetricThreshold,
    DataQualitySignal,
    DeploymentCollection,
    Environment,
    FADProductionData,
    FeatureAttributionDriftMetricThreshold,
    FeatureAttributionDriftSignal,
    JobSchedule,
    CodeConfiguration,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    Model,
    ModelBatchDeployment,
    ModelBatchDeploymentSettings,
    MonitorDefinition,
    MonitoringTarget,
    MonitorSchedule,
    NumericalDriftMetrics,
    OnlineRequestSettings,
    PipelineJob,
    PipelineJobSettings,
    PredictionDriftMetricThreshold,
    PredictionDriftSignal,
    ProbeSettings as AzureProbeSettings,
    ProductionData,
    ReferenceData,
    ResourceConfiguration,
    ServerlessSparkCompute,
)
from azure.ai.ml.sweep import (
    BanditPolicy,
    Choice,
    LogUniform,
    MedianStoppingPolicy,
    RandomSamplingAlgorithm,
    TruncationSelectionPolicy,
    Uniform,
)

from specops.errors import SpecErrors, SpecopsError
from specops.core.durations import iso, seconds as duration_seconds
from specops.core.paths import STAGES
from specops.spec.signals import JSD, KS, NDCG, NWD, PSI, Signals
from specops.spec import Dataset, FeatureSet, Gate, Pipeline, SpecSet
from specops.spec.endpoints import (
    ABRollout, BanditRollout, BatchEndpoint, BlueGreenRollout, CanaryRollout, Endpoint, ModelRef, ProbeSettings,
    Rollout,
)
from specops.spec.monitors import (
    DataDrift, DataQuality, FeatureAttributionDrift, Monitor, PredictionDrift, Target, baseline_dataset,
    monitored_features, sensitive_column,
)
from specops.spec.checks import model_task
from specops.spec.kinds import EarlyTermination, Step
from specops.spec.slos import SLO
from specops.spec.sweeps import Choice as Declared, ParamsLines, Range, Space, budget_errors, parse_space, trial_budget

# Azure ML's curated Ubuntu base image; the conda file below adds the locked packages on top.
# Pinned to a dated release: `:latest` would change jobs and deployments under an unchanged spec.
BASE_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:20260514.v1"
PYTHON = "3.11"
# Assets live on the workspace's default datastore; apply uploads a Dataset's file there.
DATASTORE = "azureml://datastores/workspaceblobstore/paths/specops"
MONITOR_COMPUTE = ServerlessSparkCompute(instance_type="standard_e4s_v3", runtime_version="3.4")
# In-flight requests per instance before Azure ML answers 429 when a spec sets none: Azure's own default
# is 1, which throttles any concurrent client; above the inference server's workers, requests queue
# in the container until request_timeout_ms instead.
MAX_CONCURRENT_REQUESTS = 8
COLLECTIONS = ("model_inputs", "model_outputs")  # what Azure ML's data collector records
TRIGGER_VARIABLE = "SPECOPS_TRIGGER_REASON"  # why a pipeline runs: read by the train step, tagged on its model
TRIGGER_INPUT = "trigger_reason"  # the pipeline input that carries it to every step
STATE = "state"  # the folder one pipeline step hands to the next: generated data and artifacts/
# Stages that write to the workspace (runs, gate tags, the registry): Azure ML must run them every time, never
# reuse an earlier run's outputs for the same inputs (what `is_deterministic: true`, the default, allows).
WORKSPACE_WRITERS = ("train", "evaluate", "gate", "register")
# What Azure ML deployments run (tools/azureml-serving.lock): the inference server, its data collector and the
# scoring script's imports, in an Environment of their own; the scoring script, in the code snapshot, serves the
# model through the local endpoint's scorer (raw rows in, the feature set's features computed, same answer).
SERVING_LOCK = "tools/azureml-serving.lock"
SCORING_SCRIPT = "src/specops/serving/azureml_score.py"
SERVING_VARIABLE = "SPECOPS_SERVING"  # the deployment's serving settings, as JSON (read by the scoring script)
HEADER = "# Generated by `specops render` from specs/. Do not edit: change the specs and re-render.\n"

# The SDK logs a notice for every experimental class it touches, on every load: noise for specops' users.
logging.getLogger("azure.ai.ml._utils._experimental").setLevel(logging.ERROR)


@dataclass(frozen=True)
class Rendered:
    """One Azure ML entity, the spec it came from, and what must exist before it."""

    kind: str  # the Azure ML resource type, e.g. OnlineDeployment
    name: str
    entity: Any
    spec: str  # key of the spec document, e.g. Endpoint/credit-risk
    depends_on: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class ProjectFiles:
    """What rendering reads besides specs, read once by the caller (rendering does no I/O)."""

    params: dict[str, Any]
    lock: str
    dev_only: frozenset[str] = frozenset()  # packages of the lock's dev extra: left out of Azure ML environments
    serving_lock: str | None = None  # SERVING_LOCK's text; None: deployments run in the project's environment


def read_project_files(root: Path) -> ProjectFiles:
    params_file, lock_file = root / "params.yaml", root / "requirements.lock"
    params = yaml.safe_load(params_file.read_text()) if params_file.exists() else {}
    if not lock_file.exists():
        raise SpecopsError(f"{lock_file} not found: the Azure ML environment is built from the lock file")
    serving = root / SERVING_LOCK
    return ProjectFiles(params or {}, lock_file.read_text(), dev_tools(), serving.read_text() if serving.exists() else None)


def slug(text: str) -> str:
    """Text fit for a job name and a command line: letters, digits, dashes, underscores."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:40] or "unknown"


def short_hash(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# --- Environment, Data, Model -------------------------------------------------

def locked_requirements(lock: str, dev_only: Iterable[str] = ()) -> list[str]:
    """`name==version` pins of a pip-compile/uv lock, without the packages only `dev_only` tools need.

    The lock's `# via` annotations are its dependency graph: a package stays if something other
    than a dev tool asked for it (a runtime package, or the project itself for a non-dev pin).
    """
    pins, wanted_by = _lock_graph(lock)
    dev = {_canonical(name) for name in dev_only}
    kept: set[str] = set()
    changed = True
    while changed:  # to a fixed point: a package is kept once one of its dependents is
        before = len(kept)
        for name, vias in wanted_by.items():
            if name not in kept and any(v in kept or (v == ROOT and name not in dev) or v == OTHER for v in vias):
                kept.add(name)
        changed = len(kept) != before
    return [pin for name, pin in pins.items() if name in kept or not wanted_by[name]]


ROOT, OTHER = "<project>", "<other>"  # `# via` a pyproject/requirements file of the project, or anything unknown


def _lock_graph(lock: str) -> tuple[dict[str, str], dict[str, set[str]]]:
    """name -> `name==version`, and name -> the names its `# via` lines give."""
    pins: dict[str, str] = {}
    wanted_by: dict[str, set[str]] = {}
    current = ""
    for raw in lock.splitlines():
        line = raw.strip().rstrip("\\").strip()
        if not line or line.startswith("--"):
            continue
        if not line.startswith("#"):
            current = _canonical(line.split("==", 1)[0].split("[", 1)[0])
            pins[current], wanted_by[current] = line, set()
            continue
        via = line.lstrip("#").strip().removeprefix("via").strip()
        if current and via and raw.startswith((" ", "\t")):
            wanted_by[current].add(_via(via))
    return pins, wanted_by


def _via(text: str) -> str:
    if text.endswith(")") or text.startswith("-r"):
        return ROOT  # `specops (pyproject.toml)`, `-r requirements.in`
    name = _canonical(text)
    return name if re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name) else OTHER


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def dev_tools(distribution: str = "specops") -> frozenset[str]:
    """The names in `distribution`'s `dev` extra (tests, linters): what a job or deployment never runs."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        requirements = requires(distribution) or []
    except PackageNotFoundError:
        return frozenset()
    extra = re.compile(r"""extra\s*==\s*["']dev["']""")
    return frozenset(re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0] for r in requirements if extra.search(r))


def environment_name(specs: SpecSet) -> str:
    return f"{specs.project.name}-env"


def render_environment(specs: SpecSet, lock: str, dev_only: Iterable[str] = ()) -> Environment:
    conda = {
        "name": environment_name(specs),
        "channels": ["conda-forge"],
        "dependencies": [f"python={PYTHON}", "pip", {"pip": locked_requirements(lock, dev_only)}],
    }
    # Versioned by the lock's content: an asset version is immutable in Azure ML.
    return Environment(name=environment_name(specs), version=short_hash(lock), image=BASE_IMAGE, conda_file=conda,
                       description=f"{specs.project.name}: {BASE_IMAGE} + requirements.lock")


def serving_environment_name(specs: SpecSet) -> str:
    return f"{specs.project.name}-serving-env"


def render_serving_environment(specs: SpecSet, serving_lock: str) -> Environment:
    """What deployments run: SERVING_LOCK's pins (the inference server and the collector pin packages the
    project's lock holds at other versions), on the same base image."""
    name = serving_environment_name(specs)
    conda = {"name": name, "channels": ["conda-forge"],
             "dependencies": [f"python={PYTHON}", "pip", {"pip": locked_requirements(serving_lock)}]}
    return Environment(name=name, version=short_hash(serving_lock), image=BASE_IMAGE, conda_file=conda,
                       description=f"{specs.project.name} deployments: {BASE_IMAGE} + {SERVING_LOCK}")


def deployment_environment(specs: SpecSet, files: ProjectFiles) -> str:
    """The environment a deployment runs in: the serving one, or the project's where the project has no
    serving lock (then the project's lock must hold azureml-inference-server-http; a plan note says so)."""
    if files.serving_lock is None:
        return f"azureml:{environment_name(specs)}:{short_hash(files.lock)}"
    return f"azureml:{serving_environment_name(specs)}:{short_hash(files.serving_lock)}"


def serving_settings(specs: SpecSet, deployment: str, model: str, endpoint: Endpoint | None = None) -> str:
    """What the scoring script needs to serve `model` as the local endpoint does, as compact JSON: the feature set
    and Dataset of the pipeline that registers the model, and the endpoint's input checks. In the deployment's
    environment variables, so a change of any of them is a planned update of the deployment."""
    name = ModelRef.parse(model).name
    pipeline = next(p for p in specs.of_kind(Pipeline) if p.spec.model_name == name)  # the spec checks guarantee one
    server = endpoint.spec.server if endpoint is not None else None
    settings = {
        "deployment": deployment, "model": model, "endpoint": endpoint.name if endpoint is not None else None,
        "feature_set": specs.require(FeatureSet, pipeline.spec.feature_set).spec.model_dump(mode="json"),
        "dataset": specs.require(Dataset, pipeline.spec.dataset).spec.model_dump(mode="json"),
        "out_of_range": server.out_of_range if server else "reject",
        "max_rows": server.max_rows_per_request if server else None,
    }
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))


def _scoring(specs: SpecSet) -> CodeConfiguration:
    # The code snapshot is the repository, as for pipeline steps: the script imports specops from its src/.
    return CodeConfiguration(code=str(specs.root), scoring_script=SCORING_SCRIPT)


def data_version(dataset: Dataset) -> str:
    return short_hash(dataset.spec.model_dump(mode="json"))


def data_ref(dataset: Dataset) -> str:
    return f"azureml:{dataset.name}:{data_version(dataset)}"


def render_data(dataset: Dataset) -> Data:
    # A path per version: apply uploads the file there (backends/azure_data.py), and a version never changes.
    version = data_version(dataset)
    return Data(name=dataset.name, version=version, type="uri_file",
                path=f"{DATASTORE}/{dataset.name}/{version}/{dataset.spec.path}", description=dataset.spec.description or None)


REFERENCE = "-reference"  # the Data asset monitors compare production with: the Dataset's file as an MLTable


def render_reference_data(dataset: Dataset) -> Data:
    """The Dataset as Azure ML model monitoring reads reference data: an `mltable` asset, the folder holding the
    Dataset's file (at the `uri_file` asset's path) and an MLTable file that says how to read it (mltable_text)."""
    version = data_version(dataset)
    return Data(name=f"{dataset.name}{REFERENCE}", version=version, type="mltable", path=f"{DATASTORE}/{dataset.name}/{version}/",
                description=f"{dataset.name} as monitoring reference data (MLTable over {dataset.spec.path})")


def mltable_text(dataset: Dataset) -> str:
    """The MLTable file beside the Dataset's file: its path relative to the folder and the reader for its format."""
    path = dataset.spec.path.rstrip("/")
    if dataset.spec.format == "csv":
        return (f"paths:\n  - file: ./{path}\ntransformations:\n"
                "  - read_delimited:\n      delimiter: ','\n      header: all_files_same_headers\n      encoding: utf8\n")
    where = f"pattern: ./{path}/**/*.parquet" if not path.endswith(".parquet") else f"file: ./{path}"
    return f"paths:\n  - {where}\ntransformations:\n  - read_parquet\n"


def render_model(pipeline: Pipeline) -> Model:
    """The model the pipeline's register step writes, as an asset pointing at its datastore folder."""
    return Model(name=pipeline.spec.model_name, type="mlflow_model",
                 path=f"{DATASTORE}/models/{pipeline.spec.model_name}/",
                 description=f"registered by pipeline {pipeline.name}")


def model_uri(ref: ModelRef, resolved: str | None = None, registry: str | None = None) -> str:
    """`name@3` -> `azureml:name:3`; `name@alias` -> the version the alias tag is on (`resolved`), else `@latest`.

    Azure ML has no model aliases: the backend resolves them from the `specops.alias.<name>` tags on model
    versions at plan time. The SDK resolves a label only without the `azureml:` prefix. In an environment
    promoted from another, versions are the registry's (`azureml://registries/<registry>/models/name/versions/3`)."""
    version = ref.version or resolved
    if registry is not None:
        return f"azureml://registries/{registry}/models/{ref.name}/" + (f"versions/{version}" if version else "labels/latest")
    return f"azureml:{ref.name}:{version}" if version else f"{ref.name}@latest"


def promotion_registry(specs: SpecSet) -> str | None:
    """The registry an environment promoted from another takes its model versions from (None: it trains its own)."""
    promotion = specs.project.spec.environments[specs.env].promotion
    return promotion.registry if promotion is not None else None


# --- Pipeline: command components, the pipeline job, its schedule ---------------

def sweep_space(params: dict[str, Any], specs: SpecSet, pipeline: Pipeline) -> Space:
    """The params.yaml search space; its mistakes as spec errors (`specops validate` names their lines)."""
    section = params.get(pipeline.spec.params)
    if not isinstance(section, dict):
        raise SpecopsError(f"Pipeline/{pipeline.name}: spec.params names section {pipeline.spec.params!r}, "
                           f"which params.yaml does not have")
    lines = ParamsLines({})
    space, errors = parse_space(pipeline.spec.params, dict(section.get("sweep") or {}), lines)
    errors += budget_errors(pipeline, space, lines, lambda at, message: specs.error(pipeline, at, message))
    if pipeline.spec.sweep.sampling_algorithm == "bayesian" and pipeline.spec.sweep.early_termination:
        errors.append(specs.error(pipeline, ("spec", "sweep", "early_termination"),
                                  "Azure ML's Bayesian sampling takes no early termination policy: use random sampling "
                                  "with early termination, or bayesian without it, for an azureml environment"))
    if errors:
        raise SpecErrors(errors)
    return space


def _step_commands(specs: SpecSet, pipeline: Pipeline) -> list[tuple[str, str]]:
    """(node name, shell command) for custom steps, then the lifecycle stages, in run order."""
    custom = [(node_name(step), step.command) for step in pipeline.spec.steps]
    stages = [(stage, f"python -m specops stage {stage} --pipeline {pipeline.name} --env {specs.env}") for stage in STAGES]
    return custom + stages


def _state_folders(specs: SpecSet, pipeline: Pipeline) -> list[str]:
    """Top-level folders the steps write, handed from node to node (each node runs in a fresh container)."""
    dataset = specs.require(Dataset, pipeline.spec.dataset)
    paths = [dataset.spec.path, "artifacts/", *(out for step in pipeline.spec.steps for out in step.outs)]
    return sorted({p.split("/", 1)[0] for p in paths if "/" in p})


def _component(specs: SpecSet, pipeline: Pipeline, index: int, node: str, command: str,
               sweep: Space, environment: str) -> CommandComponent:
    dataset = specs.require(Dataset, pipeline.spec.dataset)
    folders = " ".join(_state_folders(specs, pipeline))
    inputs: dict[str, Input] = {}
    if index == 0:
        inputs["data"] = Input(type="uri_file")
        restore = f"mkdir -p {posixpath.dirname(dataset.spec.path) or '.'} && cp ${{{{inputs.data}}}} {dataset.spec.path}"
    else:
        inputs[STATE] = Input(type="uri_folder")
        restore = f"cp -r ${{{{inputs.{STATE}}}}}/. ."
    if node == "train":
        for param, declared in sweep.items():
            inputs[param] = Input(type=_input_type(declared))
            command += f" --set {param}=${{{{inputs.{param}}}}}"
    # A pipeline input, not a node's environment variable: sweep nodes drop those, and trials must see it.
    inputs[TRIGGER_INPUT] = Input(type="string")
    # The code snapshot is the repository: src/ on the path, so `python -m specops` finds the package.
    script = (f"export PYTHONPATH=src {TRIGGER_VARIABLE}=${{{{inputs.{TRIGGER_INPUT}}}}} && {restore} && {command} "
              f"&& mkdir -p {folders} && cp -r {folders} ${{{{outputs.{STATE}}}}}/")
    # Data preparation may be reused from an earlier run with the same inputs; what writes to the workspace
    # may not, or a retraining would get the last run's model back. specops submits a job only when the
    # pipeline changed or a retraining was asked for.
    return CommandComponent(
        name=component_name(pipeline, node), version=short_hash(script), display_name=node,
        command=script, code=".", base_path=str(specs.root), environment=environment,
        inputs=inputs, outputs={STATE: Output(type="uri_folder")}, is_deterministic=node not in _never_reused(pipeline),
    )


def _never_reused(pipeline: Pipeline) -> set[str]:
    """Nodes Azure ML must run every time: the workspace writers, and steps that fetch new data (`refresh`)."""
    return {*WORKSPACE_WRITERS, *(node_name(step) for step in pipeline.spec.steps if step.refresh)}


def node_name(step: Step) -> str:
    return step.name.replace("-", "_")  # node names must be Python identifiers in Azure ML pipelines


def component_name(pipeline: Pipeline, node: str) -> str:
    return f"{pipeline.name.replace('-', '_')}_{node}"


def _input_type(declared: Declared | Range) -> str:
    if isinstance(declared, Range):
        return "integer" if declared.integer else "number"
    values = declared.values
    if all(isinstance(v, bool) for v in values):
        return "boolean"
    if all(isinstance(v, int) for v in values):
        return "integer"
    if all(isinstance(v, (int, float)) for v in values):
        return "number"
    return "string"


def compute_name(specs: SpecSet) -> str:
    """The environment's compute cluster; serverless compute where it names none (pipeline jobs only:
    the spec checks refuse a batch endpoint without a cluster)."""
    return specs.project.spec.environments[specs.env].compute or "serverless"


def render_components(specs: SpecSet, pipeline: Pipeline, files: ProjectFiles) -> dict[str, CommandComponent]:
    """Node name -> command component, in run order."""
    sweep = sweep_space(files.params, specs, pipeline)
    environment = f"azureml:{environment_name(specs)}:{short_hash(files.lock)}"
    return {node: _component(specs, pipeline, i, node, command, sweep, environment)
            for i, (node, command) in enumerate(_step_commands(specs, pipeline))}


def render_pipeline_job(specs: SpecSet, pipeline: Pipeline, files: ProjectFiles, trigger_reason: str = "apply") -> PipelineJob:
    """The pipeline as one job; `trigger_reason` (apply, schedule, drift, manual, ...) reaches every step
    as SPECOPS_TRIGGER_REASON, as on the local backend, and is recorded on the job and its model.
    It is made a slug first: it lands in a shell command line."""
    components = render_components(specs, pipeline, files)
    sweep = sweep_space(files.params, specs, pipeline)
    seed = (files.params.get(pipeline.spec.params) or {}).get("seed", 0)
    dataset = specs.require(Dataset, pipeline.spec.dataset)
    jobs, previous = {}, None
    for node, component in components.items():
        bindings = {"data": "${{parent.inputs.data}}"} if previous is None else {
            STATE: f"${{{{parent.jobs.{previous}.outputs.{STATE}}}}}"}
        job = component(**bindings, **{TRIGGER_INPUT: f"${{{{parent.inputs.{TRIGGER_INPUT}}}}}"})
        jobs[node] = _sweep(job, pipeline, sweep, seed) if node == "train" and sweep else job
        previous = node
    return PipelineJob(
        display_name=pipeline.name, experiment_name=pipeline.name, description=pipeline.spec.description or None,
        inputs={"data": Input(type="uri_file", path=data_ref(dataset)), TRIGGER_INPUT: slug(trigger_reason)},
        jobs=jobs, settings=PipelineJobSettings(default_compute=compute_name(specs)),
        tags={"specops.pipeline": pipeline.name, "specops.model": pipeline.spec.model_name,
              "specops.trigger_reason": slug(trigger_reason)},
    )


def _sweep(job: Any, pipeline: Pipeline, space: Space, seed: int) -> Any:
    """The train node as a sweep job, with the Pipeline's sampling, early termination and limits in Azure ML's own
    fields; Azure ML picks the best trial by the selection metric, which train logs at every rung."""
    sweep = pipeline.spec.sweep
    sampling: Any = RandomSamplingAlgorithm(seed=seed) if sweep.sampling_algorithm == "random" else sweep.sampling_algorithm
    node = job.sweep(primary_metric=pipeline.spec.selection.metric, goal=pipeline.spec.selection.goal,
                     sampling_algorithm=sampling, search_space={p: _search_expression(d) for p, d in space.items()},
                     early_termination_policy=_early_termination(sweep.early_termination))
    trials = trial_budget(sweep, space)
    timeout = int(duration_seconds(sweep.limits.timeout)) if sweep.limits.timeout else None
    node.set_limits(max_total_trials=trials, max_concurrent_trials=sweep.concurrent_trials or trials, timeout=timeout)
    return node


def _search_expression(declared: Declared | Range) -> Any:
    if isinstance(declared, Declared):
        return Choice(list(declared.values))
    if declared.integer:  # every integer in the range, both ends included (Randint starts at 0)
        return Choice(list(range(int(declared.low), int(declared.high) + 1)))
    if declared.log:  # LogUniform draws exp(uniform(min_value, max_value))
        return LogUniform(min_value=math.log(declared.low), max_value=math.log(declared.high))
    return Uniform(min_value=declared.low, max_value=declared.high)


def _early_termination(policy: EarlyTermination | None) -> Any:
    if policy is None:
        return None
    timing = {"evaluation_interval": policy.evaluation_interval, "delay_evaluation": policy.delay_evaluation}
    if policy.policy == "median_stopping":
        return MedianStoppingPolicy(**timing)
    if policy.policy == "truncation_selection":
        return TruncationSelectionPolicy(truncation_percentage=policy.truncation_percentage or 0, **timing)
    return BanditPolicy(slack_factor=policy.slack_factor or 0, slack_amount=policy.slack_amount or 0, **timing)


def job_schedule_name(pipeline: Pipeline) -> str:
    return f"{pipeline.name}-schedule"


def render_job_schedule(specs: SpecSet, pipeline: Pipeline, files: ProjectFiles) -> JobSchedule | None:
    cron = pipeline.spec.triggers.schedule
    if cron is None:
        return None
    return JobSchedule(name=job_schedule_name(pipeline), trigger=CronTrigger(expression=cron, time_zone="UTC"),
                       create_job=render_pipeline_job(specs, pipeline, files, trigger_reason="schedule"))


# --- online and batch endpoints ------------------------------------------------

def render_online_endpoint(endpoint: Endpoint) -> ManagedOnlineEndpoint:
    spec = endpoint.spec
    return ManagedOnlineEndpoint(name=endpoint.name, auth_mode=spec.auth_mode, description=spec.description or None,
                                 traffic=dict(spec.traffic), mirror_traffic=dict(spec.mirror_traffic))


def _probe(probe: ProbeSettings) -> AzureProbeSettings:
    return AzureProbeSettings(**probe.model_dump())


def render_online_deployments(specs: SpecSet, endpoint: Endpoint, files: ProjectFiles,
                              versions: Mapping[str, str] | None = None) -> list[ManagedOnlineDeployment]:
    """Each deployment with specops' scoring script in the serving environment. `versions`: the concrete model
    version each `@alias` reference stands for now (deployment name -> version), resolved by the backend at plan
    time; a reference missing from it renders as `@latest`."""
    deployments = []
    for d in endpoint.spec.deployments:
        collector = None
        if d.data_collector.enabled:
            # One DeploymentCollection each: the SDK writes the registered data asset id into it.
            collector = AzureDataCollector(collections={c: DeploymentCollection(enabled="true") for c in COLLECTIONS},
                                           sampling_rate=d.data_collector.sampling_rate)
        settings = d.request_settings
        variables = {**d.environment_variables, SERVING_VARIABLE: serving_settings(specs, d.name, d.model, endpoint)}
        deployments.append(ManagedOnlineDeployment(
            name=d.name, endpoint_name=endpoint.name,
            model=model_uri(d.model_ref, (versions or {}).get(d.name), promotion_registry(specs)),
            instance_type=d.instance_type, instance_count=d.instance_count,
            code_configuration=_scoring(specs), environment=deployment_environment(specs, files),
            environment_variables=variables,
            request_settings=OnlineRequestSettings(
                request_timeout_ms=settings.request_timeout_ms,
                max_concurrent_requests_per_instance=settings.max_concurrent_requests_per_instance or MAX_CONCURRENT_REQUESTS),
            liveness_probe=_probe(d.liveness_probe), readiness_probe=_probe(d.readiness_probe),
            data_collector=collector,
            # Requests, logs and specops' custom metrics (serving/azure_telemetry.py) go to the workspace's
            # App Insights, which the workbook and alert rules in infra/ read.
            app_insights_enabled=True,
        ))
    return deployments


def render_batch_endpoint(endpoint: BatchEndpoint) -> AzureBatchEndpoint:
    return AzureBatchEndpoint(name=endpoint.name, description=endpoint.spec.description or None,
                              defaults={"deployment_name": endpoint.spec.default_deployment})


def render_batch_deployments(specs: SpecSet, endpoint: BatchEndpoint, files: ProjectFiles,
                             versions: Mapping[str, str] | None = None) -> list[ModelBatchDeployment]:
    """Each batch deployment on the environment's cluster; `versions` as for render_online_deployments."""
    return [
        ModelBatchDeployment(
            name=d.name, endpoint_name=endpoint.name,
            model=model_uri(d.model_ref, (versions or {}).get(d.name), promotion_registry(specs)),
            compute=compute_name(specs),
            code_configuration=_scoring(specs), environment=deployment_environment(specs, files),
            # instance_count goes in `resources`: the loader rejects it in both places, as _to_dict writes it.
            resources=ResourceConfiguration(instance_count=d.instance_count),
            settings=ModelBatchDeploymentSettings(
                mini_batch_size=d.mini_batch_size,
                max_concurrency_per_instance=d.max_concurrency_per_instance, output_action=d.output_action,
                output_file_name=d.output_file_name, error_threshold=d.error_threshold,
                retry_settings=BatchRetrySettings(max_retries=d.retry_settings.max_retries, timeout=d.retry_settings.timeout),
                environment_variables={**d.environment_variables, SERVING_VARIABLE: serving_settings(specs, d.name, d.model)},
            ),
        )
        for d in endpoint.spec.deployments
    ]


# --- monitors ------------------------------------------------------------------

def monitored_deployment(endpoint: Endpoint) -> str:
    """The deployment taking the most live traffic: the one whose collected inputs are monitored."""
    return max(endpoint.spec.traffic.items(), key=lambda item: (item[1], item[0]))[0]


def render_monitor_schedule(specs: SpecSet, monitor: Monitor) -> MonitorSchedule:
    dataset = baseline_dataset(specs, monitor)
    endpoint = specs.require(Endpoint, monitor.spec.target.endpoint)
    deployment = monitored_deployment(endpoint)
    served = endpoint.spec.deployment(deployment)
    task = model_task(specs, served.model_ref.name if served else None)
    definition = MonitorDefinition(
        compute=MONITOR_COMPUTE,
        monitoring_target=MonitoringTarget(ml_task="regression" if task == "regression" else "classification",
                                           endpoint_deployment_id=f"azureml:{endpoint.name}:{deployment}"),
        monitoring_signals=_monitor_signals(monitor, MonitorData(dataset, f"{endpoint.name}-{deployment}",
                                                                 monitor.spec.target)),
        # Alerts as Azure Monitor alerts, where the infra's action group and alert rules route them
        # (infra/*/monitoring): the Monitor's `notify` webhook is the local backend's.
        alert_notification="azmonitoring",
    )
    return MonitorSchedule(name=monitor.name, trigger=CronTrigger(expression=monitor.spec.schedule, time_zone="UTC"),
                           create_monitor=definition, description=monitor.spec.description or None)


# The Monitor blocks Azure ML model monitoring has a signal for, by the name each signal gets in the schedule.
# Data drift is always on (the spec's block has a default); the others only when declared, as on the local
# backend, so one spec asks for the same signals on both. `performance` and `fairness` have no Azure ML
# signal that means the same: they are plan notes (see _monitor_notes).
SIGNAL_NAMES = {"data_drift": "data-drift", "prediction_drift": "prediction-drift", "data_quality": "data-quality",
                "feature_attribution_drift": "feature-attribution-drift"}


@dataclass(frozen=True)
class MonitorData:
    """What every signal of one monitor reads: the baseline Dataset, the deployment's collected data, the window."""

    dataset: Dataset
    collected: str  # `<endpoint>-<deployment>`: Azure ML's data collector registers `<collected>-<collection>`
    target: Target  # the Monitor's spec.target: its lookback window

    def reference(self) -> ReferenceData:
        reference = f"azureml:{self.dataset.name}{REFERENCE}:{data_version(self.dataset)}"
        return ReferenceData(input_data=Input(type="mltable", path=reference), data_context=MonitorDatasetContext.TRAINING,
                             data_column_names={"target_column": self.dataset.spec.target})

    def production(self, collection: str) -> ProductionData:
        return ProductionData(input_data=self._collected(collection), data_context=MonitorDatasetContext(collection),
                              data_window=self._window())

    def attribution_production(self) -> list[FADProductionData]:
        # Feature attribution reads inputs and predictions together, each collection on its own.
        return [FADProductionData(input_data=self._collected(c), data_context=MonitorDatasetContext(c), data_window=self._window())
                for c in COLLECTIONS]

    def _collected(self, collection: str) -> Input:
        return Input(type="uri_folder", path=f"azureml:{self.collected}-{collection}:1")

    def _window(self) -> BaselineDataRange:
        offset = self.target.lookback_window_offset
        return BaselineDataRange(lookback_window_size=iso(self.target.lookback_window_size),
                                 lookback_window_offset=iso(offset) if offset else "P0D")


def _monitor_signals(monitor: Monitor, data: MonitorData) -> dict[str, Any]:
    features = monitored_features(data.dataset, monitor)
    renderers = {
        "data_drift": lambda block: _data_drift_signal(block, data, features),
        "prediction_drift": lambda block: _prediction_drift_signal(block, data),
        "data_quality": lambda block: _data_quality_signal(block, data, features),
        "feature_attribution_drift": lambda block: _feature_attribution_signal(block, data),
    }
    blocks = ((field, getattr(monitor.spec, field)) for field in SIGNAL_NAMES)
    return {SIGNAL_NAMES[field]: renderers[field](block) for field, block in blocks if block is not None}


def _drift_metrics(signals: Signals) -> dict[str, Any]:
    """The spec's thresholds per feature type, in Azure ML's own metric classes (same metric names)."""
    return {"numerical": _numerical_drift(signals.numerical) if signals.numerical else None,
            "categorical": CategoricalDriftMetrics(**signals.categorical) if signals.categorical else None}


def _numerical_drift(thresholds: Mapping[str, float]) -> NumericalDriftMetrics:
    # Each metric by keyword, not **thresholds: the class also takes a `metric` name, which no threshold fits.
    return NumericalDriftMetrics(jensen_shannon_distance=thresholds.get(JSD), normalized_wasserstein_distance=thresholds.get(NWD),
                                 population_stability_index=thresholds.get(PSI),
                                 two_sample_kolmogorov_smirnov_test=thresholds.get(KS))


def _categorical_overrides(features: Mapping[str, str]) -> dict[str, str] | None:
    return {name: kind for name, kind in features.items() if kind == "categorical"} or None


def _data_drift_signal(block: DataDrift, data: MonitorData, features: Mapping[str, str]) -> DataDriftSignal:
    return DataDriftSignal(
        production_data=data.production("model_inputs"), reference_data=data.reference(), alert_enabled=True,
        features=list(features), feature_type_override=_categorical_overrides(features),
        metric_thresholds=DataDriftMetricThreshold(**_drift_metrics(block.signals())))


def _prediction_drift_signal(block: PredictionDrift, data: MonitorData) -> PredictionDriftSignal:
    # Predictions are what the data collector records as model_outputs.
    return PredictionDriftSignal(
        production_data=data.production("model_outputs"), reference_data=data.reference(), alert_enabled=True,
        metric_thresholds=PredictionDriftMetricThreshold(**_drift_metrics(block.signals())))


def _data_quality_signal(block: DataQuality, data: MonitorData, features: Mapping[str, str]) -> DataQualitySignal:
    rates = block.metric_thresholds
    return DataQualitySignal(
        production_data=data.production("model_inputs"), reference_data=data.reference(), alert_enabled=True,
        features=list(features), feature_type_override=_categorical_overrides(features),
        metric_thresholds=DataQualityMetricThreshold(
            numerical=DataQualityMetricsNumerical(**rates.numerical) if rates.numerical else None,
            categorical=DataQualityMetricsCategorical(**rates.categorical) if rates.categorical else None))


def _feature_attribution_signal(block: FeatureAttributionDrift, data: MonitorData) -> FeatureAttributionDriftSignal:
    return FeatureAttributionDriftSignal(
        production_data=data.attribution_production(), reference_data=data.reference(), alert_enabled=True,
        metric_thresholds=FeatureAttributionDriftMetricThreshold(
            normalized_discounted_cumulative_gain=block.metric_thresholds[NDCG]))


# --- everything ----------------------------------------------------------------

def render_entities(specs: SpecSet, files: ProjectFiles, trigger_reason: str = "apply",
                    versions: Mapping[str, Mapping[str, str]] | None = None) -> list[Rendered]:
    """Every Azure ML entity the specs ask for, with its dependencies (by Rendered.key).

    `OnlineTraffic/<endpoint>` is the backend's name for an endpoint's traffic, applied after its deployments.
    `versions`: endpoint (a batch endpoint by its key) -> deployment -> the model version its `@alias` stands for
    (see render_online_deployments).
    """
    environment = render_environment(specs, files.lock, files.dev_only)
    out = [Rendered("Environment", environment_name(specs), environment, specs.project.key)]
    env_key = out[0].key
    serving_key = env_key
    deployed = bool(specs.of_kind(Endpoint)) or bool(specs.of_kind(BatchEndpoint))
    if files.serving_lock is not None and deployed:
        serving = Rendered("Environment", serving_environment_name(specs), render_serving_environment(specs, files.serving_lock),
                           specs.project.key)
        out.append(serving)
        serving_key = serving.key
    out += [Rendered("Data", d.name, render_data(d), d.key) for d in specs.of_kind(Dataset)]
    references = sorted({baseline_dataset(specs, m).name for m in specs.of_kind(Monitor)})
    out += [Rendered("Data", f"{name}{REFERENCE}", render_reference_data(specs.require(Dataset, name)),
                     specs.require(Dataset, name).key, (f"Data/{name}",)) for name in references]
    for pipeline in [] if promotion_registry(specs) else specs.of_kind(Pipeline):  # a promoted environment never trains
        out += _pipeline_entities(specs, pipeline, files, env_key, trigger_reason)
    for endpoint in specs.of_kind(Endpoint):
        out += _online_entities(specs, endpoint, files, serving_key, (versions or {}).get(endpoint.name))
    for batch in specs.of_kind(BatchEndpoint):
        out += _batch_entities(specs, batch, files, serving_key, (versions or {}).get(batch.key))
    for monitor in specs.of_kind(Monitor):
        schedule = render_monitor_schedule(specs, monitor)
        # After the endpoint's traffic: the monitored deployment is the one taking the most of it.
        deps = (f"OnlineTraffic/{monitor.spec.target.endpoint}", f"Data/{baseline_dataset(specs, monitor).name}{REFERENCE}")
        out.append(Rendered("MonitorSchedule", monitor.name, schedule, monitor.key, deps))
    return out


def _pipeline_entities(specs: SpecSet, pipeline: Pipeline, files: ProjectFiles, env_key: str,
                       trigger_reason: str) -> list[Rendered]:
    deps = (env_key, f"Data/{pipeline.spec.dataset}")
    out = [Rendered("CommandComponent", component_name(pipeline, node), c, pipeline.key, deps)
           for node, c in render_components(specs, pipeline, files).items()]
    job = render_pipeline_job(specs, pipeline, files, trigger_reason)
    out.append(Rendered("PipelineJob", pipeline.name, job, pipeline.key, deps))
    out.append(Rendered("Model", pipeline.spec.model_name, render_model(pipeline), pipeline.key, (f"PipelineJob/{pipeline.name}",)))
    schedule = render_job_schedule(specs, pipeline, files)
    if schedule is not None:
        out.append(Rendered("JobSchedule", job_schedule_name(pipeline), schedule, pipeline.key, deps))
    return out


def _online_entities(specs: SpecSet, endpoint: Endpoint, files: ProjectFiles, environment: str,
                     versions: Mapping[str, str] | None) -> list[Rendered]:
    out = [Rendered("OnlineEndpoint", endpoint.name, render_online_endpoint(endpoint), endpoint.key)]
    deps = (f"OnlineEndpoint/{endpoint.name}", environment)
    out += [Rendered("OnlineDeployment", f"{endpoint.name}.{d.name}", d, endpoint.key, deps)
            for d in render_online_deployments(specs, endpoint, files, versions)]
    return out


def _batch_entities(specs: SpecSet, endpoint: BatchEndpoint, files: ProjectFiles, environment: str,
                    versions: Mapping[str, str] | None) -> list[Rendered]:
    out = [Rendered("BatchEndpoint", endpoint.name, render_batch_endpoint(endpoint), endpoint.key)]
    deps = (f"BatchEndpoint/{endpoint.name}", environment)
    out += [Rendered("BatchDeployment", f"{endpoint.name}.{d.name}", d, endpoint.key, deps)
            for d in render_batch_deployments(specs, endpoint, files, versions)]
    return out


def azureml_notes(specs: SpecSet) -> list[str]:
    """What the specs ask for that Azure ML has no counterpart for: said in the plan, never dropped silently.

    Each note starts with the key of the document it is about (`Monitor/credit-drift: ...`).
    """
    return [*_pipeline_notes(specs), *_endpoint_notes(specs), *_monitor_notes(specs), *_slo_notes(specs)]


def _pipeline_notes(specs: SpecSet) -> Iterable[str]:
    environment = specs.project.spec.environments[specs.env]
    if environment.promotion is not None:
        yield (f"{specs.project.key}: {specs.env} trains nothing: its deployments serve the versions "
               f"{environment.promotion.source} promoted, from registry {environment.promotion.registry}")
        return
    for target, registry in specs.project.spec.promoted_from(specs.env).items():
        yield (f"{specs.project.key}: each version {specs.env}'s rollouts promote is shared into registry {registry}, "
               f"for {target}")
    if environment.compute is None:
        yield (f"{specs.project.key}: spec.environments.{specs.env}.compute is not set: "
               "pipeline jobs run on serverless compute")
    for pipeline in specs.of_kind(Pipeline):
        if pipeline.spec.triggers.data_change:
            yield (f"Pipeline/{pipeline.name}: spec.triggers.data_change has no Azure ML trigger; "
                   "CI runs the pipeline when DVC-tracked data changes")
        if pipeline.spec.feedback is not None:
            yield (f"Pipeline/{pipeline.name}: spec.feedback (labelled production rows joining the training data) is "
                   "exported by the local backend only; an Azure ML retraining trains on the Dataset alone")
    for feature_set in specs.of_kind(FeatureSet):
        yield (f"FeatureSet/{feature_set.name}: spec.refresh (local feature cache refresh) has no Azure ML counterpart; "
               "features are computed inside each pipeline run")


def _endpoint_notes(specs: SpecSet) -> Iterable[str]:
    for endpoint in specs.of_kind(Endpoint):
        where = f"Endpoint/{endpoint.name}"
        yield from _rollout_notes(where, endpoint.spec.rollout)
        yield f"{where}: spec.server (port, workers, batching) configures the local server only"
        for d in endpoint.spec.deployments:
            if d.model_ref.alias:
                yield (f"{where}: deployment {d.name} uses {d.model}; Azure ML has no model aliases: the plan deploys the "
                       f"version tagged specops.alias.{d.model_ref.alias} (the latest version while none is)")
    for batch in specs.of_kind(BatchEndpoint):
        yield (f"BatchEndpoint/{batch.name}: spec.dataset and spec.output_path are inputs of each "
               "batch invocation on Azure ML, not part of the endpoint")


def _rollout_notes(where: str, rollout: Rollout | None) -> Iterable[str]:
    """What of a rollout Azure ML apply cannot do: it walks canary weights and live-metric analyses, nothing else."""
    if isinstance(rollout, (ABRollout, BanditRollout)):
        yield (f"{where}: spec.rollout.strategy {rollout.strategy} runs only on the local backend; "
               "Azure ML keeps the declared traffic weights fixed")
    if isinstance(rollout, CanaryRollout):
        if any(s.pause is not None and s.pause.duration is None for s in rollout.steps):
            yield (f"{where}: spec.rollout pauses without a duration (wait for a person) run on the local backend only; "
                   "on Azure ML apply goes on to the next step")
        if any(s.analysis for s in rollout.steps):
            yield (f"{where}: spec.rollout analysis on Azure ML reads Azure Monitor (requests, 5xx/408/424, p95); "
                   "checks on labelled feedback (accuracy) and SLO budgets run on the local backend only")
        load_tests = [f"steps[{i}].load_test" for i, s in enumerate(rollout.steps) if s.load_test is not None]
        if load_tests:
            yield (f"{where}: spec.rollout.{', '.join(load_tests)} run only on the local backend (locust against "
                   "the local server); on Azure ML the canary weights are applied without a load test")
    if isinstance(rollout, BlueGreenRollout):
        if rollout.pre_promotion_load_test is not None:
            yield (f"{where}: spec.rollout.pre_promotion_load_test runs only on the local backend (locust against "
                   "the local server); on Azure ML the traffic switches without a load test")
        gates = [f for f in ("pre_promotion_analysis", "post_promotion_analysis") if getattr(rollout, f) is not None]
        yield (f"{where}: spec.rollout blue-green {', '.join([*gates, 'auto_promotion_enabled'])} "
               "run on the local backend only; on Azure ML the declared traffic switches at once")


def _monitor_notes(specs: SpecSet) -> Iterable[str]:
    for monitor in specs.of_kind(Monitor):
        where = f"Monitor/{monitor.name}"
        yield from _local_only_signals(specs, where, monitor)
        yield (f"{where}: spec.min_target_rows ({monitor.spec.min_target_rows}) runs only on the local backend; "
               "Azure ML judges a window of any size")
        runs = runs_per_day(monitor.spec.schedule)
        window = duration_seconds(monitor.spec.target.lookback_window_size)
        if runs > 1 and runs * window > 86400 * 1.5:
            yield (f"{where}: spec.schedule runs {runs} times a day over a {monitor.spec.target.lookback_window_size} "
                   f"window: on Azure ML that is {runs} serverless Spark jobs a day over overlapping data; "
                   "schedule it once per window")
        if monitor.spec.baseline.champion is not None:
            yield (f"{where}: spec.baseline.champion: Azure ML compares against the champion's whole training Dataset "
                   f"({baseline_dataset(specs, monitor).name}), not only its training rows")
        yield from _alert_action_notes(where, monitor)


def runs_per_day(cron: str) -> int:
    """How often a cron expression fires in one day (a fixed UTC day: the count, not the date, matters)."""
    from croniter import croniter

    start = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
    fires = croniter(cron, start - timedelta(microseconds=1))
    count = 0
    while fires.get_next(datetime) < start + timedelta(days=1) and count <= 1440:
        count += 1
    return count


def _local_only_signals(specs: SpecSet, where: str, monitor: Monitor) -> Iterable[str]:
    spec = monitor.spec
    if spec.performance is not None:
        metrics = ", ".join(f"{m} by {drop:g}" for m, drop in spec.performance.max_drop.items())
        yield (f"{where}: spec.performance (a drop of {metrics} below the champion's evaluation, on /feedback labels) "
               "runs only on the local backend; Azure ML's model performance signal needs a ground-truth data asset "
               "and takes fixed thresholds, not a drop from the champion")
    if spec.fairness is not None:
        column = sensitive_column(baseline_dataset(specs, monitor), monitor)
        yield (f"{where}: spec.fairness (demographic parity difference across {column}) runs only on the local backend; "
               "Azure ML model monitoring has no fairness signal")
    attribution = spec.feature_attribution_drift
    if attribution is not None and attribution.model == "challenger":
        yield (f"{where}: spec.feature_attribution_drift.model challenger runs only on the local backend; "
               "Azure ML computes the attribution drift of the monitored deployment's data")


def _alert_action_notes(where: str, monitor: Monitor) -> Iterable[str]:
    actions = monitor.spec.actions
    for field, value in (("retrain", actions.retrain), ("rollback", actions.rollback), ("notify", actions.notify)):
        if value is not None:
            yield (f"{where}: spec.actions.{field} has no Azure ML monitor counterpart "
                   "(Azure ML only e-mails alerts); the specops controller acts on the alert")


def _slo_notes(specs: SpecSet) -> Iterable[str]:
    for slo in specs.of_kind(SLO):
        objectives = ", ".join(o.key for o in slo.spec.objectives)
        yield (f"SLO/{slo.name}: local only ({objectives} over the local inference log and /metrics); Azure ML has "
               "no SLO entity: on Azure use Azure Monitor alerts on the endpoint's metrics")
    for gate in specs.of_kind(Gate):
        for name in sorted({c.slo for c in gate.spec.checks if c.slo is not None}):
            yield (f"Gate/{gate.name}: check slo {name} reads the local inference log; in an Azure ML pipeline run "
                   "there is none, so the check passes with no data (no release freeze)")


# --- Azure ML CLI v2 YAML --------------------------------------------------------

YAML_FOLDERS = {
    "Environment": "environments", "Data": "data", "Model": "models", "CommandComponent": "components",
    "PipelineJob": "jobs", "JobSchedule": "schedules", "MonitorSchedule": "schedules",
    "OnlineEndpoint": "online-endpoints", "OnlineDeployment": "online-deployments",
    "BatchEndpoint": "batch-endpoints", "BatchDeployment": "batch-deployments",
}


def entity_dict(rendered: Rendered, root: Path, code: str = ".") -> dict[str, Any]:
    """The entity as plain data (its CLI v2 YAML shape), with the code snapshot path made `code`."""
    plain = json.loads(json.dumps(rendered.entity._to_dict(), default=str))
    return _replace_code(plain, str(root), code)


def _replace_code(value: Any, root: str, code: str) -> Any:
    if isinstance(value, dict):
        return {k: code if k == "code" and v == root else _replace_code(v, root, code) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_code(v, root, code) for v in value]
    return value


def render_azureml(specs: SpecSet, out_dir: Path | str, versions: Mapping[str, Mapping[str, str]] | None = None) -> list[Path]:
    """Write Azure ML CLI v2 YAML for every entity under out_dir; return the files written. `versions`: as for
    render_entities (without them, `@alias` deployments are written as `@latest`)."""
    out_dir = Path(out_dir)
    written = []
    for rendered in render_entities(specs, read_project_files(specs.root), versions=versions):
        path = out_dir / YAML_FOLDERS[rendered.kind] / f"{rendered.name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        code = Path(os.path.relpath(specs.root, path.parent)).as_posix()
        document = entity_dict(rendered, specs.root, code)
        if rendered.kind == "JobSchedule":
            # The CLI schema takes a schedule's pipeline job as a file reference, not inline; it is its own
            # file, since it runs with trigger_reason=schedule.
            job_file = out_dir / YAML_FOLDERS["PipelineJob"] / f"{rendered.entity.create_job.display_name}-scheduled.yaml"
            job_file.parent.mkdir(parents=True, exist_ok=True)  # as deep as schedules/: the same relative code path
            job_file.write_text(HEADER + yaml.safe_dump(document["create_job"], sort_keys=False, width=120))
            written.append(job_file)
            document["create_job"] = f"../{job_file.parent.name}/{job_file.name}"
        body = yaml.safe_dump(document, sort_keys=False, width=120)
        path.write_text(HEADER + body)
        written.append(path)
    return written
