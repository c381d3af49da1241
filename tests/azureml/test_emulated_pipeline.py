"""The dev environment applied end to end on the Azure ML emulator (issue 10, "done when").

One module fixture copies the example project, starts the stand-in workspace (a real `mlflow server` behind
a proxy refusing what Azure ML's MLflow refuses) and runs `specops apply --env dev` against the REST fake,
joined to the emulator (emulator/cloud.py): the pipeline job apply submits is run as Azure ML runs it, its
registered versions are the workspace's, its deployments are served by azureml-inference-server-http, and the
canary's metrics are what those deployments answered. The lifecycle, in order:
1. the first apply submits the job, which registers v1; the deployments wait for it and serve v1;
2. a retraining (apply with a trigger reason) registers v2 as challenger; the plan shows green v1 -> v2;
3. apply walks green's canary on live traffic and promotes v2 (the champion tag moves, blue follows);
4. a bad v3 (it cannot score) fails its canary: rolled back, an incident and audit entries; `kpi` counts it.
The tests then check what each step left.
"""
from __future__ import annotations

import re
import shutil
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mlflow.exceptions import MlflowException

from specops import project as project_module
from specops.backends.azureml import AzureMLBackend
from specops.errors import SpecopsError
from specops.project import Project
from specops.registry import ALIAS_TAG, CHALLENGER, CHAMPION, tagged_aliases
from specops.render.azureml import TRIGGER_VARIABLE, render_azureml
from specops.spec import load_specs
from tests.azureml.emulator.cloud import EmulatedDev, register_bad_version
from tests.azureml.emulator.jobs import JobFailed, PipelineRun, run_pipeline_job
from tests.azureml.emulator.serving import serve_deployment
from tests.azureml.emulator.workspace import REFUSALS, Workspace, start_workspace
from tests.azureml.fake_azure import (
    EXAMPLE_REGISTRY, RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, FakeAzureML, StaticTokenCredential,
)
from tests.conftest import BIN, REPO
from tests.serving.conftest import start_server, stop_server

pytestmark = [pytest.mark.xdist_group("azureml-emulator"), pytest.mark.filterwarnings("ignore")]

MODEL = "credit-risk"
JOB = "build/dev/azureml/jobs/credit-risk-training.yaml"
ENDPOINT = "credit-scoring"
# Azure ML's inference server and data collector, from tools/azureml-serving.lock (`make serving`).
SERVING_VENV = REPO / ".venv-serving"


@dataclass
class Emulated:
    root: Path
    workspace: Workspace
    first: PipelineRun
    second: PipelineRun
    tags: dict[str, dict[str, dict[str, str]]]  # step -> version -> tags, as the workspace held them after it
    served: dict[str, dict[str, str]]  # step -> deployment -> the version the fake says it serves
    plans: dict[str, list[tuple[str, str, Any, Any]]]  # step -> the plan before it: (key, path, old, new)
    lines: dict[str, list[str]]  # step -> what its apply reported
    answered: dict[str, list[int]]  # deployment -> every status it answered on live traffic
    bad_apply: str  # the error the bad version's apply ended with
    refused_during_runs: list[tuple[str, str, str]]
    seconds: dict[str, float] = field(default_factory=dict)


def example_project(dest: Path) -> Path:
    """The example project as its repository would be uploaded: specs, params, lock, src (specops included)."""
    shutil.copytree(REPO / "specs", dest / "specs")
    shutil.copytree(REPO / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("requirements.lock", ".gitignore", "tools/azureml-serving.lock"):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, dest / name)
    # A small sweep (two trials) on fewer rows and trees: the point is how it runs, not the model.
    params = (REPO / "params.yaml").read_text().replace("[3, 5, 7]", "[3, 5]").replace("n_estimators: 100", "n_estimators: 30")
    (dest / "params.yaml").write_text(params)
    pipeline = dest / "specs" / "pipelines" / "training.yaml"
    pipeline.write_text(pipeline.read_text().replace("--rows 5000", "--rows 1500"))
    # The canary judges from 50 requests an arm (the emulated endpoint takes 300 a minute); records stay in
    # the copy's .specops/ (test_remote_state.py runs the storage account).
    endpoint = dest / "specs" / "endpoints" / "credit-scoring.yaml"
    endpoint.write_text(endpoint.read_text().replace("min_samples: 200", "min_samples: 50"))
    spec = dest / "specs" / "project.yaml"
    spec.write_text(re.sub(r"      state:.*\n(        .*\n)+", "", spec.read_text()))
    return dest


