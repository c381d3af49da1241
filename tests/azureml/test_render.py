"""Every rendered Azure ML YAML file loads with the SDK's own load_* functions (they validate offline)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from azure.ai.ml import (
    load_batch_endpoint, load_component, load_data, load_environment, load_job, load_model,
    load_online_deployment, load_online_endpoint,
)
# Not re-exported by azure.ai.ml 1.35, but the same loaders `az ml` uses.
from azure.ai.ml.entities._load_functions import load_model_batch_deployment, load_schedule

from specops.backends.azureml import RECORD_KINDS
from specops.render.azureml import (
    MAX_CONCURRENT_REQUESTS, SCORING_SCRIPT, SERVING_LOCK, SERVING_VARIABLE, YAML_FOLDERS, azureml_notes, read_project_files,
    render_azureml, render_entities, runs_per_day, short_hash,
)
from specops.serving import azureml_score
from specops.errors import SpecErrors
from specops.spec import KINDS, load_specs
from tests.azureml.conftest import ENDPOINT
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
    # Why it runs reaches every step (train tags the model with it); a retraining is never a cached result.
    assert {n["inputs"]["trigger_reason"]["path"] for n in nodes.values()} == {"${{parent.inputs.trigger_reason}}"}
    assert all("SPECOPS_TRIGGER_REASON=${{inputs.trigger_reason}}" in command for command in
               (job.jobs["gate"].component.command, job.jobs["train"].trial.command))
    # (as plain data: the SDK's pipeline inputs overload == to build pipeline expressions)
    assert (job._to_dict()["inputs"]["trigger_reason"], job.tags["specops.trigger_reason"]) == ("apply", "apply")
    scheduled = loaded["schedules/credit-risk-training-schedule"].create_job
    assert scheduled._to_dict()["inputs"]["trigger_reason"] == scheduled.tags["specops.trigger_reason"] == "schedule"
    reused = {load_component(p).display_name for p in (tmp_path / "components").glob("*.yaml") if load_component(p).is_deterministic}
    assert reused == {"generate_data", "validate", "features"}  # what writes to the workspace always runs
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
    assert blue.environment_variables["LOG_LEVEL"] == "info"
    # The scoring script serves raw rows as the local endpoint does: the settings it needs, in the deployment.
    served = json.loads(blue.environment_variables[SERVING_VARIABLE])
    assert (served["deployment"], served["model"], served["out_of_range"]) == ("blue", "credit-risk@3", "reject")
    assert [f["name"] for f in served["feature_set"]["features"]][0] == "log_income" and "income" in served["dataset"]["columns"]
    for deployment in (blue, loaded["batch-deployments/credit-batch.main"]):
        assert deployment.code_configuration.scoring_script == SCORING_SCRIPT == "src/specops/serving/azureml_score.py"
        folder = out / ("online-deployments" if deployment is blue else "batch-deployments")
        assert (folder / deployment.code_configuration.code).resolve() == project.resolve()  # the repository's snapshot
        # The serving environment: the inference server and the collector, which the project's lock cannot hold.
        assert str(deployment.environment).endswith(f"credit-risk-serving-env:{short_hash((project / SERVING_LOCK).read_text())}")
    pins = loaded["environments/credit-risk-serving-env"].conda_file["dependencies"][-1]["pip"]
    assert {"azureml-inference-server-http==1.5.1", "azureml-ai-monitoring==1.0.0", "scikit-learn==1.9.1"} <= set(pins)
    assert (blue.request_settings.request_timeout_ms, blue.request_settings.max_concurrent_requests_per_instance) == (3000, 4)
    assert (blue.liveness_probe.initial_delay, blue.liveness_probe.period, blue.readiness_probe.period) == (5, 15, 10)
    assert blue.data_collector.collections["model_inputs"].enabled == "true" and blue.data_collector.sampling_rate == 0.5
    green = loaded["online-deployments/credit-online.green"]
    assert green.model == "credit-risk@latest"  # no version holds the champion tag: render_azureml resolves nothing
    # Unset in the spec: specops' default, not Azure's 1 (a second concurrent request would get 429).
    assert green.request_settings.max_concurrent_requests_per_instance == MAX_CONCURRENT_REQUESTS > 1
    assert blue.app_insights_enabled is green.app_insights_enabled is True  # the workbook and alerts read App Insights
    assert loaded["batch-endpoints/credit-batch"].defaults.deployment_name == "main"
    batch = loaded["batch-deployments/credit-batch.main"]
    assert batch.compute == "cpu-cluster"  # the environment's cluster: batch deployments take no serverless
    assert (batch.settings.mini_batch_size, batch.settings.max_concurrency_per_instance) == (500, 2)
    assert batch.settings.retry_settings.max_retries == 2
    monitor = loaded["schedules/credit-drift"]
    assert monitor.trigger.expression == "0 * * * *"
    definition = monitor.create_monitor
    assert definition.monitoring_target.endpoint_deployment_id == "azureml:credit-online:blue"
    assert definition.monitoring_target.ml_task == "classification" and definition.alert_notification == "azmonitoring"
    assert_signals_follow_the_spec(definition.monitoring_signals)
    # Reference data as the monitoring docs' samples give it: an mltable asset (the Dataset's folder and an MLTable).
    reference = loaded["data/credit-applications-reference"]
    assert reference.type == "mltable" and reference.path == loaded["data/credit-applications"].path.rsplit("data/", 1)[0]
    for signal in definition.monitoring_signals.values():
        assert signal.reference_data.input_data.type == "mltable"
        assert signal.reference_data.input_data.path.startswith("credit-applications-reference:")


def test_the_mltable_reads_the_datasets_file_in_its_format():
    from specops.render.azureml import mltable_text
    from specops.spec.kinds import Dataset

    def dataset(path: str, format: str) -> Dataset:
        return Dataset.model_validate({"apiVersion": "specops/v1", "kind": "Dataset", "metadata": {"name": "d"},
                                       "spec": {"path": path, "format": format, "target": "y", "columns": {"y": {"type": "int"}}}})

    csv = yaml.safe_load(mltable_text(dataset("data/credit.csv", "csv")))
    assert csv["paths"] == [{"file": "./data/credit.csv"}] and "read_delimited" in csv["transformations"][0]
    parts = yaml.safe_load(mltable_text(dataset("data/credit", "parquet")))
    assert parts == {"paths": [{"pattern": "./data/credit/**/*.parquet"}], "transformations": ["read_parquet"]}
    one = yaml.safe_load(mltable_text(dataset("data/credit.parquet", "parquet")))
    assert one["paths"] == [{"file": "./data/credit.parquet"}]



def assert_signals_follow_the_spec(signals: dict) -> None:
    """conftest's Monitor declares every block; the Azure ML signals carry its thresholds, not defaults."""
    # performance and fairness have no Azure ML counterpart: plan notes, not signals.
    assert set(signals) == {"data-drift", "prediction-drift", "data-quality", "feature-attribution-drift"}
    drift = signals["data-drift"]
    assert drift.metric_thresholds.numerical.normalized_wasserstein_distance == 0.1  # the azureml preset
    assert drift.metric_thresholds.categorical.jensen_shannon_distance == 0.1
    assert "gender" not in drift.features and "default" not in drift.features and "region" in drift.features
    assert drift.production_data.data_window.lookback_window_size == "P1D"
    prediction = signals["prediction-drift"]
    assert prediction.metric_thresholds.numerical.population_stability_index == 0.25
    assert prediction.metric_thresholds.numerical.normalized_wasserstein_distance is None  # the spec's replace the defaults
    assert prediction.metric_thresholds.categorical.jensen_shannon_distance == 0.2
    assert prediction.production_data.data_context == "model_outputs"  # predictions, not inputs
    assert prediction.production_data.input_data.path == "credit-online-blue-model_outputs:1"
    quality = signals["data-quality"].metric_thresholds
    assert (quality.numerical.null_value_rate, quality.numerical.out_of_bounds_rate) == (0.05, 0.02)
    assert quality.numerical.data_type_error_rate is None
    assert (quality.categorical.null_value_rate, quality.categorical.data_type_error_rate) == (0.01, 0.03)
    assert signals["data-quality"].features == drift.features
    attribution = signals["feature-attribution-drift"]
    assert attribution.metric_thresholds.normalized_discounted_cumulative_gain == 0.85
    assert [d.data_context for d in attribution.production_data] == ["model_inputs", "model_outputs"]
    assert attribution.reference_data.data_column_names == {"target_column": "default"}


