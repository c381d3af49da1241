"""Stage `gate`: pick the best candidate and hold it to the Gate spec's checks.

The result (every check with its value and bound) is written to gate.json and
tagged on the candidate's MLflow run whether it passes or not. A failure stops
the pipeline before anything is registered.
"""
from __future__ import annotations

import json
from typing import Any

from mlflow import MlflowClient

from specops.errors import StageFailed
from specops.lifecycle.context import StageContext, read_json, write_json
from specops.lifecycle.tracking import CHAMPION, connect, run_metrics, version_by_alias
from specops.slo.gates import Budgets, judge, slo_budgets
from specops.spec.kinds import Check, Selection


def run(ctx: StageContext) -> None:
    evaluation = read_json(ctx.paths, ctx.paths.evaluation, "evaluate")
    selection = ctx.pipeline.spec.selection
    selected = select_best(evaluation["candidates"], selection)
    metrics = evaluation["candidates"][selected]["metrics"]
    client = connect(ctx.specs)
    champion = champion_summary(client, ctx.pipeline.spec.model_name)
    budgets = slo_budgets(ctx.specs, ctx.gate)  # an exhausted error budget freezes promotion
    checks = [check_result(check, metrics, champion, budgets) for check in ctx.gate.spec.checks]
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


def select_best(candidates: dict[str, dict[str, Any]], selection: Selection) -> str:
    # Ties go to the first candidate in grid order, so selection is deterministic.
    sign = 1 if selection.goal == "maximize" else -1
    return max(sorted(candidates), key=lambda cid: sign * candidates[cid]["metrics"][selection.metric])


def better(value: float, than: float, goal: str) -> bool:
    return value > than if goal == "maximize" else value < than


def champion_summary(client: MlflowClient, model_name: str) -> dict[str, Any] | None:
    version = version_by_alias(client, model_name, CHAMPION)
    if version is None:
        return None
    return {"version": version.version, "run_id": version.run_id, "metrics": run_metrics(client, version)}


def check_result(check: Check, metrics: dict[str, float], champion: dict[str, Any] | None,
                 budgets: Budgets | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"check": check.describe(), "metric": check.metric, "compare_to": check.compare_to,
                              "min": check.min, "max": check.max, "value": None, "note": ""}
    if check.slo is not None:
        return {**result, "slo": check.slo, **judge(check, budgets or {})}
    if check.metric not in metrics:
        return {**result, "passed": False, "note": f"the candidate has no metric {check.metric!r}"}
    value = metrics[check.metric]
    if check.compare_to == CHAMPION:
        if champion is None:
            return {**result, "passed": True, "note": "no champion yet"}
        if check.metric not in champion["metrics"]:
            return {**result, "passed": True, "note": f"champion v{champion['version']} has no metric {check.metric!r}"}
        value -= champion["metrics"][check.metric]
        result["note"] = f"vs champion v{champion['version']}"
    within = (check.min is None or value >= check.min) and (check.max is None or value <= check.max)
    return {**result, "value": value, "passed": within}


def failure_report(result: dict[str, Any]) -> str:
    failed = [c for c in result["checks"] if not c["passed"]]
    lines = [f"gate {result['gate']} failed for candidate {result['selected']}: {len(failed)} of {len(result['checks'])} checks failed"]
    for check in failed:
        value = "missing" if check["value"] is None else f"{check['value']:.4g}"
        lines.append(f"  - {check['check']}: value {value}" + (f" ({check['note']})" if check["note"] else ""))
    lines.append("nothing was registered")
    return "\n".join(lines)