def snapshot_tags(workspace: Workspace) -> dict[str, dict[str, str]]:
    return {v.version: dict(v.tags) for v in workspace.client().search_model_versions(f"name='{MODEL}'")}


@pytest.fixture(scope="module")
def emulated(tmp_path_factory) -> Iterator[Emulated]:
    from azure.ai.ml._utils import _experimental

    base = tmp_path_factory.mktemp("emulated")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_experimental, "_should_skip_warning", lambda: True)  # see conftest.quick_experimental_check
        for name, value in (("AZURE_SUBSCRIPTION_ID", SUBSCRIPTION), ("AZURE_RESOURCE_GROUP", RESOURCE_GROUP),
                            ("AZURE_ML_WORKSPACE", WORKSPACE)):
            patch.setenv(name, value)
        seconds: dict[str, float] = {}
        started = time.monotonic()
        root = example_project(base / "proj")
        # The job as the emulator reads it: the rendered YAML of what apply submits.
        render_azureml(load_specs(root, "dev"), root / "build" / "dev" / "azureml")
        # What the Data asset's datastore path holds: the pipeline's generate step writes the real rows over it.
        datastore = base / "datastore" / "credit.csv"
        datastore.parent.mkdir()
        datastore.write_text("placeholder: the generate_data node writes the rows\n")
        workspace = start_workspace(base / "workspace", python=str(BIN / "python"))
        seconds["workspace"] = time.monotonic() - started
        fake = FakeAzureML(registries=(EXAMPLE_REGISTRY,))  # the registry prod is promoted through, as the infra makes it
        dev = EmulatedDev(root, fake, workspace, MODEL, ENDPOINT, root / JOB, {"credit-applications": datastore},
                          BIN / "python", SERVING_VENV, base / "dev", applicants)
        patch.setattr(project_module, "create_backend", lambda project: AzureMLBackend(
            project, credential=StaticTokenCredential(), transport=dev.fake, retry_total=2, retry_backoff_factor=0,
            sleep=dev.sleep, clock=dev.clock, analysis_wait=300))
        tags: dict[str, dict[str, dict[str, str]]] = {}
        plans: dict[str, list[tuple[str, str, Any, Any]]] = {}
        lines: dict[str, list[str]] = {}
        served: dict[str, dict[str, str]] = {}

        def step(name: str, reason: str | None = None) -> None:
            began = time.monotonic()
            plans[name] = [(op.key, c.path, c.old, c.new) for op in Project(root, "dev").plan().operations
                           for c in op.changes if c.path == "model"]
            if reason:
                patch.setenv(TRIGGER_VARIABLE, reason)
            try:
                Project(root, "dev").apply(report=lines.setdefault(name, []).append)
            finally:
                patch.delenv(TRIGGER_VARIABLE, raising=False)
                dev.push_tags()  # what apply did to the tags (a promotion), as the workspace's MLflow shows it
                tags[name] = snapshot_tags(workspace)
                served[name] = {body["name"]: re.split(r"[/:]", str(body["properties"]["model"]))[-1]
                                for path, body in dev.fake.store.items()
                                if path.startswith(f"/onlineendpoints/{ENDPOINT}/deployments/")}
                seconds[name] = time.monotonic() - began

        try:
            step("first")  # job 1 registers v1; the deployments wait for it
            step("retraining", reason="manual")  # job 2 registers v2 as challenger
            step("canary")  # green v1 -> v2 walks its canary on live traffic and is promoted
            register_bad_version(workspace, MODEL, base / "bad")
            dev.mirror()
            with pytest.raises(SpecopsError) as bad:
                step("bad")
            seconds["total"] = time.monotonic() - started
            print(f"emulated dev timings (s): { {k: round(v, 1) for k, v in seconds.items()} }")
            yield Emulated(root, workspace, dev.runs[0], dev.runs[1], tags, served, plans, lines, dict(dev.answered),
                           str(bad.value), list(workspace.refused), seconds)
        finally:
            dev.close()
            workspace.close()