def test_undeclared_signal_blocks_are_not_rendered(project: Path):
    """Off unless declared, as on the local backend: a Monitor with no blocks gets data drift only."""
    serving = project / "specs" / "serving.yaml"
    text = serving.read_text()
    blocks = text[text.index("  # Every signal block"):text.index('  schedule: "0 * * * *"')]
    serving.write_text(text.replace(blocks, ""))
    [schedule] = [r.entity for r in render_entities(*_specs_and_files(project)) if r.kind == "MonitorSchedule"]
    assert set(schedule.create_monitor.monitoring_signals) == {"data-drift"}


def _specs_and_files(project: Path):
    specs = load_specs(project, "dev")
    return specs, read_project_files(specs.root)


# Rollouts and a release-freeze gate the other tests do not apply (they would change the backend tests' plans).
ROLLOUTS = """\
apiVersion: specops/v1
kind: Endpoint
metadata: {name: credit-canary}
spec:
  deployments: [{name: blue, model: credit-risk@3}, {name: green, model: credit-risk@4}]
  traffic: {blue: 100}
  rollout:
    strategy: canary
    steps: [{weight: 10}, {load_test: {users: 5, duration: 10s}}, {weight: 50}, {load_test: {}}]
---
apiVersion: specops/v1
kind: Endpoint
metadata: {name: credit-preview}
spec:
  deployments: [{name: blue, model: credit-risk@3}, {name: green, model: credit-risk@4}]
  traffic: {blue: 100}
  rollout:
    strategy: blue-green
    pre_promotion_load_test: {users: 20}
    post_promotion_analysis: promotion
---
apiVersion: specops/v1
kind: Gate
metadata: {name: release-freeze}
spec:
  checks: [{slo: credit-online}]
"""


