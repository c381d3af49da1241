"""Issue 10, item 1: inside an Azure ML job specops uses the workspace's MLflow; Azure ML's registry has no aliases."""
from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from specops.registry import ALIAS_TAG, CHALLENGER, CHAMPION, connect, use_experiment, version_by_alias
from specops.spec import load_specs


@pytest.fixture
def job_env(monkeypatch, tmp_path: Path) -> str:
    """What Azure ML sets for a job (the workspace's URI stood in by a SQLite store)."""
    uri = f"sqlite:///{tmp_path / 'workspace.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("AZUREML_RUN_ID", "job-run")
    return uri


def test_inside_an_azureml_job_specops_tracks_and_registers_in_the_workspace(project: Path, job_env: str):
    client = connect(load_specs(project, "dev"))
    assert mlflow.get_tracking_uri() == job_env and mlflow.get_registry_uri() == job_env
    assert client._tracking_client.tracking_uri == job_env
    assert not (project / ".specops" / "mlflow").exists(), "no store private to the job's container"


def test_the_job_experiment_is_used_not_the_pipelines(project: Path, job_env: str, monkeypatch):
    specs = load_specs(project, "dev")
    connect(specs)
    MlflowClient(job_env).create_experiment("another")
    experiment = MlflowClient(job_env).create_experiment("the-job-experiment")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment)
    assert use_experiment(specs, "credit-risk-training") == experiment
    assert MlflowClient(job_env).get_experiment_by_name("credit-risk-training") is None


def test_a_tracking_uri_alone_is_not_a_job(project: Path, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    monkeypatch.delenv("AZUREML_RUN_ID", raising=False)
    connect(load_specs(project, "local"))
    assert mlflow.get_tracking_uri() == f"sqlite:///{project / '.specops/mlflow/mlflow.db'}"


def register_versions(client: MlflowClient, name: str, count: int, tmp_path: Path) -> None:
    client.create_registered_model(name)
    for i in range(count):
        source = tmp_path / f"model{i}"
        source.mkdir()
        client.create_model_version(name, str(source))


def test_an_azureml_environment_keeps_champion_and_challenger_as_version_tags(project: Path, tmp_path: Path):
    client = connect(load_specs(project, "dev"))
    register_versions(client, "m", 3, tmp_path)
    client.set_registered_model_alias("m", CHAMPION, "1")
    client.set_registered_model_alias("m", CHALLENGER, "3")
    client.set_registered_model_alias("m", CHAMPION, "2")  # moving it untags version 1
    tags = {str(v.version): v.tags for v in client.search_model_versions("name='m'")}
    assert [v for v, t in sorted(tags.items()) if t.get(ALIAS_TAG.format(alias=CHAMPION)) == "true"] == ["2"]
    found = version_by_alias(client, "m", CHAMPION)
    assert found is not None and (str(found.version), found.aliases) == ("2", [CHAMPION])
    assert {a: str(v) for a, v in client.get_registered_model("m").aliases.items()} == {CHAMPION: "2", CHALLENGER: "3"}
    assert client.get_model_version("m", "3").aliases == [CHALLENGER]
    client.delete_registered_model_alias("m", CHALLENGER)
    assert version_by_alias(client, "m", CHALLENGER) is None
    # No MLflow alias was used: the registry underneath has none.
    assert MlflowClient(mlflow.get_tracking_uri()).get_registered_model("m").aliases == {}


def test_a_local_environment_keeps_mlflow_aliases(project: Path, tmp_path: Path):
    client = connect(load_specs(project, "local"))
    register_versions(client, "m", 1, tmp_path)
    client.set_registered_model_alias("m", CHAMPION, "1")
    assert {a: str(v) for a, v in MlflowClient(mlflow.get_tracking_uri()).get_registered_model("m").aliases.items()} == {CHAMPION: "1"}