def holds(tags: dict[str, str], alias: str) -> bool:
    return tags.get(ALIAS_TAG.format(alias=alias)) == "true"


def test_every_trial_logs_the_primary_metric_and_the_sweep_takes_the_best(emulated: Emulated):
    for run in (emulated.first, emulated.second):
        sweep = run.nodes["train"]
        assert [t.params for t in sweep.trials] == [{"max_depth": 3}, {"max_depth": 5}]
        assert all(t.metric is not None for t in sweep.trials), "every trial logs roc_auc to its own run"
        assert sweep.best is max(sweep.trials, key=lambda t: t.metric or 0.0)
        # The best trial's outputs are what evaluate received: its candidate, its run.
        assert sweep.outputs == sweep.best.outputs


def test_the_first_run_registers_version_1_in_the_workspace_as_champion(emulated: Emulated):
    client = emulated.workspace.client()
    version = client.get_model_version(MODEL, "1")
    assert holds(emulated.tags["first"]["1"], CHAMPION) and holds(emulated.tags["first"]["1"], CHALLENGER)
    # Registered from the best trial's candidate run, which evaluate scored in the same workspace.
    candidate = client.get_run(version.run_id)
    assert candidate.data.tags["mlflow.parentRunId"] == emulated.first.nodes["train"].best.run_id
    assert {"roc_auc", "accuracy", "f1", "parity_diff"} <= set(candidate.data.metrics)
    # Nothing went to a store private to a node's container.
    assert not list(emulated.root.parent.rglob("wd/.specops/mlflow"))


def test_a_second_run_registers_version_2_as_challenger(emulated: Emulated):
    tags = emulated.tags["retraining"]
    assert sorted(tags) == ["1", "2"]
    # Azure ML reuses a deterministic node run on the same inputs; the stages that track and register must run again.
    assert not any(node.reused for node in emulated.first.nodes.values())
    assert {n for n, node in emulated.second.nodes.items() if node.reused} == {"generate_data", "validate", "features"}
    assert holds(tags["2"], CHALLENGER) and not holds(tags["1"], CHALLENGER)
    # The example's Endpoint rolls the champion out, so its rollout (not register) promotes v2.
    assert holds(tags["1"], CHAMPION) and not holds(tags["2"], CHAMPION)


def test_the_first_apply_serves_the_version_its_job_registered(emulated: Emulated):
    assert any("waiting for job" in line for line in emulated.lines["first"])
    assert emulated.served["first"] == {"blue": "1", "green": "1"}


def test_the_plan_after_a_retraining_shows_green_moving_to_the_challenger(emulated: Emulated):
    assert emulated.served["retraining"] == {"blue": "1", "green": "1"}  # the retraining only registered v2
    assert emulated.plans["canary"] == [(f"OnlineDeployment/{ENDPOINT}.green", "model", f"azureml:{MODEL}:1",
                                         f"azureml:{MODEL}:2")]


def test_apply_walks_the_canary_on_the_emulated_deployments_answers_and_promotes(emulated: Emulated):
    lines = emulated.lines["canary"]
    assert any("v1 -> v2: canary rollout blue -> green" in line for line in lines)
    assert any("promoted" in line for line in lines)
    assert holds(emulated.tags["canary"]["2"], CHAMPION) and not holds(emulated.tags["canary"]["1"], CHAMPION)
    assert emulated.served["canary"] == {"blue": "2", "green": "2"}  # blue followed the champion
    # The analyses read what the served deployments answered: both took live requests, all answered.
    assert set(emulated.answered) == {"blue", "green"}
    assert len(emulated.answered["green"]) >= 50 and set(emulated.answered["green"][:50]) == {200}