@pytest.fixture
def every_feature(project: Path) -> Path:
    (project / "specs" / "rollouts.yaml").write_text(ROLLOUTS)
    return project


def test_local_only_features_are_plan_notes(every_feature: Path):
    notes = azureml_notes(load_specs(every_feature, "dev"))
    text = "\n".join(notes)
    assert "Endpoint/credit-online: spec.rollout.strategy bandit runs only on the local backend" in text
    assert "credit-risk@champion" in text and "the version tagged specops.alias.champion" in text
    assert "Monitor/credit-drift: spec.actions.retrain" in text
    assert "FeatureSet/credit-features: spec.refresh" in text
    assert ("Monitor/credit-drift: spec.performance (a drop of accuracy by 0.05, f1_score by 0.04 below the champion's "
            "evaluation, on /feedback labels) runs only on the local backend") in text
    assert "Monitor/credit-drift: spec.fairness (demographic parity difference across gender) runs only on the local" in text
    assert "Monitor/credit-drift: spec.min_target_rows (500) runs only on the local backend" in text
    assert ("SLO/credit-online: local only (availability, latency over the local inference log and /metrics); Azure ML "
            "has no SLO entity: on Azure use Azure Monitor alerts") in text
    assert "Gate/release-freeze: check slo credit-online reads the local inference log" in text
    assert "Endpoint/credit-canary: spec.rollout.steps[1].load_test, steps[3].load_test run only on the local backend" in text
    assert "Endpoint/credit-preview: spec.rollout.pre_promotion_load_test runs only on the local backend" in text
    assert "Endpoint/credit-preview: spec.rollout blue-green post_promotion_analysis" in text
    assert len(notes) == len(set(notes))


