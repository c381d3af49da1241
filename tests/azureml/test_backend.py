"""plan/apply against a fake Azure ML workspace at the HTTP transport: the exact REST calls, no account, no network."""
from __future__ import annotations

import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from specops import project as project_module
from specops.project import Project
from specops.backends.azure_metrics import AzureMonitorMetrics
from specops.backends.azureml import AzureMLBackend, canary_of
from specops.rollout.engine import Rollout
from specops.state import records
from specops.errors import SpecopsError
from specops.rollout.metrics import Traffic
from tests.azureml.fake_azure import (
    DISCOVERY_HOST, EXAMPLE_REGISTRY, HOST, PREFIX, RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, Fault, FakeAzureML, Series,
    StaticTokenCredential,
)

pytestmark = pytest.mark.filterwarnings("ignore")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
OPERATION_ID = re.compile(r"/operations/\d+$")


class FakeClock:
    """Time that passes only when the backend sleeps: pauses and analysis waits cost no real time."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        self.sleeps: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(monkeypatch, project: Path, clock: FakeClock) -> FakeAzureML:
    """The fake workspace, wired in where a Project picks its backend; sockets closed to the outside."""
    def no_network(*args, **kwargs):
        raise AssertionError(f"a socket connection was attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    for name, value in (("AZURE_SUBSCRIPTION_ID", SUBSCRIPTION), ("AZURE_RESOURCE_GROUP", RESOURCE_GROUP),
                        ("AZURE_ML_WORKSPACE", WORKSPACE)):
        monkeypatch.setenv(name, value)
    workspace = FakeAzureML(registries=(EXAMPLE_REGISTRY,))
    for version in (3, 4):
        workspace.seed_model("credit-risk", version)  # registered by earlier pipeline runs
    # Fresh backend per plan, as the CLI makes one per command; retries kept short for the tests.
    monkeypatch.setattr(project_module, "create_backend", lambda project: AzureMLBackend(
        project, credential=StaticTokenCredential(), transport=workspace, retry_total=2, retry_backoff_factor=0,
        sleep=clock.sleep, clock=clock, analysis_wait=300))
    yield workspace
    assert workspace.hosts <= {HOST, DISCOVERY_HOST}


def keys(plan) -> list[str]:
    return [f"{op.action.symbol} {op.key}" for op in plan.operations]


def apply_logged(root: Path, fake: FakeAzureML) -> dict[str, list[str]]:
    """Apply; return each operation's REST calls (ids the SDK derives from content hashes masked)."""
    per_op: dict[str, list[str]] = {}

    def report(line: str) -> None:
        if line[:2] in ("+ ", "~ ", "- "):
            fake.requests.append(("#", line))

    Project(root, "dev").apply(report=report)
    current = None
    for method, path in fake.requests:
        if method == "#":
            current = path
            per_op[current] = []
        elif current is not None:
            per_op[current].append(f"{method} {OPERATION_ID.sub('/operations/<id>', UUID.sub('<hash>', path))}")
    return per_op


CREATE_ORDER = [
    "+ Project/credit-risk", "+ BatchEndpoint/credit-batch", "+ Environment/credit-risk-serving-env",
    "+ BatchDeployment/credit-batch.main",
    "+ BatchDefaults/credit-batch", "+ Data/credit-applications", "+ Data/credit-applications-reference",
    "+ Environment/credit-risk-env",
    "+ FeatureSet/credit-features", "+ Gate/promotion", "+ JobSchedule/credit-risk-training-schedule",
    "+ OnlineEndpoint/credit-online", "+ OnlineDeployment/credit-online.blue",
    "+ OnlineDeployment/credit-online.green", "+ OnlineDeployment/credit-online.shadow",
    "+ OnlineTraffic/credit-online", "+ MonitorSchedule/credit-drift", "+ PipelineJob/credit-risk-training",
]


