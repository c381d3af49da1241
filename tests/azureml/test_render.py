"""Every rendered Azure ML YAML file loads with the SDK's own load_* functions (they validate offline)."""
from __future__ import annotations

from pathlib import Path

import pytest
from azure.ai.ml import (
    load_batch_endpoint, load_component, load_data, load_environment, load_job, load_model,
    load_online_deployment, load_online_endpoint,
)
# Not re-exported by azure.ai.ml 1.35, but the same loaders `az ml` uses.
from azure.ai.ml.entities._load_functions import load_model_batch_deployment, load_schedule

from specops.render.azureml import YAML_FOLDERS, azureml_notes, render_azureml
from specops.spec import load_specs
from tests.conftest import REPO

pytestmark = pytest.mark.filterwarnings("ignore")

LOADERS = {
    "environments": load_environment, "data": load_data, "models": load_model, "components": load_component,
    "jobs": load_job, "schedules": load_schedule, "online-endpoints": load_online_endpoint,
    "online-deployments": load_online_deployment, "batch-endpoints": load_batch_endpoint,
    # Azure ML's model batch deployment (type: model) has its own loader; the generic one rejects `settings`.
    "batch-deployments": load_model_batch_deployment,
}


def load_all(out: Path) -> dict[str, object]:
    return {f"{p.parent.name}/{p.stem}": LOADERS[p.parent.name](p) for p in sorted(out.rglob("*.yaml"))}


def test_repository_specs_render_and_load(tmp_path: Path):
    written = render_azureml(load_specs(REPO, "dev"), tmp_path)
    loaded = load_all(tmp_path)
    assert len(loaded) == len(written)
    job = loaded["jobs/credit-risk-training"]
    assert list(job.jobs)[:2] == ["generate_data", "validate"] and list(job.jobs)[-1] == "register"
    assert job.inputs["data"].path.startswith("credit-applications:")  # the loader strips `azureml:`
    nodes = job._to_dict()["jobs"]
    assert nodes["generate_data"]["inputs"]["data"]["path"] == "${{parent.inputs.data}}"
    assert nodes["evaluate"]["inputs"]["state"]["path"] == "${{parent.jobs.train.outputs.state}}"
    sweep = job.jobs["train"]
    assert sweep.type == "sweep" and sweep.search_space["max_depth"].values == [3, 5, 7]
    assert (sweep.objective.primary_metric, sweep.objective.goal) == ("roc_auc", "maximize")
    assert sweep.limits.max_concurrent_trials == 4  # dev's max_parallel
    assert "python -m specops stage gate --pipeline credit-risk-training" in job.jobs["gate"].component.command
    assert loaded["schedules/credit-risk-training-schedule"].trigger.expression == "0 3 * * 1"
    env = loaded["environments/credit-risk-env"]
    assert env.image.startswith("mcr.microsoft.com/azureml/") and "azure-ai-ml==1.35.2" in env.conda_file["dependencies"][-1]["pip"]
    assert loaded["data/credit-applications"].type == "uri_file"
    assert loaded["models/credit-risk"].type == "mlflow_model"
    for component in (v for k, v in loaded.items() if k.startswith("components/")):
        # The code path is relative to the component's YAML file, wherever the output folder is.
        assert (tmp_path / "components" / component.code).resolve() == REPO


def test_serving_and_monitor_specs_render_and_load(project: Path, tmp_path: Path):
    out = tmp_path / "build"
    render_azureml(load_specs(project, "dev"), out)
    loaded = load_all(out)
    endpoint = loaded["online-endpoints/credit-online"]
    assert (endpoint.auth_mode, endpoint.traffic, endpoint.mirror_traffic) == ("key", {"blue": 90, "green": 10}, {"shadow": 20})
    blue = loaded["online-deployments/credit-online.blue"]
    assert (blue.model, blue.instance_type, blue.instance_count) == ("credit-risk:3", "Standard_DS3_v2", 2)
    assert blue.environment_variables == {"LOG_LEVEL": "info"}
    assert (blue.request_settings.request_timeout_ms, blue.request_settings.max_concurrent_requests_per_instance) == (3000, 4)
    assert (blue.liveness_probe.initial_delay, blue.liveness_probe.period, blue.readiness_probe.period) == (5, 15, 10)
    assert blue.data_collector.collections["model_inputs"].enabled == "true" and blue.data_collector.sampling_rate == 0.5
    assert loaded["online-deployments/credit-online.green"].model == "credit-risk@latest"
    assert loaded["batch-endpoints/credit-batch"].defaults.deployment_name == "main"
    batch = loaded["batch-deployments/credit-batch.main"]
    assert (batch.settings.mini_batch_size, batch.settings.max_concurrency_per_instance) == (500, 2)
    assert batch.settings.retry_settings.max_retries == 2
    monitor = loaded["schedules/credit-drift"]
    assert monitor.trigger.expression == "0 * * * *"
    definition = monitor.create_monitor
    assert definition.monitoring_target.endpoint_deployment_id == "azureml:credit-online:blue"
    signals = definition.monitoring_signals
    assert set(signals) == {"data-drift", "prediction-drift", "data-quality"}
    drift = signals["data-drift"]
    assert drift.metric_thresholds.numerical.normalized_wasserstein_distance == 0.1
    assert drift.metric_thresholds.categorical.jensen_shannon_distance == 0.1
    assert "gender" not in drift.features and "default" not in drift.features and "region" in drift.features
    assert drift.production_data.data_window.lookback_window_size == "P1D"


def test_local_only_features_are_plan_notes(project: Path):
    notes = "\n".join(azureml_notes(load_specs(project, "dev")))
    assert "Endpoint/credit-online: spec.rollout.strategy bandit runs only on the local backend" in notes
    assert "credit-risk@champion" in notes and "@latest" in notes
    assert "Monitor/credit-drift: spec.actions.retrain" in notes
    assert "FeatureSet/credit-features: spec.refresh" in notes


def test_every_kind_has_a_folder():
    assert set(YAML_FOLDERS.values()) == set(LOADERS)
