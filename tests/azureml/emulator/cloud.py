"""`specops apply --env dev` end to end on the emulator: what joins the REST fake to Azure ML's runtime parts.

Azure ML is one service seen two ways: jobs reach the workspace's registry through MLflow, apply through
REST. Here the stand-in workspace (an `mlflow server`) is the MLflow side and `FakeAzureML` the REST side,
joined as the service joins them:
- a pipeline job apply submits is run by the emulator (jobs.py) when the fake receives it, and ends
  Completed or Failed as that run did;
- the versions its register step writes to the stand-in's registry (with their `specops.alias.*` tags) appear
  among the fake's model versions, and a tag apply moves (a promotion) is seen by the next job's register step;
- each online deployment apply makes is served by azureml-inference-server-http (serving.py) on the version
  it names; while the rollout engine waits (its clock is this harness's), requests split by the endpoint's
  live traffic go to the served deployments, and what they answered (requests, server-side failures, p95
  latency per minute) is what the fake's Azure Monitor route reports.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from specops.registry import ALIAS_TAG
from specops.render.azureml import render_azureml
from specops.spec import load_specs
from tests.azureml.emulator.jobs import JobFailed, PipelineRun, run_pipeline_job
from tests.azureml.emulator.serving import ServedDeployment, serve_deployment
from tests.azureml.emulator.workspace import Workspace
from tests.azureml.fake_azure import FakeAzureML, Series

ALIAS_PREFIX = ALIAS_TAG.format(alias="")
RATE_PER_MINUTE = 300  # requests the endpoint receives a minute, split by its live traffic


@dataclass
class EmulatedDev:
    root: Path  # the project, as CI checks it out
    fake: FakeAzureML
    workspace: Workspace
    model: str
    endpoint: str
    job_yaml: Path
    data: dict[str, Path]
    python: Path
    serving_venv: Path
    workdir: Path
    body: Callable[[int], dict[str, Any]]  # n raw rows, as a caller sends them
    runs: list[PipelineRun] = field(default_factory=list)
    served: dict[str, ServedDeployment] = field(default_factory=dict)
    answered: dict[str, list[int]] = field(default_factory=dict)  # deployment -> status of each request it got
    now: datetime = field(default_factory=lambda: datetime(2026, 1, 5, 9, 0, tzinfo=UTC))

    def __post_init__(self) -> None:
        self.fake.run_job = self.run_job

    # -- jobs ---------------------------------------------------------------------------------------
    def run_job(self, name: str) -> str:
        """A submitted pipeline job, run now; its registered versions then show through REST."""
        self.push_tags()
        try:
            self.runs.append(run_pipeline_job(self.job_yaml, self.workspace, data=self.data, python=self.python,
                                              workdir=self.workdir / f"job-{len(self.runs) + 1}"))
            status = "Completed"
        except JobFailed:
            status = "Failed"
        self.mirror()
        return status

    def mirror(self) -> None:
        """The stand-in registry's versions and alias tags, as the REST API lists them."""
        for version in self.workspace.client().search_model_versions(f"name='{self.model}'"):
            path = f"/models/{self.model}/versions/{version.version}".lower()
            if path not in self.fake.store:
                self.fake.seed_model(self.model, int(version.version))
            tags = self.fake.store[path]["properties"].setdefault("tags", {})
            for key in [k for k in tags if k.startswith(ALIAS_PREFIX)]:
                del tags[key]
            tags.update({k: v for k, v in version.tags.items() if k.startswith(ALIAS_PREFIX)})

    def push_tags(self) -> None:
        """Alias tags REST moved (a promotion), as MLflow sees them."""
        client = self.workspace.client()
        for path, body in self.fake.store.items():
            if not path.startswith(f"/models/{self.model}/versions/"):
                continue
            version, tags = body["name"], body["properties"].get("tags") or {}
            held = client.get_model_version(self.model, version).tags
            for key in {k for k in [*tags, *held] if k.startswith(ALIAS_PREFIX)}:
                if key in tags and held.get(key) != tags[key]:
                    client.set_model_version_tag(self.model, version, key, tags[key])
                elif key not in tags and key in held:
                    client.delete_model_version_tag(self.model, version, key)

    # -- the rollout's clock: time passes as traffic --------------------------------------------------
    def clock(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.serve()
        self.traffic(seconds)
        self.now += timedelta(seconds=seconds)

    def serve(self) -> None:
        """Each deployment of the endpoint served on the version the fake says it serves."""
        deployments = {body["name"]: str(body["properties"]["model"]).rsplit("/", 1)[-1]
                       for path, body in self.fake.store.items()
                       if path.startswith(f"/onlineendpoints/{self.endpoint}/deployments/")}
        stale = [d for d, version in deployments.items()
                 if d not in self.served or self.served[d].model != f"{self.model}:{version}"]
        if not stale:
            return
        out = self.workdir / f"render-{time.monotonic_ns()}"
        render_azureml(load_specs(self.root, "dev"), out, {self.endpoint: deployments})
        for name in stale:
            if name in self.served:
                self.served.pop(name).close()
            self.served[name] = serve_deployment(out / "online-deployments" / f"{self.endpoint}.{name}.yaml",
                                                 self.workspace, venv=self.serving_venv,
                                                 workdir=self.workdir / f"serve-{name}-{deployments[name]}")

    def traffic(self, seconds: float) -> None:
        """`seconds` of the endpoint's traffic, one row a request, split by its live weights; Azure Monitor
        then reports per minute what each deployment answered."""
        endpoint = self.fake.store[f"/onlineendpoints/{self.endpoint}"]["properties"]
        weights = {name: weight for name, weight in (endpoint.get("traffic") or {}).items() if weight}
        total = RATE_PER_MINUTE * seconds / 60
        per_minute = 60 / seconds if seconds else 0
        for name, weight in weights.items():
            count = round(total * weight / sum(weights.values()))
            served = self.served[name]
            before = len(served.requests)
            for _ in range(count):
                served.score(self.body(1))
            answered = served.requests[before:]
            self.answered.setdefault(name, []).extend(status for status, _ in answered)
            failed = sum(status >= 500 for status, _ in answered)
            self.fake.series[name] = Series(requests=round(count * per_minute), errors=round(failed * per_minute),
                                            p95_ms=_p95([took * 1000 for _, took in answered]))

    def close(self) -> None:
        for served in self.served.values():
            served.close()
        self.served.clear()


def register_bad_version(workspace: Workspace, model: str, folder: Path) -> str:
    """A new challenger that cannot score: fitted on two columns, asked for the feature set's (a broken training
    that slipped through). Registered as the register step registers (artifacts, then a version), tagged challenger."""
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    client = workspace.client()
    mlflow.sklearn.save_model(LogisticRegression().fit([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]], [0, 1, 1, 0]),
                              str(folder))
    experiment = client.get_experiment_by_name("bad-version") or client.get_experiment(client.create_experiment("bad-version"))
    run = client.create_run(experiment.experiment_id)
    client.log_artifacts(run.info.run_id, str(folder), "model")
    client.set_terminated(run.info.run_id)
    challenger = ALIAS_TAG.format(alias="challenger")
    for held in client.search_model_versions(f"name='{model}'"):
        if held.tags.get(challenger) == "true":
            client.delete_model_version_tag(model, held.version, challenger)
    version = client.create_model_version(model, f"{run.info.artifact_uri}/model", run.info.run_id, tags={challenger: "true"})
    return str(version.version)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else 0.0