def test_first_apply_creates_everything_with_the_expected_calls(project: Path, fake: FakeAzureML):
    plan = Project(project, "dev").plan()
    assert keys(plan) == CREATE_ORDER
    assert all(m == "GET" for m, _ in fake.requests)  # planning only reads
    fake.requests.clear()
    calls = apply_logged(project, fake)
    env_version = next(op for op in plan.operations if op.key == "Environment/credit-risk-env").after["version"]
    assert calls["+ Environment/credit-risk-env"] == [f"PUT /environments/credit-risk-env/versions/{env_version}"]
    assert calls["+ OnlineEndpoint/credit-online"] == [
        "GET /",  # the workspace, for its location
        "PUT /onlineEndpoints/credit-online", "GET /operations/<id>", "GET /onlineEndpoints/credit-online",
    ]
    blue = calls["+ OnlineDeployment/credit-online.blue"]
    assert blue[:3] == [
        "GET /onlineEndpoints/credit-online",
        "PUT /data/credit-online-blue-model_inputs/versions/1", "PUT /data/credit-online-blue-model_outputs/versions/1",
    ]
    assert blue[-3:] == ["PUT /onlineEndpoints/credit-online/deployments/blue", "GET /operations/<id>",
                         "GET /onlineEndpoints/credit-online/deployments/blue"]
    # The scoring script's code snapshot, looked up by its content hash (the fake holds it: reused, not uploaded).
    assert "GET /codes/<hash>/versions" in blue and not [c for c in blue if c.startswith("PUT /codes")]
    assert "GET /models/credit-risk/versions" in calls["+ OnlineDeployment/credit-online.green"]  # @latest resolved
    assert calls["+ OnlineTraffic/credit-online"] == [
        "GET /onlineEndpoints/credit-online", "GET /onlineEndpoints/credit-online/deployments",
        "GET /", "PUT /onlineEndpoints/credit-online", "GET /operations/<id>", "GET /onlineEndpoints/credit-online",
    ]
    assert calls["+ MonitorSchedule/credit-drift"] == [
        "GET /onlineEndpoints/credit-online/deployments/blue",  # the SDK checks the monitored deployment
        "PUT /schedules/credit-drift", "GET /operations/<id>", "GET /schedules/credit-drift",
    ]
    job = calls["+ PipelineJob/credit-risk-training"]
    assert job[-1] == f"PUT /jobs/{plan.operations[-1].after['name']}"
    assert job.count("PUT /components/azureml_anonymous/versions/<hash>") == 7  # six stages and the custom step
    assert [c for c in job if c.startswith("PUT /codes")] == []  # the code snapshot is reused, not uploaded
    traffic = [body for path, body in fake.bodies if path == "/onlineEndpoints/credit-online"][-1]
    assert traffic["properties"]["traffic"] == {"blue": 90, "green": 10}
    assert traffic["properties"]["mirrorTraffic"] == {"shadow": 20}


def test_second_plan_is_empty_and_a_second_apply_writes_nothing(project: Path, fake: FakeAzureML):
    Project(project, "dev").apply()
    fake.requests.clear()
    assert Project(project, "dev").plan().empty
    assert Project(project, "dev").apply().applied == []
    assert {m for m, _ in fake.requests} == {"GET"}


def test_changing_one_field_updates_exactly_that_resource(project: Path, fake: FakeAzureML):
    Project(project, "dev").apply()
    spec = project / "specs" / "serving.yaml"
    spec.write_text(spec.read_text().replace("instance_count: 2", "instance_count: 3"))
    plan = Project(project, "dev").plan()
    [op] = plan.operations
    assert op.key == "OnlineDeployment/credit-online.blue"
    assert [(c.path, c.old, c.new) for c in op.changes] == [("instance_count", 2, 3)]
    fake.requests.clear()
    assert [c for c in fake.calls() if not c.startswith("GET ")] == []
    calls = apply_logged(project, fake)
    assert [c for c in calls["~ OnlineDeployment/credit-online.blue"] if not c.startswith("GET ")] == [
        "PUT /data/credit-online-blue-model_inputs/versions/1", "PUT /data/credit-online-blue-model_outputs/versions/1",
        "PUT /onlineEndpoints/credit-online/deployments/blue",
    ]
    assert Project(project, "dev").plan().empty


def test_changing_only_an_endpoints_description_leaves_its_traffic(project: Path, fake: FakeAzureML):
    """The endpoint is updated the SDK's way (get, modify, begin_create_or_update): a PUT of the freshly
    rendered endpoint would carry no traffic and take every deployment out of service."""
    Project(project, "dev").apply()
    spec = project / "specs" / "serving.yaml"
    spec.write_text(spec.read_text().replace("metadata: {name: credit-online}\nspec:\n",
                                             "metadata: {name: credit-online}\nspec:\n  description: scores applicants\n", 1))
    [op] = Project(project, "dev").plan().operations
    assert (op.key, [(c.path, c.new) for c in op.changes]) == ("OnlineEndpoint/credit-online", [("description", "scores applicants")])
    fake.bodies.clear()
    Project(project, "dev").apply()
    [put] = [body for path, body in fake.bodies if path == "/onlineEndpoints/credit-online"]
    assert put["properties"]["traffic"] == {"blue": 90, "green": 10}
    assert put["properties"]["mirrorTraffic"] == {"shadow": 20}
    assert put["properties"]["description"] == "scores applicants"
    assert Project(project, "dev").plan().empty


def test_a_new_instance_type_is_refused_at_plan_time_with_the_way_to_do_it(project: Path, fake: FakeAzureML):
    Project(project, "dev").apply()
    spec = project / "specs" / "serving.yaml"
    spec.write_text(spec.read_text().replace("instance_count: 2", "instance_count: 2\n      instance_type: Standard_F4s_v2"))
    fake.requests.clear()
    with pytest.raises(SpecopsError, match="deployment blue runs on Standard_DS3_v2, and Azure ML cannot change the "
                                           "instance type.*Add a deployment on Standard_F4s_v2 beside it"):
        Project(project, "dev").apply()
    assert {m for m, _ in fake.requests} == {"GET"}  # nothing applied


