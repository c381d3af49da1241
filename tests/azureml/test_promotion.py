"""Promotion to prod (issue 10, item 11): prod trains nothing and serves what dev trained, gated and promoted,
through an Azure ML registry both workspaces share (Azure/mlops-v2's way). Two fake workspaces and one registry
at the HTTP transport: dev's promotions share into the registry, prod's plan resolves its aliases there, and
prod walks each new version out as a canary of its own."""
from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from specops import project as project_module
from specops.backends.azureml import AzureMLBackend
from specops.errors import SpecopsError
from specops.project import Project
from specops.state import records
from tests.azureml.fake_azure import (
    DISCOVERY_HOST, HOST, RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, FakeAzureML, FakeCloud, StaticTokenCredential,
)
from tests.azureml.test_backend import ANALYSED_STEPS, GATE, HEALTHY, FakeClock, keys, tag, use_canary

pytestmark = pytest.mark.filterwarnings("ignore")
REGISTRY = "credit-registry"
PROD_WORKSPACE = "ws-prod"
PROMOTED = f"""\
    prod:
      backend: azureml
      target:
        subscription_id: ${{AZURE_SUBSCRIPTION_ID}}
        resource_group: ${{AZURE_RESOURCE_GROUP}}
        workspace: ${{AZURE_ML_PROD_WORKSPACE}}
      compute: cpu-cluster
      promotion: {{source: dev, registry: {REGISTRY}}}
      values: {{max_parallel: 8, monitor_window: P1D, monitor_schedule: "0 4 * * *"}}
"""


def registry_uri(version: int) -> str:
    return f"azureml://registries/{REGISTRY}/models/credit-risk/versions/{version}"


class Cloud:
    def __init__(self) -> None:
        self.dev, self.prod = FakeAzureML(WORKSPACE), FakeAzureML(PROD_WORKSPACE)
        self.transport = FakeCloud(self.dev, self.prod)
        self.transport.registries[REGISTRY] = {}
        self.clock: FakeClock | None = None  # the backends' clock, set by the fixture

    @property
    def registry(self) -> list[str]:
        return sorted(key.rsplit("/", 1)[1] for key in self.transport.registries[REGISTRY])

    def served(self, workspace: FakeAzureML, deployment: str) -> str:
        return workspace.store[f"/onlineendpoints/credit-online/deployments/{deployment}"]["properties"]["model"]


@pytest.fixture
def cloud(monkeypatch, project: Path) -> Cloud:
    monkeypatch.setattr(socket.socket, "connect", lambda *a, **k: pytest.fail(f"a socket connection was attempted: {a}"))
    for name, value in (("AZURE_SUBSCRIPTION_ID", SUBSCRIPTION), ("AZURE_RESOURCE_GROUP", RESOURCE_GROUP),
                        ("AZURE_ML_WORKSPACE", WORKSPACE), ("AZURE_ML_PROD_WORKSPACE", PROD_WORKSPACE)):
        monkeypatch.setenv(name, value)
    clock, cloud = FakeClock(), Cloud()
    cloud.clock = clock
    for version in (3, 4):
        cloud.dev.seed_model("credit-risk", version)
    monkeypatch.setattr(project_module, "create_backend", lambda project: AzureMLBackend(
        project, credential=StaticTokenCredential(), transport=cloud.transport, retry_total=2, retry_backoff_factor=0,
        sleep=clock.sleep, clock=clock, analysis_wait=300))
    # prod takes its versions from dev through the registry; blue serves the champion, green the challenger.
    spec = project / "specs" / "project.yaml"
    spec.write_text(re.sub(r"    prod:\n(      .*\n)+", PROMOTED, spec.read_text()))
    serving = use_canary(project, ANALYSED_STEPS, "{blue: 100}")
    text = serving.read_text().replace("model: credit-risk@champion", "model: credit-risk@challenger")
    serving.write_text(text.replace("model: credit-risk@3", "model: credit-risk@champion", 1) + GATE)
    yield cloud
    assert cloud.dev.hosts | cloud.prod.hosts <= {HOST, DISCOVERY_HOST}


