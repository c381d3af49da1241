"""The model registry (MLflow): where the store is, experiments, aliases, and each version's records.

One module for registry aliases: the champion/challenger names, resolving an
alias, moving one, and where a version's lineage record, model card, baseline
and SBOM live in its run (`artifact_dir`). MLflow takes seconds to import, so
it is imported only when a function here talks to the registry: the names are
free to import.

Which store: the Project's (`tracking_uri`, a SQLite file by default), except
inside an Azure ML job, where Azure ML sets MLFLOW_TRACKING_URI (and
AZUREML_RUN_ID) to the workspace's own MLflow: every stage then tracks and
registers there, so what one step logs another step can read, and what
`register` registers is in the workspace's registry.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
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
# Where a registry without aliases (Azure ML's) keeps them: a tag on the model version holding the alias.
ALIAS_TAG = "specops.alias.{alias}"


def tagged_aliases(versions: Iterable[tuple[str, Mapping[str, str]]]) -> dict[str, str]:
    """alias -> version, from (version, tags) pairs of one model where aliases are ALIAS_TAG tags: the newest
    version holding a tag wins (a promotion sets the new holder before it clears the old one)."""
    prefix = ALIAS_TAG.format(alias="")
    aliases: dict[str, str] = {}
    for version, tags in sorted(versions, key=lambda pair: int(pair[0]) if str(pair[0]).isdigit() else -1):
        for tag, value in tags.items():
            if tag.startswith(prefix) and str(value).lower() == "true":
                aliases[tag.removeprefix(prefix)] = str(version)
    return aliases


def azureml_job_tracking_uri() -> str | None:
    """The workspace's MLflow URI when this process runs inside an Azure ML job, else None.

    Azure ML sets AZUREML_RUN_ID and MLFLOW_TRACKING_URI (with MLFLOW_RUN_ID and MLFLOW_EXPERIMENT_ID)
    for every job; a developer's own MLFLOW_TRACKING_URI alone does not make a job.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    return uri if uri and os.environ.get("AZUREML_RUN_ID") else None


def aliases_as_tags(specs: SpecSet) -> bool:
    """Whether the registry keeps aliases as version tags: Azure ML's has no aliases (see TagAliasClient)."""
    environment = specs.project.spec.environments.get(specs.env)
    return azureml_job_tracking_uri() is not None or (environment is not None and environment.backend == "azureml")


def connect(specs: SpecSet) -> MlflowClient:
    """Point MLflow (tracking and registry) at the environment's store; return a client for it.

    Inside an Azure ML job that is the workspace (the job's MLFLOW_TRACKING_URI, MLFLOW_REGISTRY_URI if
    set), never the Project's SQLite default, which would be a store private to the job's container.
    """
    import mlflow

    job_uri = azureml_job_tracking_uri()
    if job_uri is not None:
        tracking_uri, registry_uri = job_uri, os.environ.get("MLFLOW_REGISTRY_URI") or job_uri
    else:
        project = specs.project.spec
        tracking_uri, _ = absolute_tracking_uris(specs.root, project.tracking_uri, project.artifact_location)
        registry_uri = tracking_uri
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri)
    client_class = tag_alias_client() if aliases_as_tags(specs) else mlflow.MlflowClient
    return client_class(tracking_uri, registry_uri=registry_uri)


def use_experiment(specs: SpecSet, name: str) -> str:
    """Make `name` the active experiment, creating it with the Project's artifact location.

    Inside an Azure ML job the experiment is the job's (MLFLOW_EXPERIMENT_ID): its run, which
    `mlflow.start_run()` resumes there, belongs to it, and the workspace decides where artifacts go.
    """
    import mlflow

    job_experiment = os.environ.get("MLFLOW_EXPERIMENT_ID") if azureml_job_tracking_uri() else None
    if job_experiment:
        mlflow.set_experiment(experiment_id=job_experiment)
        return job_experiment
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


def tag_alias_client() -> type[MlflowClient]:
    """MlflowClient for a registry without aliases (Azure ML's): the alias API kept over version tags.

    Azure ML's MLflow registry has versions and version tags but no aliases, so there `champion` and
    `challenger` are the tag ALIAS_TAG ("specops.alias.champion" = "true") on the version that holds
    them. The design keeps one vocabulary for the rest of specops: every caller, the rollout engine and
    the endpoint's model resolution included, keeps calling MLflow's alias API; only `connect` decides,
    from the environment (an azureml backend, or running inside an Azure ML job), that the registry is
    one without aliases, and hands out this client. It is decided up front, not by catching the
    registry's refusal: a refused call has no documented shape, and a store must not hold an alias in
    two places. Moving an alias tags the new version first, then untags the others, so at any moment
    the holder is the newest version carrying the tag (a crash between the two leaves the new holder).
    Versions are found by name only (Azure ML searches registered models neither by tag nor with LIKE).
    """
    import mlflow
    from mlflow.entities.model_registry import RegisteredModel, RegisteredModelAlias
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

    class TagAliasClient(mlflow.MlflowClient):
        def _versions(self, name: str) -> list[ModelVersion]:
            escaped = name.replace("'", "\\'")
            return sorted(self.search_model_versions(f"name='{escaped}'"), key=lambda v: int(v.version))

        def _holders(self, name: str, alias: str) -> list[ModelVersion]:
            tag = ALIAS_TAG.format(alias=alias)
            return [v for v in self._versions(name) if v.tags.get(tag) == "true"]

        def _aliases(self, name: str) -> dict[str, str]:
            """alias -> version, for every alias some version holds (the newest holder wins)."""
            prefix = ALIAS_TAG.format(alias="")
            found: dict[str, str] = {}
            for version in self._versions(name):
                for key, value in version.tags.items():
                    if key.startswith(prefix) and value == "true":
                        found[key.removeprefix(prefix)] = version.version
            return found

        def set_registered_model_alias(self, name: str, alias: str, version: str | int) -> None:
            tag = ALIAS_TAG.format(alias=alias)
            self.set_model_version_tag(name, str(version), tag, "true")
            for other in self._holders(name, alias):
                if str(other.version) != str(version):
                    self.delete_model_version_tag(name, other.version, tag)

        def delete_registered_model_alias(self, name: str, alias: str) -> None:
            for holder in self._holders(name, alias):
                self.delete_model_version_tag(name, holder.version, ALIAS_TAG.format(alias=alias))

        def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
            holders = self._holders(name, alias)
            if not holders:
                raise MlflowException(f"Registered model alias {alias} not found.", RESOURCE_DOES_NOT_EXIST)
            version = holders[-1]
            version.aliases = [a for a, v in self._aliases(name).items() if str(v) == str(version.version)]
            return version

        def get_model_version(self, name: str, version: str) -> ModelVersion:
            found = super().get_model_version(name, version)
            found.aliases = [a for a, v in self._aliases(name).items() if str(v) == str(found.version)]
            return found

        def get_registered_model(self, name: str) -> RegisteredModel:
            model = super().get_registered_model(name)
            for alias, version in self._aliases(name).items():
                model._add_alias(RegisteredModelAlias(alias, version))
            return model

    return TagAliasClient


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
