"""Stage `gate`: pick the best candidate and hold it to the Gate spec's checks.

The result (every check with its value and bound) is written to gate.json and
tagged on the candidate's MLflow run whether it passes or not. A failure stops
the pipeline before anything is registered.
"""
from __future__ import annotations

import json
from typing import Any

from specops.errors import StageFailed
from specops.gates import Baseline, CheckResult, check_metric, select_best
from specops.lifecycle.context import StageContext, read_json, write_json
from specops.registry import champion_summary, connect
from specops.slo.gates import Budgets, judge, slo_budgets
from specops.spec.kinds import Check


def run(ctx: StageContext) -> None:
    evaluation = read_json(ctx.paths, ctx.paths.evaluation, "evaluate")
    selection = ctx.pipeline.spec.selection
    selected = select_best(evaluation["candidates"], selection)
    metrics = evaluation["candidates"][selected]["metrics"]
    client = connect(ctx.specs)
    champion = champion_summary(client, ctx.pipeline.spec.model_name)
    baseline = Baseline(f"champion v{champion['version']}", champion["metrics"]) if champion else None
    budgets = slo_budgets(ctx.specs, ctx.gate)  # an exhausted error budget freezes promotion
    checks = [check_result(check, metrics, baseline, budgets) for check in ctx.gate.spec.checks]
    result = {
        "gate": ctx.gate.name,
        "selected": selected,
        "run_id": evaluation["candidates"][selected]["run_id"],
        "selection": {"metric": selection.metric, "goal": selection.goal, "value": metrics[selection.metric]},
        "champion": champion,
        "passed": all(c["passed"] for c in checks),
        "checks": checks,
    }
    write_json(ctx.paths.gate, result)
    client.set_tag(result["run_id"], "specops.gate.passed", str(result["passed"]).lower())
    client.set_tag(result["run_id"], "specops.gate.result", json.dumps(checks))
    if not result["passed"]:
        raise StageFailed(failure_report(result))
    print(f"gate {ctx.gate.name} passed for candidate {selected} ({selection.metric}={metrics[selection.metric]:.4g})")


def check_result(check: Check, metrics: dict[str, float], champion: Baseline | None,
                 budgets: Budgets | None = None) -> dict[str, Any]:
    """One check of the gate, as recorded in gate.json: a metric check, or an SLO's release freeze."""
    if check.slo is not None:
        verdict = judge(check, budgets or {})
        return CheckResult(check.describe(), check.metric, check.compare_to, check.min, check.max, verdict["value"],
                           verdict["passed"], verdict["note"], check.slo).to_dict()
    return check_metric(check, metrics, champion).to_dict()


def failure_report(result: dict[str, Any]) -> str:
    failed = [c for c in result["checks"] if not c["passed"]]
    lines = [f"gate {result['gate']} failed for candidate {result['selected']}: {len(failed)} of {len(result['checks'])} checks failed"]
    for check in failed:
        value = "missing" if check["value"] is None else f"{check['value']:.4g}"
        lines.append(f"  - {check['check']}: value {value}" + (f" ({check['note']})" if check["note"] else ""))
    lines.append("nothing was registered")
    return "\n".join(lines)