def test_prod_serves_what_dev_promoted_through_the_registry_and_never_trains(project: Path, cloud: Cloud):
    tag(cloud.dev, 3, "champion"), tag(cloud.dev, 3, "challenger")
    with pytest.raises(SpecopsError, match=f"registry {REGISTRY} holds no version of credit-risk yet: apply dev first"):
        Project(project, "prod").plan()
    # dev's first apply shares its champion, v3, into the registry.
    assert "+ RegistryModel/credit-risk@credit-registry" in keys(Project(project, "dev").plan())
    Project(project, "dev").apply()
    assert cloud.registry == ["3"]
    assert Project(project, "dev").plan().empty
    # prod: no pipeline job, component or schedule; its deployments serve the registry's v3.
    plan = Project(project, "prod").plan()
    assert not [k for k in keys(plan) if re.search(r"PipelineJob|JobSchedule|CommandComponent|RegistryModel", k)]
    assert any("prod trains nothing" in note and REGISTRY in note for note in plan.notes)
    Project(project, "prod").apply()
    assert cloud.served(cloud.prod, "blue") == cloud.served(cloud.prod, "green") == registry_uri(3)
    assert not [p for m, p in cloud.prod.requests if m == "PUT" and p.startswith(("/jobs/", "/schedules/credit-risk-training"))]
    assert Project(project, "prod").plan().empty

    # dev trains v4, walks its canary and promotes it: the promotion shares v4 into the registry.
    tag(cloud.dev, 3, "challenger", on=False), tag(cloud.dev, 4, "challenger")
    cloud.dev.series.update(HEALTHY)
    lines: list[str] = []
    Project(project, "dev").apply(report=lines.append)
    assert f"RegistryModel/credit-risk: v4 shared into registry {REGISTRY} for prod" in lines
    assert cloud.registry == ["3", "4"]
    # The plan for prod shows green v3 -> v4 (the registry's), and apply walks prod's own canary to promotion.
    plan = Project(project, "prod").plan()
    assert keys(plan) == ["~ OnlineDeployment/credit-online.green"]
    assert [(c.path, c.old, c.new) for c in plan.operations[0].changes] == [("model", registry_uri(3), registry_uri(4))]
    cloud.prod.series.update(HEALTHY)
    Project(project, "prod").apply()
    assert cloud.served(cloud.prod, "blue") == cloud.served(cloud.prod, "green") == registry_uri(4)
    session = Project(project, "prod")
    assert session.state.champion("credit-risk") == "4"
    assert session.state.rollout("credit-online").status == records.HEALTHY
    assert session.plan().empty


def test_a_version_prod_rolls_back_is_not_its_champion(project: Path, cloud: Cloud):
    tag(cloud.dev, 3, "champion"), tag(cloud.dev, 3, "challenger")
    Project(project, "dev").apply()
    Project(project, "prod").apply()
    tag(cloud.dev, 3, "challenger", on=False), tag(cloud.dev, 4, "challenger")
    cloud.dev.series.update(HEALTHY)
    Project(project, "dev").apply()
    # v4 passed dev's canary but fails prod's: rolled back there, blue stays on v3, prod's champion.
    from tests.azureml.fake_azure import Series

    cloud.prod.series.update({"blue": HEALTHY["blue"], "green": Series(requests=120, errors=12, p95_ms=90)})
    with pytest.raises(SpecopsError, match="rolled back"):
        Project(project, "prod").apply()
    session = Project(project, "prod")
    assert cloud.served(cloud.prod, "blue") == registry_uri(3)
    assert session.state.champion("credit-risk") == "3"
    assert session.state.rollout("credit-online").status == records.DEGRADED
    # Nothing retries it: green keeps v4 without traffic until dev promotes another version.
    assert session.plan().empty


def test_the_first_version_a_fresh_dev_registers_is_shared_by_that_same_apply(project: Path, cloud: Cloud):
    for key in [k for k in cloud.dev.store if k.startswith("/models/")]:
        del cloud.dev.store[key]

    def run_job(name: str) -> str:  # the job registers v1, champion and challenger (the emulator proves that part)
        cloud.dev.seed_model("credit-risk", 1)
        tag(cloud.dev, 1, "champion"), tag(cloud.dev, 1, "challenger")
        return "Completed"

    cloud.dev.run_job = run_job
    lines: list[str] = []
    Project(project, "dev").apply(report=lines.append)
    assert f"RegistryModel/credit-risk: v1 shared into registry {REGISTRY} for prod" in lines
    assert cloud.registry == ["1"] and Project(project, "dev").plan().empty
    Project(project, "prod").apply()
    assert cloud.served(cloud.prod, "blue") == registry_uri(1)