def test_a_retraining_submits_a_new_job_with_its_reason_each_time(project: Path, fake: FakeAzureML, clock: FakeClock,
                                                                  monkeypatch):
    Project(project, "dev").apply()
    monkeypatch.setenv("SPECOPS_TRIGGER_REASON", "drift")
    names = []
    for _ in range(2):
        [op] = Project(project, "dev").plan().operations
        assert op.key == "PipelineJob/credit-risk-training"
        fake.bodies.clear()
        Project(project, "dev").apply()
        [(path, body)] = [(p, b) for p, b in fake.bodies if p.startswith("/jobs/")]
        assert body["properties"]["tags"]["specops.trigger_reason"] == "drift"
        names.append(path.removeprefix("/jobs/"))
        clock.sleep(60)
    assert names[0] != names[1] and all("-drift-" in n for n in names)
    monkeypatch.delenv("SPECOPS_TRIGGER_REASON")
    assert Project(project, "dev").plan().empty


def test_a_changed_signal_threshold_updates_the_monitor_schedule(project: Path, fake: FakeAzureML):
    Project(project, "dev").apply()
    spec = project / "specs" / "serving.yaml"
    spec.write_text(spec.read_text().replace("normalized_discounted_cumulative_gain: 0.85",
                                             "normalized_discounted_cumulative_gain: 0.8"))
    [op] = Project(project, "dev").plan().operations
    assert op.key == "MonitorSchedule/credit-drift"
    assert [(c.path, c.old, c.new) for c in op.changes] == [(
        "create_monitor.monitoring_signals.feature-attribution-drift.metric_thresholds.normalized_discounted_cumulative_gain",
        0.85, 0.8)]
    fake.bodies.clear()
    Project(project, "dev").apply()
    [body] = [body for path, body in fake.bodies if path == "/schedules/credit-drift"]
    signals = body["properties"]["action"]["monitorDefinition"]["signals"]
    assert signals["feature-attribution-drift"]["metricThreshold"] == {
        "metric": "normalizedDiscountedCumulativeGain", "threshold": {"value": 0.8}}
    # Per feature type, as the spec declares them: categorical rates are not the numerical ones.
    quality = {(t["dataType"], t["metric"]): t["threshold"]["value"] for t in signals["data-quality"]["metricThresholds"]}
    assert quality == {("Numerical", "nullValueRate"): 0.05, ("Numerical", "outOfBoundsRate"): 0.02,
                       ("Categorical", "nullValueRate"): 0.01, ("Categorical", "dataTypeErrorRate"): 0.03}
    assert set(signals) == {"data-drift", "prediction-drift", "data-quality", "feature-attribution-drift"}
    assert Project(project, "dev").plan().empty


def test_a_500_mid_apply_fails_clearly_and_the_next_apply_converges(project: Path, fake: FakeAzureML):
    # Past the SDK's two retries: the apply stops at the green deployment.
    fake.faults.append(Fault("PUT", r"/deployments/green$", 500, times=3))
    with pytest.raises(SpecopsError, match=r"OnlineDeployment/credit-online.green: Azure ML answered 500"):
        Project(project, "dev").apply()
    assert fake.calls().count("PUT /onlineEndpoints/credit-online/deployments/green") == 3
    remaining = keys(Project(project, "dev").plan())
    # What finished is in Azure and is not planned again; what was not reached still is. The endpoint
    # exists without traffic, so its traffic is an update; declarations are recorded only once all succeed.
    assert remaining == ["+ Project/credit-risk", "+ FeatureSet/credit-features", "+ Gate/promotion",
                         "+ OnlineDeployment/credit-online.green", "+ OnlineDeployment/credit-online.shadow",
                         "~ OnlineTraffic/credit-online", "+ MonitorSchedule/credit-drift",
                         "+ PipelineJob/credit-risk-training"]
    fake.requests.clear()
    calls = apply_logged(project, fake)
    assert list(calls) == remaining
    assert not any("/deployments/blue" in c and c.startswith("PUT") for cs in calls.values() for c in cs)
    assert Project(project, "dev").plan().empty


def test_throttling_is_retried_after_the_time_the_service_asks(project: Path, fake: FakeAzureML):
    fake.faults.append(Fault("PUT", r"^/environments/credit-risk-env/", 429, headers={"Retry-After": "1"}))
    Project(project, "dev").apply()
    assert [c for c in fake.calls() if c.startswith("PUT /environments/credit-risk-env/")] == [
        f"PUT /environments/credit-risk-env/versions/{_env_version(project)}"] * 2
    assert Project(project, "dev").plan().empty


