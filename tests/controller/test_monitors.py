"""The controller runs each monitor once per cron fire, for the window ending at the fire time, restart-safe."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from specops.apply.audit import AuditLog
from specops.controller.events import EventQueue
from specops.controller.loop import Controller
from specops.spec import load_specs
from tests.monitoring.conftest import FIRE, drifted_day, monitor_project


def test_a_fired_schedule_runs_the_monitor_once_and_a_restart_does_not_act_twice(tmp_path: Path):
    root = monitor_project(tmp_path)
    specs, ctl = load_specs(root), Controller(root)
    assert ctl.run_monitors(specs, FIRE - timedelta(minutes=30)) == []  # first sight: earlier fires are history
    drifted_day(root)

    [result] = ctl.run_monitors(specs, FIRE + timedelta(minutes=5))
    assert result.window_end == FIRE and result.drifted == ["income"]
    assert any("environment variable(s) not set: TEST_DRIFT_WEBHOOK" in a for a in result.actions)  # reported, not fatal
    assert ctl.run_monitors(specs, FIRE + timedelta(minutes=10)) == []  # the same fire time: nothing to do

    # A controller that died after the run but before moving its clock runs the fire again, without acting again.
    clock = json.loads(ctl.clock_file.read_text())
    ctl.clock_file.write_text(json.dumps({**clock, "monitor:credit-drift": (FIRE - timedelta(minutes=30)).isoformat()}))
    [again] = Controller(root).run_monitors(specs, FIRE + timedelta(minutes=15))
    assert again.window_end == FIRE and again.repeat
    assert [e.id for e in EventQueue(root).pending()] == [f"drift:credit-drift:{FIRE.isoformat()}"]
    assert sum(e["action"] == "drift_alert" for e in AuditLog(root).entries()) == 1