def test_a_promotion_stands_when_the_registry_fails_and_the_next_apply_shares_it(project: Path, cloud: Cloud):
    from tests.azureml.fake_azure import Fault

    tag(cloud.dev, 3, "champion"), tag(cloud.dev, 3, "challenger")
    Project(project, "dev").apply()
    tag(cloud.dev, 3, "challenger", on=False), tag(cloud.dev, 4, "challenger")
    cloud.dev.series.update(HEALTHY)
    cloud.dev.faults.append(Fault("POST", r"^registry:.*/import$", 500, times=10))
    lines: list[str] = []
    Project(project, "dev").apply(report=lines.append)
    assert cloud.served(cloud.dev, "blue").endswith("/versions/4")  # promoted, not rolled back
    assert any("not in step with v4 yet" in line for line in lines) and cloud.registry == ["3"]
    cloud.dev.faults.clear()
    plan = Project(project, "dev").plan()
    assert keys(plan) == ["~ RegistryModel/credit-risk@credit-registry"]
    Project(project, "dev").apply()
    assert cloud.registry == ["3", "4"]


def test_a_promotion_dev_undoes_is_withdrawn_from_the_registry_and_prod_goes_back(project: Path, cloud: Cloud):
    from specops.rollout.engine import Rollout

    tag(cloud.dev, 3, "champion"), tag(cloud.dev, 3, "challenger")
    Project(project, "dev").apply()
    Project(project, "prod").apply()
    tag(cloud.dev, 3, "challenger", on=False), tag(cloud.dev, 4, "challenger")
    cloud.dev.series.update(HEALTHY), cloud.prod.series.update(HEALTHY)
    Project(project, "dev").apply()
    Project(project, "prod").apply()
    assert cloud.served(cloud.prod, "blue") == registry_uri(4)
    # dev's monitor finds v4 bad within its rollback window: the promotion is undone, v3 is champion again.
    lines: list[str] = []
    dev = Project(project, "dev")
    engine = Rollout(dev, "credit-online", ports=dev.backend.rollout_ports("credit-online", lines.append),
                     sleep=cloud.clock.sleep, clock=lambda: cloud.clock().timestamp())
    engine.undo()
    assert any("v4 withdrawn from registry credit-registry" in line for line in lines)
    assert cloud.registry == ["3", "4"] and cloud.transport.registries[REGISTRY][
        "models/credit-risk/versions/4"]["properties"]["isArchived"] is True
    # prod no longer takes v4: its plan puts both deployments back on v3, the last version dev stands behind.
    plan = Project(project, "prod").plan()
    assert {(op.key, c.new) for op in plan.operations for c in op.changes if c.path == "model"} == {
        ("OnlineDeployment/credit-online.blue", registry_uri(3)), ("OnlineDeployment/credit-online.green", registry_uri(3))}


def test_a_registry_that_does_not_exist_is_named(project: Path, cloud: Cloud):
    del cloud.transport.registries[REGISTRY]
    with pytest.raises(SpecopsError, match=f"Azure ML registry '{REGISTRY}' not found .*mlRegistryName"):
        Project(project, "prod").plan()


@pytest.mark.parametrize("promotion, message", [
    ("{source: staging, registry: r-1}", r"environments.prod.promotion.source: .staging. must name another environment \(dev, local\)"),
    ("{source: prod, registry: r-1}", "promotion.source: .prod. must name another environment"),
    ("{source: local, registry: r-1}", "promotion.source: .local. must be an azureml environment that trains"),
    ("{source: dev, registry: 'no spaces'}", r"promotion\.registry: String should match pattern"),
])
def test_a_promotion_that_cannot_work_is_refused_naming_the_field(project: Path, promotion: str, message: str):
    from specops.spec import load_specs

    spec = project / "specs" / "project.yaml"
    spec.write_text(re.sub(r"    prod:\n(      .*\n)+", PROMOTED.replace(f"{{source: dev, registry: {REGISTRY}}}", promotion),
                           spec.read_text()))
    with pytest.raises(SpecopsError, match=message) as raised:
        load_specs(project, "prod")
    assert "project.yaml" in str(raised.value)