def test_a_bad_version_fails_its_canary_on_its_own_errors_and_is_rolled_back(emulated: Emulated):
    assert "rolled back" in emulated.bad_apply and "error" in emulated.bad_apply
    assert emulated.plans["bad"] == [(f"OnlineDeployment/{ENDPOINT}.green", "model", f"azureml:{MODEL}:2",
                                      f"azureml:{MODEL}:3")]
    assert 500 in emulated.answered["green"]  # v3 could not score: a server-side failure Azure Monitor counts
    assert not holds(emulated.tags["bad"]["3"], CHAMPION) and holds(emulated.tags["bad"]["2"], CHAMPION)
    session = Project(emulated.root, "dev")
    record = session.state.rollout(ENDPOINT)
    assert record.status == "Degraded" and session.paths.incident(record.incident).exists()
    assert record.weights == {"blue": 100}
    actions = [e["action"] for e in session.audit.entries()]
    assert actions.count("promote") == 1 and actions[-2:] == ["rollback", "incident"]
    from specops.governance.kpi import compute

    failure_rate = next(k for k in compute(session.specs) if k.name == "change failure rate")
    assert failure_rate.detail == "1 rollback(s) for 1 release(s)"  # as the local backend counts them


def test_the_product_calls_nothing_azure_ml_refuses(emulated: Emulated):
    assert emulated.refused_during_runs == []


def test_the_stand_in_refuses_aliases_and_logged_models_as_azure_does(emulated: Emulated):
    import mlflow

    workspace = emulated.workspace
    before = len(workspace.refused)
    client = workspace.client()
    with pytest.raises(MlflowException, match="404"):
        client.set_registered_model_alias(MODEL, "champion", "1")
    with pytest.raises(MlflowException, match="404"):
        client.get_model_version_by_alias(MODEL, "champion")
    with pytest.raises(MlflowException, match="LIKE"):
        client.search_registered_models("name LIKE 'credit%'")
    with pytest.raises(MlflowException, match="[Rr]enaming"):
        client.rename_registered_model(MODEL, "other")
    from sklearn.linear_model import LogisticRegression

    experiment = client.create_experiment("refusals")
    mlflow.set_tracking_uri(workspace.tracking_uri)
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    with mlflow.start_run(experiment_id=experiment), pytest.raises(MlflowException, match="logged-models"):
        mlflow.sklearn.log_model(model, name="model")  # MLflow 3's logged-models API: Azure ML answers 404
    refused = {what for _, _, what in workspace.refused[before:]}
    assert refused == {r.what for r in (REFUSALS[0], REFUSALS[1], REFUSALS[2], REFUSALS[4])}


SWEEP_JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
experiment_name: no-metric
settings: {default_compute: serverless}
jobs:
  train:
    type: sweep
    sampling_algorithm: grid
    search_space:
      depth: {type: choice, values: [1, 2]}
    objective: {primary_metric: roc_auc, goal: maximize}
    limits: {max_total_trials: 2, max_concurrent_trials: 2}
    trial:
      type: command
      code: code
      environment: azureml:any:1
      command: python -c "import mlflow; mlflow.start_run(); mlflow.log_metric('accuracy', ${{search_space.depth}})"
      inputs:
        depth: {type: integer}
