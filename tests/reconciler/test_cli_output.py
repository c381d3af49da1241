"""What the commands print, as a new user reads it: no `None`, no `vblue`, no `1.178e+04`."""
from __future__ import annotations

from specops.cli import _rollouts, _summary
from specops.cli.rollout import show
from specops.cli.slo import cells
from specops.project import Status
from specops.slo.budget import ObjectiveStatus
from specops.slo.gates import _spent
from specops.state.storage import LocalStorage
from specops.state.records import HEALTHY, PROGRESSING, RolloutRecord


def record(**fields) -> RolloutRecord:
    base = dict(endpoint="credit-scoring", strategy="canary", stable="blue", canary="green", model="credit-risk",
                stable_version="3", canary_version=None)
    return RolloutRecord(**{**base, **fields})


def test_status_prints_no_none(capsys):
    assert _summary({"port": 5800, "versions": {"blue": "3", "green": None}, "rollout": None}) \
        == "port=5800, versions=blue:3 green:-"
    _rollouts(Status("local", 4, [], {"credit-scoring": record(status=PROGRESSING, weights={"blue": 100})}))
    printed = capsys.readouterr().out
    assert "blue v3 -> green no version yet" in printed and "None" not in printed


def test_rollout_status_prints_versions_and_counts_plainly(capsys, tmp_path):
    show(record(status=HEALTHY, extra={"arms": {"green": {"requests": 11780.0, "accuracy": 0.91234, "p95": None}}}),
         LocalStorage(tmp_path))
    printed = capsys.readouterr().out
    assert "canary  green (credit-risk no version yet)" in printed and "stable  blue (credit-risk v3)" in printed
    assert "requests 11780, accuracy 0.9123, p95 -" in printed
    assert "None" not in printed and "e+" not in printed


def test_the_slo_table_and_its_freeze_note_print_counts_plainly():
    status = ObjectiveStatus("scoring", "availability", "availability", "30d", ">= 99.5%", 0.999,
                             events=11780.0, bad=12.0, budget=58.9, remaining=0.8, burn_rate=0.2, status="ok")
    assert "12 / 58.9 of 11780" in cells(status)
    large = ObjectiveStatus("scoring", "availability", "availability", "30d", ">= 99.5%", 0.99,
                            events=1178000.0, bad=11780.0, budget=5890.0, remaining=0.0, status="exhausted")
    assert _spent(large) == "scoring/availability 11780 bad of 5890 allowed in 1178000 events, remaining 0%"
