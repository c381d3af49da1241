"""The model registry (MLflow): where the store is, experiments, aliases, and each version's records.

One module for registry aliases: the champion/challenger names, resolving an
alias, moving one, and where a version's lineage record, model card, baseline
and SBOM live in its run (`artifact_dir`). MLflow takes seconds to import, so
it is imported only when a function here talks to the registry: the names are
free to import.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from specops.core.paths import absolute_tracking_uris
from specops.errors import SpecopsError
from specops.spec.loader import SpecSet

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"
REF = re.compile(r"^(?P<model>[^@]+)(@(?P<selector>.+))?$")


def connect(specs: SpecSet) -> MlflowClient:
    """Point MLflow (tracking and registry) at the Project's store; return a client for it."""
    import mlflow

    project = specs.project.spec
    tracking_uri, _ = absolute_tracking_uris(specs.root, project.tracking_uri, project.artifact_location)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return mlflow.MlflowClient(tracking_uri, registry_uri=tracking_uri)


def use_experiment(specs: SpecSet, name: str) -> str:
    """Make `name` the active experiment, creating it with the Project's artifact location."""
    import mlflow

    project = specs.project.spec
    _, artifact_location = absolute_tracking_uris(specs.root, project.tracking_uri, project.artifact_location)
    experiment = mlflow.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else mlflow.create_experiment(name, artifact_location=artifact_location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def version_by_alias(client: MlflowClient, model_name: str, alias: str) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:  # no such model or no such alias: both mean "none yet"
        return None


def set_alias(client: MlflowClient, model_name: str, alias: str, version: str) -> None:
    client.set_registered_model_alias(model_name, alias, version)


def champion_summary(client: MlflowClient, model_name: str) -> dict[str, Any] | None:
    """The champion's version, training run and that run's metrics; None before the first champion."""
    version = version_by_alias(client, model_name, CHAMPION)
    if version is None:
        return None
    return {"version": version.version, "run_id": version.run_id, "metrics": run_metrics(client, version)}


def run_metrics(client: MlflowClient, version: ModelVersion) -> dict[str, float]:
    return client.get_run(version.run_id).data.metrics if version.run_id else {}


def artifact_dir(version: str) -> str:
    """Where in the candidate's run one model version's lineage and card live."""
    return f"registry/v{version}"


def describe(specs: SpecSet, ref: str) -> dict[str, Any]:
    """Model version, aliases, lineage and model card for `MODEL[@version|@alias]` (default @champion)."""
    match = REF.match(ref.strip())
    if not match:
        raise SpecopsError(f"invalid model reference {ref!r}: expected MODEL, MODEL@VERSION or MODEL@ALIAS")
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    model, selector = match["model"], match["selector"] or CHAMPION
    version = _resolve(connect(specs), model, selector)
    folder = artifact_dir(version.version)
    try:
        lineage = mlflow.artifacts.load_dict(f"runs:/{version.run_id}/{folder}/lineage.json")
        card = mlflow.artifacts.load_text(f"runs:/{version.run_id}/{folder}/model_card.md")
    except (MlflowException, OSError):
        raise SpecopsError(f"{model} version {version.version} has no lineage record (it was not registered by specops)") from None
    return {"model": model, "version": version.version, "aliases": list(version.aliases), "lineage": lineage, "model_card": card}


def _resolve(client: MlflowClient, model: str, selector: str) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        registered = client.get_registered_model(model)
    except MlflowException:
        known = ", ".join(sorted(m.name for m in client.search_registered_models())) or "none registered yet"
        raise SpecopsError(f"no registered model {model!r} (known: {known})") from None
    try:
        if selector.isdigit():
            return client.get_model_version(model, selector)
        return client.get_model_version_by_alias(model, selector)
    except MlflowException:
        aliases = ", ".join(sorted(registered.aliases)) or "none"
        what = f"version {selector}" if selector.isdigit() else f"alias {selector!r}"
        raise SpecopsError(f"model {model!r} has no {what} (aliases: {aliases})") from None
