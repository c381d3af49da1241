"""Remote state for Azure environments, against Azurite (the Azure Storage emulator), not a mock.

Three copies of the project stand for three machines (two CI runners and a laptop). They share
one workspace (the REST fake of test_backend.py, for Azure ML) and one storage account
(Azurite, for the state container): the audit log, rollout records, incidents and the apply
lock each copy sees are the ones the others wrote.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from azure.storage.blob import BlobServiceClient

from specops import project as project_module
from specops.backends.azureml import AzureMLBackend
from specops.errors import LockHeld, SpecopsError
from specops.governance import kpi
from specops.project import Project
from specops.state import records
from specops.state.storage import CONNECTION_STRING
from tests.azureml.fake_azure import (
    EXAMPLE_REGISTRY, PREFIX, RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, FakeAzureML, Series, StaticTokenCredential, _stored,
)
from tests.azureml.test_backend import ANALYSED_STEPS, GATE, HEALTHY, FakeClock, use_canary
from tests.conftest import REPO

pytestmark = pytest.mark.filterwarnings("ignore")
AZURITE = REPO / "tools" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's documented development account (a published, well-known key: not a secret).
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def azurite(tmp_path_factory) -> Iterator[str]:
    """One Azurite blob service for the module (in memory); yields its account URL."""
    if not AZURITE.exists():
        pytest.fail(f"Azurite is missing ({AZURITE.relative_to(REPO)}): run `make tools` (make test builds it first)")
    port = free_port()
    # In memory: nothing written to disk (Azurite then refuses --location); its debug log is off by default.
    process = subprocess.Popen([str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
                                "--skipApiVersionCheck", "--loose", "--silent"],
                               cwd=tmp_path_factory.mktemp("azurite"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Azurite did not start: {process.stderr.read().decode() if process.stderr else ''}") \
                        from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/{ACCOUNT}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)


REMOTE_STATE = """\
      state:
        account_url: ${SPECOPS_STATE_ACCOUNT_URL}
        container: specops-state