def test_a_conflicting_asset_version_names_the_resource(project: Path, fake: FakeAzureML):
    path = f"/environments/credit-risk-env/versions/{_env_version(project)}"
    fake.store[path.lower()] = {"id": PREFIX + path, "name": _env_version(project),
                                "properties": {"image": "someone/else:1"}}
    [op] = [op for op in Project(project, "dev").plan().operations if op.key == "Environment/credit-risk-env"]
    assert op.action.value == "update" and ("image", "someone/else:1", op.after["image"]) in [
        (c.path, c.old, c.new) for c in op.changes]
    with pytest.raises(SpecopsError, match=r"Environment/credit-risk-env: Azure ML refused the change \(409 conflict\)"):
        Project(project, "dev").apply()


def test_a_missing_target_variable_is_named(project: Path, fake: FakeAzureML, monkeypatch):
    monkeypatch.delenv("AZURE_ML_WORKSPACE")
    with pytest.raises(SpecopsError, match="AZURE_ML_WORKSPACE"):
        Project(project, "dev").plan()
    assert fake.requests == []


def test_plan_keeps_target_references_and_says_what_azure_lacks(project: Path, fake: FakeAzureML):
    plan = Project(project, "dev").plan()
    project_op = plan.operations[0]
    assert project_op.after["spec"]["environments"]["dev"]["target"]["workspace"] == "${AZURE_ML_WORKSPACE}"
    assert any("bandit runs only on the local backend" in note for note in plan.notes)
    assert any(note.startswith("Monitor/credit-drift: spec.performance") for note in plan.notes)
    assert any(note.startswith("SLO/credit-online: local only") for note in plan.notes)


def use_canary(project: Path, steps: str, traffic: str) -> Path:
    """Swap the example's bandit rollout for canary steps and start from `traffic`; returns the spec file."""
    spec = project / "specs" / "serving.yaml"
    text = spec.read_text().replace("  rollout:\n    strategy: bandit\n    reward: {metric: accuracy}\n",
                                    f"  rollout:\n    strategy: canary\n    steps: {steps}\n")
    spec.write_text(text.replace("traffic: {blue: 90, green: 10}", f"traffic: {traffic}"))
    return spec


def engine(project: Path, clock: FakeClock) -> Rollout:
    """The rollout engine as `specops rollout ...` builds it for dev, on the fake clock."""
    return Rollout(Project(project, "dev"), "credit-online", sleep=clock.sleep, clock=lambda: clock().timestamp())


def test_canary_rollout_shifts_traffic_step_by_step(project: Path, fake: FakeAzureML, clock: FakeClock):
    steps = "[{weight: 10}, {pause: {duration: 5m}}, {pause: {}}, {load_test: {users: 2}}, {weight: 50}]"
    spec = use_canary(project, steps, "{blue: 100}")
    Project(project, "dev").apply()
    spec.write_text(spec.read_text().replace("traffic: {blue: 100}", "traffic: {green: 100}"))
    plan = Project(project, "dev").plan()
    assert keys(plan) == ["~ OnlineTraffic/credit-online", "~ MonitorSchedule/credit-drift"]  # green is monitored next
    fake.bodies.clear()
    lines: list[str] = []
    Project(project, "dev").apply(report=lines.append)
    shifts = [body["properties"]["traffic"] for path, body in fake.bodies if path == "/onlineEndpoints/credit-online"]
    assert shifts == [{"blue": 90, "green": 10}]
    assert sum(clock.sleeps) == 300  # the timed pause, on the injected clock
    # A pause without a duration waits for a person, as on the local backend; the change stays planned.
    assert any("rollout Paused: paused at step 2" in line for line in lines)
    assert Project(project, "dev").state.rollout("credit-online").status == records.PAUSED
    assert [op.key for op in Project(project, "dev").plan().operations] == ["OnlineTraffic/credit-online"]
    fake.bodies.clear()
    record = engine(project, clock).resume()  # `specops rollout resume credit-online --env dev`
    assert record.status == records.HEALTHY
    assert [e["reason"] for e in record.history if e["event"] == "skipped"] == ["load tests run on the local backend only"]
    shifts = [body["properties"]["traffic"] for path, body in fake.bodies if path == "/onlineEndpoints/credit-online"]
    assert shifts == [{"blue": 90, "green": 10}, {"blue": 50, "green": 50}, {"green": 100}]
    assert not any("/metrics" in path for _, path in fake.requests)  # no analysis step: no metrics read
    assert Project(project, "dev").plan().empty


