"""Load tests: locust in its own process against the live server, a canary `load_test` step and a blue-green
pre-promotion load test judged as analyses, and blue-green post-promotion analysis switching back."""
from __future__ import annotations

from pathlib import Path

import pytest

from specops.state.audit import AuditLog
from specops.errors import SpecErrors
from specops.registry import connect
from specops.core.paths import ProjectPaths
from specops.project import Project
from specops.rollout import Rollout
from specops.rollout.analysis import FAILED, SUCCESSFUL, load_test_analysis
from specops.rollout.local import _skip
from specops.rollout.loadtest import LoadTestResult, percentile, run_load_test, summarize
from specops.rollout.metrics import parse, window
from specops.state.records import DEGRADED, HEALTHY
from specops.serving.traffic import read_traffic
from specops.spec import load_specs
from specops.spec.endpoints import CanaryRollout
from tests.conftest import copy_specs
from tests.rollout.conftest import Load, write_endpoint
from tests.serving.conftest import Server
from tests.serving.test_endpoint_specs import CANARY as SPEC_CANARY

USERS, SECONDS = 2, 2
FAILING_LOAD_TEST = """
    strategy: canary
    min_samples: 30
    steps:
      - load_test: {users: 2, duration: 2s, rows: unknown-regions.csv}
      - weight: 50"""
BLUE_GREEN_WATCHED = """
    strategy: blue-green
    min_samples: 30
    pre_promotion_load_test: {users: 2, duration: 2s}
    pre_promotion_analysis: canary-gate
    post_promotion_analysis: canary-gate
    auto_promotion_enabled: true"""
BLUE_GREEN_BY_HAND = """
    strategy: blue-green
    min_samples: 30
    post_promotion_analysis: canary-gate"""
ENTRY = {"name": "/score", "num_requests": 100, "num_failures": 2, "start_time": 10.0, "last_request_timestamp": 12.0,
         "response_times": {"3": 50, "5": 45, "40": 4, "90": 1}}


def champion(server: Server) -> str:
    return str(connect(load_specs(server.root)).get_model_version_by_alias("tiny", "champion").version)


# --- without a server ---------------------------------------------------------------------

def test_locust_stats_become_counts_rate_and_locusts_own_percentiles():
    result = summarize(ENTRY, {"code=500": 2})
    assert (result.requests, result.failures, result.rps) == (100, 2, 50.0)
    # locust's rule reports the time fewer than (1 - q) of the requests exceeded: 50 took 3 ms, so p50 is 5 ms
    assert (result.p50, result.p95, result.p99) == (5.0, 40.0, 90.0)
    assert percentile({}, 0, 0.95) is None


def test_a_load_test_fails_on_any_failed_request_or_a_p95_over_the_slo_and_margin():
    rollout = CanaryRollout(strategy="canary", steps=[{"weight": 10}], rollback={"latency_slo_ms": 100, "latency_margin": 0.25})
    clean = LoadTestResult(500, 0, 250.0, 4.0, 110.0, 130.0)  # 110 ms is within 100 ms + 25%
    assert load_test_analysis(clean, rollout)["phase"] == SUCCESSFUL
    failing = load_test_analysis(LoadTestResult(500, 3, 250.0, 4.0, 9.0, 12.0, {"code=503": 3}), rollout)
    assert failing["phase"] == FAILED and "3 x code=503" in failing["checks"][1]["note"]
    slow = load_test_analysis(LoadTestResult(500, 0, 250.0, 4.0, 126.0, 200.0), rollout)
    assert slow["phase"] == FAILED and slow["checks"][-1]["check"] == "load test p95 latency ms"


def test_a_load_tests_requests_are_left_out_of_the_analysis_window():
    def scrape(requests: int, errors: int = 0) -> dict:
        return parse(f'specops_requests_total{{deployment="c",status="2xx"}} {requests}\n'
                     f'specops_errors_total{{deployment="c"}} {errors}\n'
                     f'specops_request_duration_seconds_bucket{{deployment="c",le="+Inf"}} {requests}\n')

    start = _skip(scrape(10), scrape(40), scrape(540, errors=5), "c")  # 500 load-test requests, 5 of them failed
    measured = window(start, scrape(600, errors=5), "c")
    assert (measured.requests, measured.errors) == (90, 0)  # 30 live before the load test, 60 after


@pytest.fixture
def spec_project(tmp_path: Path) -> Path:
    # The example's own Endpoint and Monitor left out: these tests write theirs.
    copy_specs(tmp_path / "specs")
    return tmp_path


def _errors(project: Path, steps: str) -> list[str]:
    text = SPEC_CANARY.replace("      - weight: 50\n", steps)
    (project / "specs" / "endpoint.yaml").write_text(text)
    with pytest.raises(SpecErrors) as info:
        load_specs(project)
    return [str(e) for e in info.value.errors]