def test_every_kind_is_rendered_recorded_or_noted(every_feature: Path):
    """A kind added to specops.spec.KINDS fails here until the azureml backend renders it or says it cannot."""
    specs, files = _specs_and_files(every_feature)
    rendered = {r.spec for r in render_entities(specs, files)}
    recorded = {d.key for d in specs.documents if d.kind in RECORD_KINDS}  # kept in specops' state, shown in plans
    noted = {note.split(": ", 1)[0] for note in azureml_notes(specs)}
    for kind in KINDS:
        documents = [d.key for d in specs.documents if d.kind == kind]
        assert documents, f"no {kind} in the test project: add one to tests/azureml (conftest.py or ROLLOUTS)"
        unhandled = [key for key in documents if key not in rendered | recorded | noted]
        assert not unhandled, f"the azureml backend neither renders nor notes {unhandled}"
    assert "SLO/credit-online" in noted and "SLO/credit-online" not in rendered


def test_every_kind_has_a_folder():
    assert set(YAML_FOLDERS.values()) == set(LOADERS)


def test_a_batch_endpoint_on_azure_needs_the_environments_compute_cluster(project: Path):
    project_spec = project / "specs" / "project.yaml"
    project_spec.write_text(project_spec.read_text().replace("      compute: cpu-cluster", "      # no cluster"))
    load_specs(project, "local")  # the local backend needs none
    with pytest.raises(SpecErrors) as caught:
        load_specs(project, "dev")
    [error] = caught.value.errors
    assert (error.file, error.path) == ("specs/serving.yaml", "spec")
    assert "set spec.environments.dev.compute" in error.message
    (project / "specs" / "serving.yaml").write_text(ENDPOINT.split("---")[0])  # no batch endpoint: serverless jobs
    notes = azureml_notes(load_specs(project, "dev"))
    assert "Project/credit-risk: spec.environments.dev.compute is not set: pipeline jobs run on serverless compute" in notes


def test_the_azure_ml_environment_installs_the_runtime_not_the_dev_tools():
    from specops.render.azureml import BASE_IMAGE, dev_tools, locked_requirements

    lock = (REPO / "requirements.lock").read_text()
    names = {pin.split("==")[0].lower() for pin in locked_requirements(lock, dev_tools())}
    assert {"ruff", "mypy", "hypothesis", "pytest-xdist", "bandit", "pip-audit", "import-linter"}.isdisjoint(names)
    assert "pytest" in names  # a dev tool, but locust (the load tests) depends on it: the graph keeps it
    assert {"mlflow", "scikit-learn", "azure-ai-ml", "dvc", "great-expectations", "pyyaml", "packaging"} <= names
    assert len(names) < len(locked_requirements(lock))
    assert not BASE_IMAGE.endswith(":latest")


def test_a_package_a_dev_tool_shares_with_the_runtime_stays():
    lock = "\n".join([
        "attrs==25.1.0 \\", "    --hash=sha256:aa", "    # via", "    #   hypothesis", "    #   jsonschema",
        "hypothesis==6.1 \\", "    --hash=sha256:bb", "    # via specops (pyproject.toml)",
        "jsonschema==4.0 \\", "    --hash=sha256:cc", "    # via specops (pyproject.toml)",
        "sortedcontainers==2.4.0 \\", "    --hash=sha256:dd", "    # via hypothesis",
    ])
    from specops.render.azureml import locked_requirements

    assert locked_requirements(lock, {"hypothesis"}) == ["attrs==25.1.0", "jsonschema==4.0"]
    assert len(locked_requirements(lock)) == 4


def test_a_monitor_scheduled_more_often_than_its_window_is_named_in_the_plan(project: Path):
    def spark_notes() -> list[str]:
        return [n for n in azureml_notes(load_specs(project, "dev")) if "serverless Spark jobs" in n]

    serving = project / "specs" / "serving.yaml"
    [note] = spark_notes()  # hourly over a day's window
    assert note.startswith("Monitor/credit-drift: spec.schedule runs 24 times a day over a P1D window")
    serving.write_text(serving.read_text().replace('schedule: "0 * * * *"', 'schedule: "30 2 * * *"'))
    assert spark_notes() == []


