"""MLflow plumbing shared by the stages: where the store is, experiments, the champion."""
from __future__ import annotations

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from specops.core.paths import absolute_tracking_uris as mlflow_uris
from specops.spec.loader import SpecSet

CHAMPION = "champion"
CHALLENGER = "challenger"


def connect(specs: SpecSet) -> MlflowClient:
    """Point MLflow (tracking and registry) at the Project's store; return a client for it."""
    project = specs.project.spec
    tracking_uri, _ = mlflow_uris(specs.root, project.tracking_uri, project.artifact_location)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return MlflowClient(tracking_uri, registry_uri=tracking_uri)


def use_experiment(specs: SpecSet, name: str) -> str:
    """Make `name` the active experiment, creating it with the Project's artifact location."""
    project = specs.project.spec
    _, artifact_location = mlflow_uris(specs.root, project.tracking_uri, project.artifact_location)
    experiment = mlflow.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else mlflow.create_experiment(name, artifact_location=artifact_location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def version_by_alias(client: MlflowClient, model_name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:  # no such model or no such alias: both mean "none yet"
        return None


def run_metrics(client: MlflowClient, version: ModelVersion) -> dict[str, float]:
    return client.get_run(version.run_id).data.metrics if version.run_id else {}