"""


@pytest.fixture
def machines(project: Path, tmp_path: Path, azurite: str, monkeypatch) -> list[Path]:
    """Three copies of the project with the dev environment's state in Azurite (a fresh container each test),
    one fake Azure ML workspace behind all of them."""
    container = f"state-{uuid.uuid4().hex[:12]}"
    spec = project / "specs" / "project.yaml"
    text = spec.read_text()
    assert "    dev:\n      backend: azureml\n" in text
    spec.write_text(text.replace("    dev:\n      backend: azureml\n", "    dev:\n      backend: azureml\n"
                                 + REMOTE_STATE.replace("specops-state", container)))
    copies = [project]
    for name in ("runner-b", "laptop"):
        shutil.copytree(project, tmp_path / name)
        copies.append(tmp_path / name)
    monkeypatch.setenv("SPECOPS_STATE_ACCOUNT_URL", azurite)
    monkeypatch.setenv(CONNECTION_STRING, f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
                                          f"BlobEndpoint={azurite};")
    for name, value in (("AZURE_SUBSCRIPTION_ID", SUBSCRIPTION), ("AZURE_RESOURCE_GROUP", RESOURCE_GROUP),
                        ("AZURE_ML_WORKSPACE", WORKSPACE)):
        monkeypatch.setenv(name, value)
    return copies


@pytest.fixture
def workspace(monkeypatch, clock: FakeClock) -> FakeAzureML:
    fake = FakeAzureML(registries=(EXAMPLE_REGISTRY,))
    for version in (3, 4):
        fake.seed_model("credit-risk", version)
    monkeypatch.setattr(project_module, "create_backend", lambda project: AzureMLBackend(
        project, credential=StaticTokenCredential(), transport=fake, retry_total=2, retry_backoff_factor=0,
        sleep=clock.sleep, clock=clock, analysis_wait=300))
    return fake


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def set_traffic(root: Path, old: str, new: str) -> None:
    spec = root / "specs" / "serving.yaml"
    spec.write_text(spec.read_text().replace(f"traffic: {old}", f"traffic: {new}"))


def test_two_machines_apply_one_at_a_time_and_a_third_sees_both_releases(machines: list[Path], workspace: FakeAzureML,
                                                                           clock: FakeClock, monkeypatch):
    runner_a, runner_b, laptop = machines
    for root in machines:  # the same commit on every machine: blue alone, analysed canary steps
        spec = use_canary(root, ANALYSED_STEPS, "{blue: 100}")
        spec.write_text(spec.read_text() + GATE)
    Project(runner_a, "dev").apply()
    assert not (runner_a / ".specops" / "state").exists()  # nothing of it on the runner's disk
    for root in machines:  # the next commit: everything to green, through the canary
        set_traffic(root, "{blue: 100}", "{green: 100}")
    workspace.series.update(HEALTHY)

    # While runner A walks its canary (a pause of the fake clock), runner B's apply is refused at once.
    refusals: list[str] = []
    a_sleep = clock.sleep

    def b_applies_meanwhile(seconds: float) -> None:
        if not refusals:
            started = time.monotonic()
            with pytest.raises(LockHeld) as refused:
                Project(runner_b, "dev").apply()
            refusals.append(str(refused.value))
            assert time.monotonic() - started < 10  # at once: no waiting for the lease
        a_sleep(seconds)

    clock.sleep = b_applies_meanwhile
    Project(runner_a, "dev").apply()
    clock.sleep = a_sleep
    [refusal] = refusals
    assert "apply --env dev" in refusal and f"pid {os.getpid()}" in refusal and socket.gethostname() in refusal
    assert "specops-state" not in refusal and "/apply.lock" in refusal  # names the lease's blob
    # Runner B sees what A did: its plan is empty (the rollout record and state came from the container).
    assert Project(runner_b, "dev").plan().empty

    # The second release, from runner B: back to blue through a canary.
    for root in machines:
        set_traffic(root, "{green: 100}", "{blue: 100}")
    Project(runner_b, "dev").apply()

    # The laptop (a third copy that never applied) sees one truth: state, rollout, audit log, KPIs.
    session = Project(laptop, "dev")
    status = session.status()
    assert status.serial == Project(runner_a, "dev").status().serial > 0
    assert status.rollouts["credit-online"].status == records.HEALTHY
    assert status.rollouts["credit-online"].stable == "blue"
    promotions = [e for e in session.audit.entries() if e["action"] == "promote"]
    assert len(promotions) == 2 and {e["env"] for e in promotions} == {"dev"}
    # The registry half of the KPIs reads MLflow, which the REST fake does not serve: only the audit log's count here.
    monkeypatch.setattr(kpi, "registry_versions", lambda specs: [])
    kpis = {k.name: k for k in kpi.compute(session.specs)}
    assert kpis["deployment frequency"].detail.startswith("2 release(s)")
    assert kpis["change failure rate"].detail == "0 rollback(s) for 2 release(s)"
    assert not (laptop / ".specops" / "audit.jsonl").exists()


def test_a_rollback_s_incident_is_in_the_container(machines: list[Path], workspace: FakeAzureML):
    runner, _, laptop = machines
    for root in (runner, laptop):
        spec = use_canary(root, ANALYSED_STEPS, "{blue: 100}")
        spec.write_text(spec.read_text() + GATE)
    Project(runner, "dev").apply()
    set_traffic(runner, "{blue: 100}", "{green: 100}")
    workspace.series.update({**HEALTHY, "green": Series(requests=120, errors=12, p95_ms=90)})
    with pytest.raises(SpecopsError, match="rolled back"):
        Project(runner, "dev").apply()
    session = Project(laptop, "dev")
    record = session.state.rollout("credit-online")
    assert record.status == records.DEGRADED and record.incident
    [incident] = [e for e in session.audit.entries() if e["action"] == "incident"]
    assert incident["record"].endswith(f"/credit-risk/incidents/{record.incident}.md")
    text = session.storage.read(f"incidents/{record.incident}.md")
    assert text is not None and record.incident in text
    assert [e["action"] for e in session.audit.entries()][-2:] == ["rollback", "incident"]


DATASTORE = {"properties": {"datastoreType": "AzureBlob", "accountName": ACCOUNT, "containerName": "azureml-blobstore-test",
                            "endpoint": "core.windows.net", "protocol": "https", "isDefault": True,
                            "credentials": {"credentialsType": "None"}}}


def seed_datastore(fake: FakeAzureML) -> BlobServiceClient:
    """The workspace's default datastore, on the same account as the state (Azurite's), with the container
    Azure ML creates with the workspace."""
    path = "/datastores/workspaceblobstore"
    fake.store[path] = _stored(f"{PREFIX}{path}", DATASTORE)
    service = BlobServiceClient.from_connection_string(os.environ[CONNECTION_STRING])
    container = service.get_container_client("azureml-blobstore-test")
    if not container.exists():
        container.create_container()
    return service


def test_apply_uploads_the_dataset_to_where_its_data_asset_points(machines: list[Path], workspace: FakeAzureML):
    root = machines[0]
    rows = "income,debt_ratio\n52000,0.3\n"
    (root / "data").mkdir()
    (root / "data" / "credit.csv").write_text(rows)
    service = seed_datastore(workspace)
    lines: list[str] = []
    Project(root, "dev").apply(report=lines.append)
    [asset] = [body for path, body in workspace.bodies if path.startswith("/data/credit-applications/versions/")]
    uri = asset["properties"]["dataUri"]
    blob_name = uri.split("/paths/", 1)[1]
    uploaded = service.get_container_client("azureml-blobstore-test").get_blob_client(blob_name).download_blob().readall()
    assert uploaded.decode() == rows
    assert any(line.startswith("Data/credit-applications: uploaded credit.csv (") for line in lines)
    # Monitoring's reference data: an mltable asset on the same folder, whose MLTable file reads that CSV.
    [reference] = [body for path, body in workspace.bodies if path.startswith("/data/credit-applications-reference/versions/")]
    folder = reference["properties"]["dataUri"].split("/paths/", 1)[1]
    assert reference["properties"]["dataType"] == "mltable" and blob_name.startswith(folder)
    container = service.get_container_client("azureml-blobstore-test")
    mltable = yaml.safe_load(container.get_blob_client(folder + "MLTable").download_blob().readall())
    [source] = mltable["paths"]
    assert container.get_blob_client(folder + source["file"].removeprefix("./")).download_blob().readall().decode() == rows
    assert mltable["transformations"][0]["read_delimited"]["header"] == "all_files_same_headers"
