"""The controller steps experiment rollouts by their own clock: a bandit every `update_interval` (issue #9, item 6)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import specops.rollout
from specops.controller.loop import Controller
from specops.errors import SpecErrors
from specops.project import Project
from specops.state.records import PAUSED, PROGRESSING, RolloutRecord
from tests.slo.conftest import project  # noqa: F401 -- the fixture: example specs plus an endpoint

T0 = datetime(2027, 1, 15, 12, tzinfo=UTC)


def bandit(root: Path, interval: str) -> Project:
    spec = root / "specs" / "slo.yaml"
    spec.write_text(spec.read_text().replace(
        "  traffic: {blue: 100}\n  rollout:\n    strategy: canary\n    min_samples: 5\n"
        "    steps: [{weight: 10}, {analysis: release-freeze}]\n",
        f"  traffic: {{blue: 50, green: 50}}\n"
        f"  rollout: {{strategy: bandit, reward: {{metric: accuracy}}, update_interval: {interval}}}\n"))
    return Project(root)


def progressing(project: Project, status: str = PROGRESSING) -> None:
    project.state.save_rollout(RolloutRecord(endpoint="scoring", strategy="bandit", stable="blue", canary="green",
                                             model="credit-risk", stable_version="1", canary_version="2", status=status))


@pytest.fixture
def steps(monkeypatch) -> list[str]:
    """Each step the controller takes, by endpoint (the engine itself is tested against a live server in tests/rollout)."""
    taken: list[str] = []

    class Recorder:
        def __init__(self, project: Project, endpoint: str):
            self.endpoint = endpoint

        def step(self) -> None:
            taken.append(self.endpoint)

    monkeypatch.setattr(specops.rollout, "Rollout", Recorder)
    return taken


def test_a_bandit_is_stepped_once_per_update_interval(project: Path, steps: list[str]):
    session = bandit(project, "2m")
    progressing(session)
    ctl = Controller(session)
    for minutes in (0, 1, 2, 3, 4, 4.5):
        ctl.step_experiments(session.specs, T0 + timedelta(minutes=minutes))
    assert steps == ["scoring"] * 3  # at 0, 2 and 4 minutes


def test_only_a_progressing_rollout_is_stepped(project: Path, steps: list[str]):
    session = bandit(project, "1m")
    ctl = Controller(session)
    ctl.step_experiments(session.specs, T0)  # no rollout recorded yet
    progressing(session, PAUSED)
    ctl.step_experiments(session.specs, T0 + timedelta(minutes=5))
    assert steps == []


def test_a_field_that_did_nothing_is_refused(project: Path):
    spec = project / "specs" / "slo.yaml"
    spec.write_text(spec.read_text().replace("    min_samples: 5\n", "    min_samples: 5\n    scale_down_delay: 30s\n"))
    with pytest.raises(SpecErrors, match=r"spec\.rollout\.scale_down_delay: unknown field"):
        Project(project).validate()