GATE = """\
---
apiVersion: specops/v1
kind: Gate
metadata: {name: canary-health}
spec:
  checks:
    - {metric: error_rate, max: 0.05}
    - {metric: p95_latency_ms, max: 300}
    - {metric: accuracy, min: 0.7}
"""
ANALYSED_STEPS = "[{weight: 20}, {analysis: canary-health}, {weight: 50}, {analysis: canary-health}]"
# One analysis run: Azure Monitor read for the canary, then for the stable deployment.
QUERY = ["metrics green RequestsPerMinute", "metrics green RequestLatency_P95",
         "metrics blue RequestsPerMinute", "metrics blue RequestLatency_P95"]
HEALTHY = {"blue": Series(requests=480, errors=2, p95_ms=80), "green": Series(requests=120, errors=1, p95_ms=90)}


def start_analysed_canary(project: Path, fake: FakeAzureML, series: dict[str, Series]) -> None:
    """blue serving alone, then the spec sends everything to green through analysed canary steps."""
    spec = use_canary(project, ANALYSED_STEPS, "{blue: 100}")
    spec.write_text(spec.read_text() + GATE)
    Project(project, "dev").apply()
    spec.write_text(spec.read_text().replace("traffic: {blue: 100}", "traffic: {green: 100}"))
    fake.series.update(series)
    fake.timeline.clear()
    fake.requests.clear()


def test_a_healthy_canary_is_analysed_on_azure_monitor_between_its_weights(project: Path, fake: FakeAzureML,
                                                                             clock: FakeClock):
    start_analysed_canary(project, fake, HEALTHY)
    lines: list[str] = []
    Project(project, "dev").apply(report=lines.append)
    # Each analysis waits a full minute for the first point, finds it not yet ingested (no requests: fewer
    # than min_samples), looks again a minute later, then judges canary and stable on the same window.
    assert fake.timeline == [
        "traffic {'blue': 80, 'green': 20}", *QUERY[:2], *QUERY[:2], *QUERY,
        "traffic {'blue': 50, 'green': 50}", *QUERY[:2], *QUERY[:2], *QUERY,
        "traffic {'green': 100}",
    ]
    assert sum(clock.sleeps) == pytest.approx(4 * 60)
    record = Project(project, "dev").state.rollout("credit-online")
    assert record.status == records.HEALTHY and [a["phase"] for a in record.analyses] == ["Successful", "Successful"]
    checks = {c["check"]: c["value"] for c in record.analyses[0]["checks"]}
    assert round(checks["error rate"], 6) == 0.008333 and checks["p95_latency_ms <= 300"] == 90
    # No labels on Azure: feedback checks are skipped (and said so), not left Inconclusive.
    assert record.analyses[0]["skipped"] == ["accuracy regression", "accuracy >= 0.7"]
    assert Project(project, "dev").plan().empty
    promoted = [line for line in lines if ": promoted " in line]
    assert promoted and "version=4" in promoted[0]
    assert fake.store["/models/credit-risk/versions/4"]["properties"]["tags"]["specops.alias.champion"] == "true"


def test_a_canary_failing_analysis_is_rolled_back_with_an_incident_and_stays_planned(project: Path, fake: FakeAzureML):
    start_analysed_canary(project, fake, {**HEALTHY, "green": Series(requests=120, errors=12, p95_ms=90)})
    with pytest.raises(SpecopsError, match=r"OnlineTraffic/credit-online: analysis canary-health failed at step 1: error "
                                           r"rate 0\.1 \(limit 0\.0125\).*rolled back: all traffic on \{'blue': 100\} again"):
        Project(project, "dev").apply()
    assert fake.timeline == ["traffic {'blue': 80, 'green': 20}", *QUERY[:2], *QUERY[:2], *QUERY, "traffic {'blue': 100}"]
    plan = Project(project, "dev").plan()
    [traffic] = [op for op in plan.operations if op.kind == "OnlineTraffic"]
    assert [(c.path, c.old, c.new) for c in traffic.changes] == [("traffic.blue", 100, None), ("traffic.green", None, 100)]
    # The same trail as a local rollback: the record, the incident file, the audit entries the KPIs count.
    session = Project(project, "dev")
    record = session.state.rollout("credit-online")
    assert record.status == records.DEGRADED and session.paths.incident(record.incident).exists()
    actions = [entry["action"] for entry in session.audit.entries()]
    assert actions[-3:] == ["rollout_started", "rollback", "incident"] or actions[-2:] == ["rollback", "incident"]


def test_a_canary_without_enough_requests_pauses_after_the_analysis_wait(project: Path, fake: FakeAzureML,
                                                                          clock: FakeClock):
    start_analysed_canary(project, fake, {**HEALTHY, "green": Series(requests=10)})
    lines: list[str] = []
    Project(project, "dev").apply(report=lines.append)
    assert any("rollout Paused: analysis canary-health inconclusive at step 1" in line for line in lines)
    assert fake.timeline[0] == "traffic {'blue': 80, 'green': 20}" and fake.timeline[-1].startswith("metrics")
    assert 299 < sum(clock.sleeps) <= 360  # the fake backend's analysis_wait, measured on the injected clock
    assert Project(project, "dev").state.rollout("credit-online").status == records.PAUSED


