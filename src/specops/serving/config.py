"""What one endpoint server hosts, resolved once in the parent process.

Aliases are resolved to versions and model files are downloaded here, before
any worker starts, so every worker serves the same version even if an alias
moves meanwhile, and no worker touches the registry. A deployment that cannot
be resolved keeps its error and is served as not ready.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, TypeAdapter, with_config

from specops.core.durations import seconds
from specops.core.files import atomic_write
from specops.spec import Dataset, FeatureSet, Pipeline, SpecSet
from specops.spec.endpoints import Endpoint, ModelRef


FEATURE_SET_TAG = "lineage.feature_set"  # set on every version the register stage creates


@with_config(ConfigDict(extra="forbid", strict=True))
@dataclass
class DeploymentConfig:
    name: str
    model: str  # the spec's reference, e.g. credit-risk@champion
    version: str | None = None
    model_path: str | None = None  # local copy of the model version's files
    feature_set: dict[str, Any] = field(default_factory=dict)  # FeatureSetSpec as JSON
    dataset: dict[str, Any] = field(default_factory=dict)  # DatasetSpec as JSON
    request_timeout_ms: int = 5000
    max_concurrent_requests: int | None = None
    sampling_rate: float = 1.0  # 0 when the data collector is off
    out_of_range: Literal["reject", "flag"] = "reject"  # the endpoint's server.out_of_range
    max_rows: int | None = None  # the endpoint's server.max_rows_per_request
    error: str | None = None  # why it cannot serve


@with_config(ConfigDict(extra="forbid", strict=True))
@dataclass
class ServingConfig:
    endpoint: str
    state_dir: str
    deployments: list[DeploymentConfig]
    traffic: dict[str, int]
    mirror_traffic: dict[str, int]
    port: int
    workers: int
    max_batch_size: int
    max_wait_ms: float
    max_request_bytes: int
    log_rotate_bytes: int = 64 << 20  # server.inference_log: a new file past this size,
    log_max_bytes: int = 2048 << 20  # the oldest hours deleted past this in all,
    log_retention_s: float = 35 * 86400  # and files older than this
    revision: int = 0  # bumped by every reload; workers report the revision they serve
    slots: list[str] = field(default_factory=list)  # every deployment name served so far, in metric-slot order

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps(asdict(self), indent=2))  # running workers reload it: never half a file

    @classmethod
    def load(cls, path: Path) -> ServingConfig:
        """The file `save` wrote, checked field by field (pydantic): raises ValueError for any other shape."""
        return _CONFIG.validate_json(path.read_bytes())


_CONFIG = TypeAdapter(ServingConfig)


def worker_status_file(state_dir: str | Path, worker: int) -> Path:
    """What one worker of a running server serves: {"revision", "deployments"} (written by the worker)."""
    return Path(state_dir) / "workers" / f"{worker}.json"


def find_endpoint(specs: SpecSet, name: str) -> Endpoint:
    return specs.require(Endpoint, name)


def resolve_endpoint(specs: SpecSet, name: str) -> ServingConfig:
    spec, state_dir = find_endpoint(specs, name).spec, specs.paths.endpoint(name)
    from specops.registry import connect  # MLflow is slow to import: only when resolving

    client = connect(specs)
    deployments = [_resolve_deployment(specs, client, state_dir, d) for d in spec.deployments]
    server = spec.server
    for deployment in deployments:
        deployment.out_of_range, deployment.max_rows = server.out_of_range, server.max_rows_per_request
    return ServingConfig(
        endpoint=name, state_dir=str(state_dir), deployments=deployments,
        traffic=dict(spec.traffic), mirror_traffic=dict(spec.mirror_traffic), port=server.port,
        workers=server.workers, max_batch_size=server.max_batch_size, max_wait_ms=server.max_wait_ms,
        max_request_bytes=server.max_request_bytes,
        log_rotate_bytes=int(server.inference_log.rotate_size_mb * (1 << 20)),
        log_max_bytes=int(server.inference_log.max_size_mb * (1 << 20)),
        log_retention_s=seconds(server.inference_log.retention),
    )


def _resolve_deployment(specs: SpecSet, client, state_dir: Path, deployment) -> DeploymentConfig:
    config = DeploymentConfig(
        name=deployment.name, model=deployment.model,
        request_timeout_ms=deployment.request_settings.request_timeout_ms,
        max_concurrent_requests=deployment.request_settings.max_concurrent_requests_per_instance,
        sampling_rate=deployment.data_collector.sampling_rate if deployment.data_collector.enabled else 0.0,
    )
    return resolve_model(specs, client, state_dir, config)


def resolve_model(specs: SpecSet, client, state_dir: Path, config: DeploymentConfig) -> DeploymentConfig:
    """Fill in `config`'s version, local model copy, feature set and dataset, or its error.

    Shared by the endpoint server and batch scoring, so both refuse the same models.
    """
    ref = ModelRef.parse(config.model)
    pipeline = next(p for p in specs.of_kind(Pipeline) if p.spec.model_name == ref.name)  # the checks guarantee one
    feature_set = specs.require(FeatureSet, pipeline.spec.feature_set)
    config.feature_set = feature_set.spec.model_dump(mode="json")
    config.dataset = specs.require(Dataset, pipeline.spec.dataset).spec.model_dump(mode="json")
    try:
        found = client.get_model_version_by_alias(ref.name, ref.alias) if ref.alias else client.get_model_version(ref.name, ref.version)
        config.version = str(found.version)  # MLflow returns an int or a str depending on the store
        config.error = _feature_set_mismatch(found.tags, feature_set)
        config.model_path = None if config.error else _download(state_dir, ref.name, config.version)
    except Exception as exc:  # any registry failure makes this deployment unready, not the server dead
        config.error = f"cannot load model {config.model}: {first_line(exc)}"
    return config


def _feature_set_mismatch(tags: dict[str, str], feature_set: FeatureSet) -> str | None:
    """Same feature names can hide a changed transform: the version the model was trained on must match."""
    trained_on = tags.get(FEATURE_SET_TAG)
    serving = f"{feature_set.name}@v{feature_set.spec.version}"
    if trained_on is None or trained_on == serving:
        return None
    return f"the model was trained on feature set {trained_on}, but the specs declare {serving}"


def _download(state_dir: Path, model_name: str, version: str) -> str:
    """Copy the version's files once; registered versions are immutable, so a copy never goes stale."""
    import mlflow.artifacts

    target = state_dir / "models" / f"{model_name}-v{version}"
    if not (target / "MLmodel").exists():
        target.mkdir(parents=True, exist_ok=True)
        mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{model_name}/{version}", dst_path=str(target))
    return str(target)


def first_line(exc: Exception) -> str:
    """An exception as one line for a status page (MLflow's messages run to pages)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
