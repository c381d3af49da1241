"""The controller runs each monitor once per cron fire, for the window ending at the fire time, restart-safe."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from credit_risk.generate import generate
from specops.state.audit import AuditLog
from specops.controller.events import EventQueue
from specops.controller.loop import Controller
from specops.monitoring.report import list_reports
from specops.project import Project
from specops.spec import load_specs
from tests.monitoring.conftest import FIRE, drifted_day, monitor_project, write_log


def test_a_fired_schedule_runs_the_monitor_once_and_a_restart_does_not_act_twice(tmp_path: Path):
    root = monitor_project(tmp_path)
    specs, ctl = load_specs(root), Controller(Project(root))
    assert ctl.run_monitors(specs, FIRE - timedelta(minutes=30)) == []  # first sight: earlier fires are history
    drifted_day(root)

    [result] = ctl.run_monitors(specs, FIRE + timedelta(minutes=5))
    assert result.window_end == FIRE and result.drifted == ["income"]
    assert any("environment variable(s) not set: TEST_DRIFT_WEBHOOK" in a for a in result.actions)  # reported, not fatal
    assert ctl.run_monitors(specs, FIRE + timedelta(minutes=10)) == []  # the same fire time: nothing to do

    # A controller that died after the run but before moving its clock runs the fire again, without acting again.
    clock = json.loads(ctl.clock_file.read_text())
    ctl.clock_file.write_text(json.dumps({**clock, "monitor:credit-drift": (FIRE - timedelta(minutes=30)).isoformat()}))
    [again] = Controller(Project(root)).run_monitors(specs, FIRE + timedelta(minutes=15))
    assert again.window_end == FIRE and again.repeat
    assert [e.id for e in EventQueue(root).pending()] == [f"drift:credit-drift:{FIRE.isoformat()}"]
    assert sum(e["action"] == "drift_alert" for e in AuditLog(root).entries()) == 1


def test_each_tick_runs_the_monitors_that_are_due(tmp_path: Path):
    root = monitor_project(tmp_path)
    spec = root / "specs" / "monitors.yaml"
    spec.write_text(spec.read_text().replace("    retrain: credit-risk-training\n", ""))  # no retraining in this test
    tuesday = FIRE + timedelta(days=1)  # the monitor fires daily; the pipeline's own schedule only on Mondays
    write_log(root, generate(1000, seed=22, drift="income"), tuesday - timedelta(hours=2))
    ctl = Controller(Project(root))
    assert ctl.tick(tuesday - timedelta(minutes=30)) == []
    assert ctl.tick(tuesday + timedelta(minutes=5)) == []  # the alert asks for a rollback only: nothing to retrain
    [(_, report)] = list_reports(root)
    assert report["window_end"] == tuesday.isoformat() and report["drifted"] == ["income"]
    assert [e["action"] for e in AuditLog(root).entries()] == ["rollback_requested"]