def test_the_example_monitor_runs_once_a_day_on_azure():
    monitor = next(m for m in load_specs(REPO, "dev").documents if m.kind == "Monitor")
    assert runs_per_day(monitor.spec.schedule) == 1
    assert not [n for n in azureml_notes(load_specs(REPO, "dev")) if "serverless Spark jobs" in n]


def test_the_scoring_script_reads_the_variable_the_renderer_writes():
    assert azureml_score.SERVING_VARIABLE == SERVING_VARIABLE
    assert (REPO / SCORING_SCRIPT).resolve() == Path(azureml_score.__file__).resolve()


def test_a_search_renders_to_the_sweep_jobs_own_fields(project: Path):
    """Sampling, early termination and limits land in the SDK's fields; a range becomes Azure ML's expression."""
    from azure.ai.ml.sweep import BanditPolicy, Choice, LogUniform

    from specops.render.azureml import render_pipeline_job
    from specops.spec import Pipeline

    pipeline_file = project / "specs" / "pipelines" / "training.yaml"
    sweep = ("  sweep:\n    sampling_algorithm: random\n    early_termination: {policy: bandit, slack_factor: 0.1, "
             "delay_evaluation: 1}\n    limits: {max_total_trials: 12, max_concurrent_trials: 3, timeout: 2h}\n")
    pipeline_file.write_text(pipeline_file.read_text().replace('  sweep:\n    max_parallel: "{{ values.max_parallel }}"\n', sweep))
    (project / "params.yaml").write_text("train:\n  seed: 5\n  fixed: {n_estimators: 50}\n  sweep:\n    max_depth: {low: 2, high: 5}\n"
                                         "    min_weight_fraction_leaf: {low: 0.001, high: 0.1, log: true}\n")
    specs = load_specs(project, "dev")
    node = render_pipeline_job(specs, specs.require(Pipeline, "credit-risk-training"), read_project_files(project)).jobs["train"]
    assert node.sampling_algorithm.type == "random" and node.sampling_algorithm.seed == 5
    assert isinstance(node.search_space["max_depth"], Choice) and node.search_space["max_depth"].values == [2, 3, 4, 5]
    assert isinstance(node.search_space["min_weight_fraction_leaf"], LogUniform)
    assert isinstance(node.early_termination, BanditPolicy)
    assert (node.early_termination.slack_factor, node.early_termination.delay_evaluation) == (0.1, 1)
    assert (node.limits.max_total_trials, node.limits.max_concurrent_trials, node.limits.timeout) == (12, 3, 7200)
    # Azure ML's Bayesian sampling takes no early termination policy: refused, naming the spec's field.
    pipeline_file.write_text(pipeline_file.read_text().replace("sampling_algorithm: random", "sampling_algorithm: bayesian"))
    specs = load_specs(project, "dev")
    with pytest.raises(SpecErrors, match=r"training.yaml:\d+:\d+: spec.sweep.early_termination: Azure ML's Bayesian"):
        render_pipeline_job(specs, specs.require(Pipeline, "credit-risk-training"), read_project_files(project))


def test_a_refresh_step_is_never_reused_on_azure(project: Path):
    """A step that fetches new data must run in every job: Azure ML would reuse a deterministic node's old outputs."""
    from specops.render.azureml import render_pipeline_job
    from specops.spec import Pipeline

    pipeline_file = project / "specs" / "pipelines" / "training.yaml"
    specs = load_specs(project, "dev")
    job = render_pipeline_job(specs, specs.require(Pipeline, "credit-risk-training"), read_project_files(project))
    assert job.jobs["generate_data"].component.is_deterministic
    pipeline_file.write_text(pipeline_file.read_text().replace("      outs: [data/credit.csv]\n",
                                                               "      outs: [data/credit.csv]\n      refresh: true\n"))
    specs = load_specs(project, "dev")
    job = render_pipeline_job(specs, specs.require(Pipeline, "credit-risk-training"), read_project_files(project))
    assert not job.jobs["generate_data"].component.is_deterministic and job.jobs["validate"].component.is_deterministic