def test_throttled_metrics_queries_are_retried_after_the_time_asked(project: Path, fake: FakeAzureML):
    start_analysed_canary(project, fake, HEALTHY)
    fake.faults.append(Fault("GET", r"/providers/Microsoft\.Insights/metrics$", 429, headers={"Retry-After": "7"}))
    Project(project, "dev").apply()
    metric_reads = [path for method, path in fake.requests if path.endswith("/metrics")]
    assert len(metric_reads) == 2 * (len(QUERY) + 4) + 1  # the throttled read, then the same read again
    assert fake.retry_sleeps == [7]  # azure-core honoured Retry-After, through the transport (no real sleep)
    assert fake.timeline[-1] == "traffic {'green': 100}"


def test_metrics_that_cannot_be_read_roll_the_canary_back(project: Path, fake: FakeAzureML):
    start_analysed_canary(project, fake, HEALTHY)
    fake.faults.append(Fault("GET", r"/providers/Microsoft\.Insights/metrics$", 403, times=1))
    with pytest.raises(SpecopsError, match=r"Azure Monitor metric RequestsPerMinute of credit-online \(deployment eq "
                                           r"'green' and statusCode eq '\*'\): Azure Monitor refused \(403\).*Monitoring "
                                           r"Reader.*rolled back"):
        Project(project, "dev").apply()
    assert fake.timeline == ["traffic {'blue': 80, 'green': 20}", "traffic {'blue': 100}"]
    assert Project(project, "dev").state.rollout("credit-online").status == records.DEGRADED


def test_a_rollback_that_fails_says_so_and_what_to_set(project: Path, fake: FakeAzureML):
    start_analysed_canary(project, fake, HEALTHY)
    # Past the SDK's retries twice: the first weight, then the rollback.
    fake.faults.append(Fault("PUT", r"^/onlineEndpoints/credit-online$", 500, times=6))
    with pytest.raises(SpecopsError, match=r"(?s)OnlineTraffic/credit-online: Azure ML answered 500.*; ROLLBACK FAILED, the "
                                           r"canary may still take traffic \(set \{'blue': 100\} by hand\)"):
        Project(project, "dev").apply()
    assert fake.calls().count("PUT /onlineEndpoints/credit-online") == 6


@pytest.mark.parametrize("code", ["500", "503", "424", "408", "429"])
def test_azure_monitor_window_counts_whole_ingested_minutes_and_server_side_failures(code: str):
    """424 (the model container failed), 408 (scoring timed out) and 429 (the deployment throttled) are
    Azure ML's codes for the deployment's fault."""
    fake = FakeAzureML()
    fake.series["green"] = Series(requests=60, errors=6, p95_ms=120, error_code=code)
    metrics = AzureMonitorMetrics(StaticTokenCredential(), PREFIX, transport=fake)
    start = datetime(2026, 1, 5, 9, 0, 30, tzinfo=UTC)  # mid-minute: that minute also holds earlier traffic
    # 09:01 and 09:02 ingested, 09:03 not yet: two minutes' worth.
    assert metrics.window("credit-online", "green", start, start + timedelta(minutes=3, seconds=30)) == Traffic(120, 12, 120.0)
    assert metrics.window("credit-online", "green", start, start + timedelta(seconds=50)) == Traffic(0, 0, None)
    assert fake.timeline == ["metrics green RequestsPerMinute", "metrics green RequestLatency_P95"]  # none for the short one


def test_a_client_error_is_not_a_server_failure():
    fake = FakeAzureML()
    fake.series["green"] = Series(requests=60, errors=6, error_code="400")
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    traffic = AzureMonitorMetrics(StaticTokenCredential(), PREFIX, transport=fake).window(
        "credit-online", "green", start, start + timedelta(minutes=2))
    assert (traffic.requests, traffic.errors) == (60, 0)


def test_traffic_without_a_canary_rollout_switches_at_once():
    assert canary_of({"blue": 100}, {"green": 100}, None) is None


def test_a_rollback_under_a_canary_rollout_is_immediate(project: Path, fake: FakeAzureML):
    spec = use_canary(project, "[{weight: 10}, {weight: 50}]", "{blue: 50, green: 50}")
    Project(project, "dev").apply()
    spec.write_text(spec.read_text().replace("traffic: {blue: 50, green: 50}", "traffic: {blue: 100}"))
    fake.bodies.clear()
    Project(project, "dev").apply()
    shifts = [body["properties"]["traffic"] for path, body in fake.bodies if path == "/onlineEndpoints/credit-online"]
    assert shifts == [{"blue": 100}]
    assert Project(project, "dev").plan().empty