"""


def test_a_sweep_whose_trials_log_no_primary_metric_fails_as_azure_does(emulated: Emulated, tmp_path: Path):
    (tmp_path / "code").mkdir()
    job = tmp_path / "job.yaml"
    job.write_text(textwrap.dedent(SWEEP_JOB))
    with pytest.raises(JobFailed, match="No trial of the sweep logged the primary metric 'roc_auc'") as failed:
        run_pipeline_job(job, emulated.workspace, data={}, python=BIN / "python", workdir=tmp_path / "jobs")
    assert failed.value.node == "train"


def applicants(n: int, seed: int = 7) -> dict:
    """Raw applicant rows, as a caller sends them (Azure ML's split format): the Dataset's columns, no features."""
    import numpy as np

    rng = np.random.default_rng(seed)
    columns = ["income", "debt_ratio", "credit_score", "age", "employment_years", "region", "gender"]
    data = [[round(float(rng.lognormal(10.8, 0.5)), 2), round(float(rng.uniform(0, 3)), 3), int(rng.integers(300, 851)),
             int(rng.integers(18, 80)), round(float(rng.uniform(0, 30)), 1), str(rng.choice(["north", "south", "east", "west"])),
             str(rng.choice(["F", "M"]))] for _ in range(n)]
    return {"input_data": {"columns": columns, "index": list(range(n)), "data": data}}


def alias_versions(emulated: Emulated) -> dict[str, dict[str, str]]:
    """What the azureml backend resolves at plan time: each `@alias` deployment's version, from the version tags."""
    from specops.spec.endpoints import Endpoint

    found = emulated.workspace.client().search_model_versions(f"name='{MODEL}'")
    aliases = tagged_aliases((str(v.version), dict(v.tags)) for v in found)
    endpoint = load_specs(emulated.root, "dev").require(Endpoint, ENDPOINT)
    return {ENDPOINT: {d.name: aliases[str(d.model_ref.alias)] for d in endpoint.spec.deployments}}


def local_endpoint(emulated: Emulated, dest: Path) -> Path:
    """A copy of the project whose dev registry is the stand-in workspace: the local server serves the same versions.
    Its records stay in the copy's .specops/ (dev's own are in the storage account CI applies with)."""
    shutil.copytree(emulated.root, dest, ignore=shutil.ignore_patterns("build", ".specops"))
    project = dest / "specs" / "project.yaml"
    text = project.read_text().replace("spec:\n", f"spec:\n  tracking_uri: {emulated.workspace.tracking_uri}\n", 1)
    text = re.sub(r"\n( +)state:.*\n\1  account_url:.*\n\1  container:.*\n", "\n", text)
    assert "account_url" not in text
    project.write_text(text)
    return dest


def test_raw_rows_get_the_same_answers_from_the_emulated_azure_deployment_and_the_local_endpoint(emulated: Emulated,
                                                                                                   tmp_path: Path):
    assert (SERVING_VENV / "bin" / "azmlinfsrv").exists(), "run `make serving`: Azure ML's inference server's own venv"
    versions = alias_versions(emulated)
    assert versions == {ENDPOINT: {"blue": "2", "green": "3"}}  # champion v2 (promoted), challenger v3 (rolled back)
    out = tmp_path / "azureml"
    render_azureml(load_specs(emulated.root, "dev"), out, versions)
    azure = serve_deployment(out / "online-deployments" / f"{ENDPOINT}.blue.yaml", emulated.workspace, venv=SERVING_VENV,
                             workdir=tmp_path / "azure")
    local_root = local_endpoint(emulated, tmp_path / "local")
    local = start_server(local_root, ENDPOINT, workers=1, env="dev")
    try:
        assert azure.model == f"{MODEL}:2"
        body = applicants(25)
        status, predicted = azure.score(body)
        assert status == 200, predicted
        answer = local.post("/score", body, **{"azureml-model-deployment": "blue"})
        assert answer.status_code == 200, answer.text
        assert predicted == answer.json() and len(predicted) == 25
        # A value outside the Dataset's declared range: the same 422 naming the row and column from both.
        bad = applicants(3)
        bad["input_data"]["data"][1][2] = 9999  # credit_score above its max of 850
        status, refused = azure.score(bad)
        answer = local.post("/score", bad, **{"azureml-model-deployment": "blue"})
        assert (status, refused) == (answer.status_code, answer.json()) and status == 422
        # The data collector received the raw columns the monitor watches, and the predictions, joined by request.
        inputs = azure.wait_collected("model_inputs", 25)
        outputs = azure.wait_collected("model_outputs", 25)
        assert set(inputs[0]) == set(body["input_data"]["columns"]) - {"gender"}  # raw columns; the sensitive one is not an input
        assert [row["income"] for row in inputs] == [row[0] for row in body["input_data"]["data"]]
        assert [row["prediction"] for row in outputs] == predicted
        correlations = azure.collected.correlations
        assert all(correlations["model_inputs"]) and correlations["model_inputs"] == correlations["model_outputs"]
    finally:
        azure.close()
        stop_server(local)
