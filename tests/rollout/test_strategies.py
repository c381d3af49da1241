"""Blue-green, A/B and bandit rollouts on the same live server (the spec's strategy changes, the server does not)."""
from __future__ import annotations

import time

from specops.project import Project
from specops.rollout import Rollout
from specops.rollout.analysis import FAILED, SUCCESSFUL
from specops.state.records import DEGRADED, HEALTHY, PAUSED, PROGRESSING
from specops.serving.traffic import read_traffic
from tests.rollout.conftest import Load, write_endpoint
from tests.serving.conftest import Server

BLUE_GREEN = """
    strategy: blue-green
    min_samples: 30
    pre_promotion_analysis: canary-gate
    auto_promotion_enabled: true"""
AB = "{strategy: ab, min_samples: 30, duration: 2s}"
BANDIT = "{strategy: bandit, min_samples: 30, reward: {metric: accuracy}, floor: 10}"
UPDATES = 4


def test_blue_green_analyses_the_idle_colour_on_mirrored_requests_then_switches(fresh: Server):
    write_endpoint(fresh.root, "{green: 100}", BLUE_GREEN)
    with Load(fresh) as load:
        started = Rollout(Project(fresh.root), "live").start("green", "blue")
        assert started.mirror == {"green": 50} and started.weights == {"blue": 100}
        record = Rollout(Project(fresh.root), "live", max_wait_s=30).run()
    assert record.status == HEALTHY and record.analyses[-1]["phase"] == SUCCESSFUL
    assert read_traffic(fresh.state_dir) == ({"green": 100}, {})
    assert record.previous["stable"] == "blue"
    assert set(load.statuses) == {200}


def test_a_bad_preview_never_answers_a_client(fresh: Server):
    write_endpoint(fresh.root, "{bad: 100}", BLUE_GREEN)
    with Load(fresh) as load:
        Rollout(Project(fresh.root), "live").start("bad", "blue")
        record = Rollout(Project(fresh.root), "live", max_wait_s=30).run()
    assert record.status == DEGRADED and record.analyses[-1]["phase"] == FAILED
    assert read_traffic(fresh.state_dir) == ({"blue": 100}, {})
    assert "bad" not in load.deployments_since(0) and set(load.statuses) == {200}


def test_ab_reports_each_arm_and_pauses_when_the_experiment_ends(fresh: Server):
    write_endpoint(fresh.root, "{blue: 50, bad: 50}", AB)
    with Load(fresh):
        started = Rollout(Project(fresh.root), "live").start("bad", "blue")
        assert read_traffic(fresh.state_dir)[0] == {"blue": 50, "bad": 50}
        time.sleep(1)
        # Within the 2 s experiment by its clock, however slow a loaded machine made the start.
        first = Rollout(Project(fresh.root), "live", clock=lambda: started.window["time"] + 1).step()
        time.sleep(1.5)
        last = Rollout(Project(fresh.root), "live").step()
    assert first.status == PROGRESSING and last.status == PAUSED and "over" in last.message
    arms = last.extra["arms"]
    assert arms["blue"]["requests"] > 0 and arms["bad"]["requests"] > 0
    assert arms["blue"]["accuracy"] > arms["bad"]["accuracy"]


def test_bandit_moves_traffic_to_the_better_arm_and_keeps_the_floor(fresh: Server):
    write_endpoint(fresh.root, "{blue: 50, bad: 50}", BANDIT)
    with Load(fresh) as load:
        Rollout(Project(fresh.root), "live").start("bad", "blue")
        for _ in range(UPDATES):
            time.sleep(0.5)
            record = Rollout(Project(fresh.root), "live").step()
    assert record.weights["blue"] > record.weights["bad"] >= 10 and sum(record.weights.values()) == 100
    assert read_traffic(fresh.state_dir)[0] == record.weights
    assert set(load.statuses) == {200}
