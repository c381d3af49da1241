"""Rollouts on a real endpoint server under continuous load: promote, automatic rollback, undo,
a killed driver resumed, and a quiet endpoint that pauses instead of passing."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from click.testing import CliRunner

from specops.state.audit import AuditLog
from specops.cli import main
from specops.registry import connect
from specops.core.paths import ProjectPaths
from specops.project import Project
from specops.rollout import Rollout
from specops.rollout.analysis import FAILED, INCONCLUSIVE, SUCCESSFUL
from specops.state.records import DEGRADED, HEALTHY, PAUSED, PROGRESSING
from specops.serving.traffic import read_traffic
from specops.spec import load_specs
from tests.rollout.conftest import Load, restart, write_endpoint
from tests.serving.conftest import Server

CANARY_WEIGHT = 30  # the spec's first step
RESUMES = 5


def champion(server: Server) -> str:
    return str(connect(load_specs(server.root)).get_model_version_by_alias("tiny", "champion").version)


def audit(server: Server, action: str) -> list[dict]:
    return [e for e in AuditLog(server.root).entries() if e.get("action") == action and e.get("resource") == "Endpoint/live"]


def test_a_good_canary_is_promoted_and_undo_brings_the_old_one_back(fresh: Server):
    with Load(fresh) as load:
        record = Rollout(Project(fresh.root), "live").start("green", "blue")
        record = Rollout(Project(fresh.root), "live").run()
        assert record.status == HEALTHY and record.stable == "green"
        assert [a["phase"] for a in record.analyses] == [SUCCESSFUL, SUCCESSFUL]
        assert read_traffic(fresh.state_dir)[0] == {"green": 100}
        assert champion(fresh) == "4"
        assert audit(fresh, "promote")[-1]["outputs"] == {"model": "tiny", "version": "4", "aliases": ["champion"]}

        undone = Rollout(Project(fresh.root), "live").undo()
        assert undone.status == DEGRADED and undone.stable == "blue"
        assert read_traffic(fresh.state_dir)[0] == {"blue": 100} and champion(fresh) == "2"
    assert set(load.statuses) == {200}, load.statuses
    assert {"blue", "green"} <= set(load.deployments_since(0))


def test_a_bad_canary_is_rolled_back_automatically_with_an_incident(fresh: Server):
    write_endpoint(fresh.root, "{bad: 100}")  # the PR that asks for the bad model
    with Load(fresh) as load:
        Rollout(Project(fresh.root), "live").start("bad", "blue")
        record = Rollout(Project(fresh.root), "live").run()
        time.sleep(0.5)  # let the client see traffic settle on stable
    assert set(load.statuses) == {200}, load.statuses  # a wrong model answers: only analysis can tell
    assert record.status == DEGRADED and record.weights == {"blue": 100}
    failed = record.analyses[-1]
    assert failed["phase"] == FAILED and failed["step"] == 2
    assert {c["check"] for c in failed["checks"] if c["phase"] == FAILED} >= {"accuracy regression"}
    assert read_traffic(fresh.state_dir)[0] == {"blue": 100} and champion(fresh) == "2"

    incident = record.incident
    text = ProjectPaths(fresh.root).incident(incident).read_text()
    assert f"Incident {incident}" in text and "accuracy regression" in text and "Failed" in text
    assert audit(fresh, "rollback")[-1]["incident"] == incident and audit(fresh, "incident")[-1]["incident"] == incident
    last_bad = max(t for t, name in load.served if name == "bad")
    rate = len(load.served) / (load.served[-1][0] - load.served[0][0])
    print(f"\nrollback: last answer from the bad canary {1000 * (last_bad - failed['time']):.0f} ms after the failed analysis "
          f"({rate:.0f} req/s, {len(load.served)} requests, none failed)")

    status = CliRunner().invoke(main, ["rollout", "status", "live", "--root", str(fresh.root)])
    assert status.exit_code == 0 and "Degraded" in status.output and incident in status.output
    write_endpoint(fresh.root, "{blue: 100}")  # the spec reverted
    assert Rollout(Project(fresh.root), "live").status().status == HEALTHY
    assert audit(fresh, "recovered")[-1]["incident"] == incident


def test_a_killed_driver_leaves_a_record_and_resume_finishes_the_rollout(fresh: Server):
    driver = [sys.executable, "-c", "import sys; from specops.rollout import Rollout; "
              "from specops.project import Project; p = Project(sys.argv[1]); "
              "Rollout(p, 'live').start('green', 'blue'); Rollout(p, 'live').run()", str(fresh.root)]
    with Load(fresh) as load:
        process = subprocess.Popen(driver, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})
        try:
            record = _wait_for(lambda: _record_at_step(fresh), timeout_s=60)
        finally:
            os.kill(process.pid, signal.SIGKILL)  # mid-pause: the weight is set, analysis not run
            process.wait(timeout=10)
        record = Project(fresh.root).state.rollout("live")
        assert record.status == PROGRESSING and record.weights == {"blue": 100 - CANARY_WEIGHT, "green": CANARY_WEIGHT}
        assert json.loads((fresh.root / ".specops/state/local.json").read_text())["rollouts"]["live"]["canary"] == "green"

        resumed = Rollout(Project(fresh.root), "live").resume()
    assert resumed.status == HEALTHY and read_traffic(fresh.state_dir)[0] == {"green": 100}
    assert "resumed" in [event["event"] for event in resumed.history]
    assert set(load.statuses) == {200}, load.statuses


def test_a_quiet_endpoint_pauses_inconclusive_and_can_be_aborted(fresh: Server):
    Rollout(Project(fresh.root), "live").start("green", "blue")
    record = Rollout(Project(fresh.root), "live", max_wait_s=1).run()  # no load: the canary sees no requests
    assert record.status == PAUSED and record.analyses[-1]["phase"] == INCONCLUSIVE
    assert "of the 30 requests analysis needs" in record.message
    assert read_traffic(fresh.state_dir)[0] == {"blue": 100 - CANARY_WEIGHT, "green": CANARY_WEIGHT}  # held, not promoted

    aborted = CliRunner().invoke(main, ["rollout", "abort", "live", "--root", str(fresh.root)])
    assert aborted.exit_code == 0 and "Degraded" in aborted.output
    assert read_traffic(fresh.state_dir)[0] == {"blue": 100} and champion(fresh) == "2"
    again = CliRunner().invoke(main, ["rollout", "promote", "live", "--root", str(fresh.root)])
    assert again.exit_code == 1 and "nothing to promote" in again.output


def test_a_restarted_server_gets_the_rollout_weights_back_on_resume(fresh: Server):
    Rollout(Project(fresh.root), "live").start("green", "blue")
    paused = Rollout(Project(fresh.root), "live", max_wait_s=1).run()  # quiet: paused at the first analysis, 30% on green
    assert paused.status == PAUSED
    restart(fresh)
    # A server restarted mid-rollout starts from the rollout's weights, not the spec's.
    assert read_traffic(fresh.state_dir)[0] == {"blue": 100 - CANARY_WEIGHT, "green": CANARY_WEIGHT}
    with Load(fresh) as load:
        record = Rollout(Project(fresh.root), "live").resume()  # weights back; the analysis window restarts with the server
        for _ in range(RESUMES):
            if record.status != PAUSED:
                break
            time.sleep(2)  # let the canary answer min_samples requests
            record = Rollout(Project(fresh.root), "live").resume()
    assert record.status == HEALTHY and read_traffic(fresh.state_dir)[0] == {"green": 100}, (record.message, record.analyses[-1:])
    assert set(load.statuses) == {200}, load.statuses


def _record_at_step(server: Server):
    record = Project(server.root).state.rollout("live")
    return record if record is not None and record.step >= 1 else None


def _wait_for(condition, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout_s}s")


def test_a_monitors_rollback_aborts_a_rollout_under_way(fresh: Server):
    """A Monitor's `actions.rollback` moves traffic back, through the same engine, with an incident (issue #9, item 6)."""
    from specops.controller.monitors import roll_back
    from specops.monitoring.runner import RollbackRequest

    project = Project(fresh.root)
    Rollout(project, "live").start("green", "blue")
    Rollout(project, "live").step()  # 30% on green
    assert read_traffic(fresh.state_dir)[0] == {"blue": 100 - CANARY_WEIGHT, "green": CANARY_WEIGHT}
    said = roll_back(project, RollbackRequest("live", "monitor credit-drift alerted: data_drift", {"monitor": "credit-drift"}))
    record = project.state.rollout("live")
    assert record.status == DEGRADED and record.incident and read_traffic(fresh.state_dir)[0] == {"blue": 100}
    assert said == f"rollback of endpoint live: rollout aborted, traffic back on blue (incident {record.incident})"
    [entry] = audit(fresh, "rollback_requested")
    assert entry["outcome"].startswith("rollout aborted") and entry["monitor"] == "credit-drift"
    assert roll_back(project, RollbackRequest("live", "again", {})).endswith(
        "nothing to roll back (the rollout is Degraded, past its rollback_window or never promoted)")