def _env_version(root: Path) -> str:
    from specops.render.azureml import short_hash

    return short_hash((root / "requirements.lock").read_text())


def test_a_removed_batch_endpoint_is_deleted(project: Path, fake: FakeAzureML):
    Project(project, "dev").apply()
    spec = project / "specs" / "serving.yaml"
    documents = spec.read_text().split("---\n")
    spec.write_text("---\n".join(d for d in documents if "kind: BatchEndpoint" not in d))
    plan = Project(project, "dev").plan()
    assert keys(plan) == ["- BatchEndpoint/credit-batch", "- BatchDeployment/credit-batch.main", "- BatchDefaults/credit-batch"]
    fake.requests.clear()
    Project(project, "dev").apply()
    assert [c for c in fake.calls() if not c.startswith("GET ")] == [
        "DELETE /batchEndpoints/credit-batch",  # Azure ML deletes its deployments with it
        "DELETE /batchEndpoints/credit-batch/deployments/main",
    ]
    assert Project(project, "dev").plan().empty


def tag(fake: FakeAzureML, version: int, alias: str, on: bool = True) -> None:
    """What the register step (challenger) or a promotion (champion) does to a model version's tags."""
    tags = fake.store[f"/models/credit-risk/versions/{version}"]["properties"].setdefault("tags", {})
    if on:
        tags[f"specops.alias.{alias}"] = "true"
    else:
        tags.pop(f"specops.alias.{alias}", None)


def served_version(fake: FakeAzureML, deployment: str) -> str:
    return fake.store[f"/onlineendpoints/credit-online/deployments/{deployment}"]["properties"]["model"].rsplit("/", 1)[-1]


def test_a_new_challenger_is_planned_as_a_version_change_and_rolled_out_as_a_canary(project: Path, fake: FakeAzureML):
    """Champion/challenger on Azure ML: the aliases resolve to concrete versions at plan time (tags on model
    versions), the plan shows green v3 -> v4, apply walks the canary through the one rollout engine and promotes;
    then a bad v5 is rolled back with an incident and audit entries, which `specops kpi` counts."""
    spec = use_canary(project, ANALYSED_STEPS, "{blue: 100}")
    text = spec.read_text().replace("model: credit-risk@champion", "model: credit-risk@challenger")
    # blue (the first credit-risk@3) follows the champion; the batch deployment stays on version 3.
    spec.write_text(text.replace("model: credit-risk@3", "model: credit-risk@champion", 1) + GATE)
    tag(fake, 3, "champion"), tag(fake, 3, "challenger")
    Project(project, "dev").apply()
    assert (served_version(fake, "blue"), served_version(fake, "green")) == ("3", "3")
    # A second training registers version 4 as challenger.
    tag(fake, 3, "challenger", on=False), tag(fake, 4, "challenger")
    plan = Project(project, "dev").plan()
    assert keys(plan) == ["~ OnlineDeployment/credit-online.green"]
    assert [(c.path, c.old, c.new) for c in plan.operations[0].changes] == [
        ("model", "azureml:credit-risk:3", "azureml:credit-risk:4")]
    fake.series.update(HEALTHY)
    fake.timeline.clear()
    lines: list[str] = []
    Project(project, "dev").apply(report=lines.append)
    assert any("credit-risk@challenger v3 -> v4: canary rollout blue -> green" in line for line in lines)
    assert fake.timeline == [
        "traffic {'blue': 80, 'green': 20}", *QUERY[:2], *QUERY[:2], *QUERY,
        "traffic {'blue': 50, 'green': 50}", *QUERY[:2], *QUERY[:2], *QUERY,
        "traffic {'green': 100}",  # promoted: the champion tag moves to v4, blue follows it, then the spec's traffic
        "traffic {'blue': 100}",
    ]
    tags = {v: fake.store[f"/models/credit-risk/versions/{v}"]["properties"].get("tags", {}) for v in (3, 4)}
    assert "specops.alias.champion" not in tags[3] and tags[4]["specops.alias.champion"] == "true"
    assert (served_version(fake, "blue"), served_version(fake, "green")) == ("4", "4")
    record = Project(project, "dev").state.rollout("credit-online")
    assert (record.status, record.stable, record.stable_version, record.weights) == (records.HEALTHY, "blue", "4", {"blue": 100})
    assert Project(project, "dev").plan().empty
    # A bad version 5: its canary fails analysis and is rolled back, with the incident and audit trail.
    fake.seed_model("credit-risk", 5)
    tag(fake, 4, "challenger", on=False), tag(fake, 5, "challenger")
    fake.series["green"] = Series(requests=120, errors=12, p95_ms=90)
    fake.timeline.clear()
    with pytest.raises(SpecopsError, match=r"error rate 0\.1 \(limit 0\.0125\).*rolled back: all traffic on \{'blue': 100\}"):
        Project(project, "dev").apply()
    assert fake.timeline == ["traffic {'blue': 80, 'green': 20}", *QUERY[:2], *QUERY[:2], *QUERY, "traffic {'blue': 100}"]
    assert "specops.alias.champion" not in fake.store["/models/credit-risk/versions/5"]["properties"]["tags"]
    session = Project(project, "dev")
    record = session.state.rollout("credit-online")
    assert record.status == records.DEGRADED and session.paths.incident(record.incident).exists()
    assert [e["action"] for e in session.audit.entries()][-2:] == ["rollback", "incident"]
    from specops.governance.kpi import compute

    failure_rate = next(k for k in compute(session.specs) if k.name == "change failure rate")
    assert failure_rate.detail == "1 rollback(s) for 1 release(s)"


