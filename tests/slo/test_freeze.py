"""An exhausted error budget blocks promotion: in the lifecycle's gate stage and in rollout analysis.

The budget comes from files as the server and `slo status` leave them (the
scrape history and the inference log of the fixture project), so these tests
cover the reading as well as the verdict; the bad events then slide out of the
one-hour window and promotion passes again.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from specops.errors import StageFailed
from specops.lifecycle.gate import check_result, failure_report
from specops.rollout import analysis as an
from specops.rollout.metrics import Traffic
from specops.slo.gates import judge, slo_budgets
from specops.spec import Gate, load_specs
from specops.spec.endpoints import CanaryRollout
from tests.slo.conftest import HOUR, NOW, record, write_log, write_scrapes

FREEZE = ("release freeze: error budget exhausted (scoring-slo/availability 7 bad of 5 allowed in 1000 events, remaining -40%); "
          "promotions resume when it recovers")


def budgets_at(project: Path, now: float):
    specs = load_specs(project)
    gate = specs.get(Gate, "release-freeze")
    return gate, slo_budgets(specs, gate, now)


def exhausted_then_recovered(project: Path) -> None:
    """7 errors in 1000 requests by NOW; by NOW + 90 min an hour of clean traffic has replaced them."""
    write_scrapes(project, [(NOW - 30 * 60, 993, 7), (NOW + 30 * 60, 993, 7), (NOW + 90 * 60, 1993, 7)])


def test_the_lifecycle_gate_check_fails_while_the_budget_is_exhausted(project: Path):
    exhausted_then_recovered(project)
    gate, budgets = budgets_at(project, NOW)
    [check] = gate.spec.checks
    result = check_result(check, {"accuracy": 0.9}, None, budgets)
    assert result["passed"] is False and result["value"] == pytest.approx(-0.4) and result["note"] == FREEZE
    report = failure_report({"gate": gate.name, "selected": "0", "checks": [result]})
    assert "error budget of SLO scoring-slo/availability not exhausted: value -0.4" in report and "nothing was registered" in report

    gate, budgets = budgets_at(project, NOW + 90 * 60)
    result = check_result(check, {"accuracy": 0.9}, None, budgets)
    assert result["passed"] is True and result["value"] == 1.0


def test_min_freezes_before_the_budget_is_gone_and_no_data_does_not_freeze(project: Path):
    write_scrapes(project, [(NOW - 60, 997, 3)])  # 3 of 5 spent: 40% left
    gate, budgets = budgets_at(project, NOW)
    early = gate.spec.checks[0].model_copy(update={"min": 0.5})
    assert judge(early, budgets)["passed"] is False and "outside the check's bounds" in judge(early, budgets)["note"]
    assert judge(gate.spec.checks[0], budgets)["passed"] is True
    latency = gate.spec.checks[0].model_copy(update={"objective": "latency"})
    assert judge(latency, budgets) == {"passed": True, "value": None, "note": "no data for latency: no freeze"}


def test_the_gate_stage_stops_before_registering(project: Path, monkeypatch):
    """gate.run end to end, with the candidate's MLflow run and the champion lookup stubbed out."""
    from specops.lifecycle import gate as stage
    from specops.lifecycle.context import StageContext, write_json
    from specops.spec import Pipeline

    write_scrapes(project, [(time.time() - 60, 993, 7)])
    gate_file = project / "specs" / "gates" / "promotion.yaml"
    gate_file.write_text(gate_file.read_text() + "    - slo: scoring-slo\n")
    specs = load_specs(project)
    ctx = StageContext.of(specs, specs.get(Pipeline, "credit-risk-training"))
    metrics = {"accuracy": 0.9, "roc_auc": 0.9, "parity_diff": 0.01, "p95_latency_ms": 5.0}
    write_json(ctx.paths.evaluation, {"candidates": {"0": {"metrics": metrics, "run_id": "run-0"}}})
    tags = {}
    monkeypatch.setattr(stage, "connect", lambda specs: type("Client", (), {"set_tag": lambda self, run, k, v: tags.update({k: v})})())
    monkeypatch.setattr(stage, "champion_summary", lambda client, model: None)
    with pytest.raises(StageFailed, match="1 of 6 checks failed") as failure:
        stage.run(ctx)
    assert "release freeze: error budget exhausted" in str(failure.value)
    assert tags["specops.gate.passed"] == "false"
    assert json.loads(ctx.paths.gate.read_text())["checks"][-1]["slo"] == "scoring-slo"


def rollout() -> CanaryRollout:
    return CanaryRollout(strategy="canary", steps=[{"weight": 10}], min_samples=10)


def arm(name: str, errors: int = 0) -> an.Arm:
    return an.Arm(name, Traffic(100, errors, 5.0), 100, 90)


def test_rollout_analysis_pauses_inconclusive_while_frozen_and_passes_once_recovered(project: Path):
    exhausted_then_recovered(project)
    gate, budgets = budgets_at(project, NOW)
    frozen = an.analyse(arm("green"), arm("blue"), rollout(), gate, budgets)
    assert frozen["phase"] == an.INCONCLUSIVE  # a freeze: pause for the budget, not a rollback of the canary
    [check] = [c for c in frozen["checks"] if c["phase"] != an.SUCCESSFUL]
    assert check["check"] == "error budget of SLO scoring-slo/availability not exhausted" and check["note"] == FREEZE

    gate, budgets = budgets_at(project, NOW + 90 * 60)
    assert an.analyse(arm("green"), arm("blue"), rollout(), gate, budgets)["phase"] == an.SUCCESSFUL


def test_a_failing_canary_still_rolls_back_during_a_freeze(project: Path):
    exhausted_then_recovered(project)
    gate, budgets = budgets_at(project, NOW)
    assert an.analyse(arm("green", errors=10), arm("blue", errors=1), rollout(), gate, budgets)["phase"] == an.FAILED


def test_a_gate_naming_no_slo_reads_nothing(project: Path):
    specs = load_specs(project)
    assert an.slo_budgets(specs, specs.get(Gate, "promotion")) == {} and an.slo_budgets(specs, None) == {}


def test_the_rollout_controller_passes_the_budgets_to_its_analysis(project: Path, monkeypatch):
    """Rollout._analyse on the fixture endpoint, the local server's /metrics scrape replaced by a fixed snapshot."""
    from specops.project import Project
    from specops.rollout import Rollout
    from specops.state.records import RolloutRecord

    now = time.time()
    write_log(project, [record(now - 10 - i, deployment=d, prediction=1, label=1, request_id=f"{d}{i}")
                        for d in ("blue", "green") for i in range(20)])
    snapshot = {name: {"requests": 100.0, "errors": 0.0, "buckets": [[0.01, 100.0], [float("inf"), 100.0]]}
                for name in ("blue", "green")}
    driver = Rollout(Project(project), "scoring")
    monkeypatch.setattr(driver.metrics.server, "scrape", lambda: snapshot)
    record_ = RolloutRecord(endpoint="scoring", strategy="canary", stable="blue", canary="green", model="credit-risk",
                            stable_version="1", canary_version="2", step=1, window={"time": now - HOUR, "metrics": {}})

    write_scrapes(project, [(now - 60, 993, 7)])
    assert driver._analyse(record_, "release-freeze")["phase"] == an.INCONCLUSIVE

    (project / ".specops" / "slo" / "scoring" / "metrics.jsonl").unlink()
    write_scrapes(project, [(now - 2 * HOUR, 993, 7), (now - 60, 1993, 7)])  # the errors are older than the window now
    assert driver._analyse(record_, "release-freeze")["phase"] == an.SUCCESSFUL