def test_load_test_steps_are_checked_with_their_position(spec_project: Path):
    [both] = _errors(spec_project, "      - {weight: 50, load_test: {users: 2}}\n")
    assert both.endswith("steps[3]: a canary step is exactly one of weight, pause, analysis or load_test")
    [short] = _errors(spec_project, "      - load_test: {users: 2, duration: 500ms}\n")
    assert "steps[3].load_test.duration: " in short and "a load test runs at least 1s (got 500ms)" in short
    [missing] = _errors(spec_project, "      - load_test: {rows: data/nowhere.csv}\n")
    assert missing.startswith("specs/endpoint.yaml:28:21: spec.rollout.steps[3].load_test.rows: ")
    assert "rows file 'data/nowhere.csv' does not exist" in missing


# --- on the live server -------------------------------------------------------------------

def test_locust_drives_one_deployment_of_the_live_server(fresh: Server):
    before = parse(fresh.get("/metrics").text)
    result = run_load_test(fresh.url, fresh.key, fresh.root / "data" / "loans.csv", USERS, None, SECONDS, deployment="green")
    after = parse(fresh.get("/metrics").text)
    assert result.requests > 0 and result.failures == 0 and result.errors == {}
    assert result.rps > 0 and result.p50 <= result.p95 <= result.p99
    assert window(before, after, "green").requests >= result.requests  # the header sent every request to green
    assert window(before, after, "blue").requests == 0

    refused = run_load_test(fresh.url, "not-the-key", fresh.root / "data" / "loans.csv", USERS, None, 1)
    assert refused.requests > 0 and refused.failures == refused.requests
    assert any("401" in error for error in refused.errors)


def test_a_load_test_step_with_failed_requests_rolls_the_canary_back(fresh: Server):
    rows = (fresh.root / "data" / "loans.csv").read_text().replace(",north,", ",east,")  # not an allowed region: 422
    (fresh.root / "unknown-regions.csv").write_text(rows)
    write_endpoint(fresh.root, "{green: 100}", FAILING_LOAD_TEST)
    Rollout(Project(fresh.root), "live").start("green", "blue")
    record = Rollout(Project(fresh.root), "live").run()
    assert record.status == DEGRADED and read_traffic(fresh.state_dir)[0] == {"blue": 100}
    failed = record.analyses[-1]
    assert failed["kind"] == "load test" and failed["phase"] == FAILED and failed["step"] == 0
    failures = next(c for c in failed["checks"] if c["check"] == "load test failures")
    assert failures["phase"] == FAILED and failures["value"] == failed["canary"]["failures"] > 0 and "422" in failures["note"]
    assert "load test failed at step 0" in record.message
    assert "load test failures" in ProjectPaths(fresh.root).incident(record.incident).read_text()


def test_blue_green_load_tests_the_preview_then_watches_it_after_the_switch(fresh: Server):
    write_endpoint(fresh.root, "{green: 100}", BLUE_GREEN_WATCHED)
    with Load(fresh) as load:
        Rollout(Project(fresh.root), "live").start("green", "blue")
        record = Rollout(Project(fresh.root), "live", max_wait_s=30).run()
    kinds = [(a.get("kind", "analysis"), a["phase"]) for a in record.analyses]
    assert kinds == [("load test", SUCCESSFUL), ("analysis", SUCCESSFUL), ("analysis", SUCCESSFUL)]
    assert record.status == HEALTHY and record.stable == "green"
    assert read_traffic(fresh.state_dir) == ({"green": 100}, {})  # the old colour's mirror ends with the analysis
    events = [e["event"] for e in record.history]
    assert "promoted" in events and events[-1] == "settled"
    assert set(load.statuses) == {200}


def test_a_failed_post_promotion_analysis_switches_back_to_the_previous_colour(fresh: Server):
    write_endpoint(fresh.root, "{bad: 100}", BLUE_GREEN_BY_HAND)
    with Load(fresh) as load:
        Rollout(Project(fresh.root), "live").start("bad", "blue")
        record = Rollout(Project(fresh.root), "live", max_wait_s=30).promote()  # by hand, skipping pre-promotion analysis
    assert record.status == DEGRADED and (record.stable, record.canary) == ("blue", "bad")
    assert read_traffic(fresh.state_dir) == ({"blue": 100}, {}) and champion(fresh) == "2"
    post = record.analyses[-1]
    assert post["phase"] == FAILED and {c["check"] for c in post["checks"] if c["phase"] == FAILED} >= {"accuracy regression"}
    assert "post-promotion analysis failed on bad" in record.message
    actions = [e["action"] for e in AuditLog(fresh.root).entries() if e.get("resource") == "Endpoint/live"]
    assert actions[-3:] == ["promote", "rollback", "incident"]
    assert ProjectPaths(fresh.root).incident(record.incident).exists()
    assert set(load.statuses) == {200} and load.deployments_since(0)["bad"] > 0