def a_fresh_workspace(project: Path, fake: FakeAzureML) -> None:
    """No model registered yet (the versions the fixture seeded taken away), so deployments name none by number."""
    for key in [k for k in fake.store if k.startswith("/models/")]:
        del fake.store[key]
    serving = project / "specs" / "serving.yaml"
    serving.write_text(serving.read_text().replace("credit-risk@3", "credit-risk@latest").replace("credit-risk@4", "credit-risk@latest"))


def test_on_a_fresh_workspace_the_deployments_wait_for_the_job_that_registers_the_first_version(project: Path,
                                                                                                fake: FakeAzureML):
    a_fresh_workspace(project, fake)
    submitted = []

    def run_job(name: str) -> str:  # the job trains, gates and registers v1 (the emulator proves that part)
        submitted.append(name)
        fake.seed_model("credit-risk", 1)
        return "Completed"

    fake.run_job = run_job
    plan = Project(project, "dev").plan()
    order = keys(plan)
    job = order.index("+ PipelineJob/credit-risk-training")
    assert all(job < order.index(k) for k in order if "Deployment/" in k)
    assert any("model credit-risk has no version in the workspace yet" in note for note in plan.notes)
    fake.requests.clear()
    calls = apply_logged(project, fake)
    [name] = submitted
    deployments = [k for k in calls if "Deployment/" in k]
    waited = [k for k in deployments if f"GET /jobs/{name}" in calls[k]]
    assert waited == deployments[:1]  # the first deployment waited for the job; the others found v1 there
    assert "PUT /onlineEndpoints/credit-online/deployments/blue" in calls["+ OnlineDeployment/credit-online.blue"]
    deployed = [body for path, body in fake.bodies if path == "/onlineEndpoints/credit-online/deployments/blue"][-1]
    assert deployed["properties"]["model"].endswith("/models/credit-risk/versions/1")
    assert Project(project, "dev").plan().empty


@pytest.mark.parametrize("ending, message", [("Failed", "ended Failed, so credit-risk has no version to deploy"),
                                              ("Completed", "completed without registering credit-risk")])
def test_a_first_job_that_registers_nothing_stops_apply_before_any_deployment(project: Path, fake: FakeAzureML,
                                                                              ending: str, message: str):
    a_fresh_workspace(project, fake)
    fake.run_job = lambda name: ending
    with pytest.raises(SpecopsError, match=message):
        Project(project, "dev").apply()
    assert not [path for path, _ in fake.bodies if "/deployments/" in path]
    assert [k for k in keys(Project(project, "dev").plan()) if "Deployment/" in k]  # still planned


def test_apply_waits_for_a_running_first_job_and_gives_up_after_its_wait(project: Path, fake: FakeAzureML,
                                                                          clock: FakeClock):
    a_fresh_workspace(project, fake)
    fake.run_job = lambda name: "Running"
    with pytest.raises(SpecopsError, match=r"is still Running after 21600s"):
        Project(project, "dev").apply()
    assert sum(clock.sleeps) >= 6 * 3600 and not [path for path, _ in fake.bodies if "/deployments/" in path]


def test_a_batch_deployment_on_an_alias_is_planned_on_the_version_it_stands_for(project: Path, fake: FakeAzureML):
    serving = project / "specs" / "serving.yaml"
    text = serving.read_text()
    batch = text.index("kind: BatchEndpoint")
    serving.write_text(text[:batch] + text[batch:].replace("model: credit-risk@3", "model: credit-risk@champion", 1))
    tag(fake, 3, "champion")
    Project(project, "dev").apply()
    deployed = [body for path, body in fake.bodies if path == "/batchEndpoints/credit-batch/deployments/main"][-1]
    assert deployed["properties"]["model"]["assetId"].endswith("/models/credit-risk/versions/3")
    tag(fake, 3, "champion", on=False), tag(fake, 4, "champion")  # a promotion moved the champion
    [op] = [op for op in Project(project, "dev").plan().operations if op.key == "BatchDeployment/credit-batch.main"]
    assert (op.before["model"], op.after["model"]) == ("azureml:credit-risk:3", "azureml:credit-risk:4")
