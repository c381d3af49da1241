"""A Plan as text (terminal), JSON (machines) and Markdown (the PR comment)."""
from __future__ import annotations

import json
from typing import Any

from specops.plan.model import Action, Operation, Plan

MARKER = "<!-- specops-plan -->"


def show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _op_lines(op: Operation) -> list[str]:
    lines = [f"{op.action.symbol} {op.key}"]
    lines += [f"    {c.path}: {show(c.old)} → {show(c.new)}" for c in op.changes]
    return lines


def to_text(plan: Plan) -> str:
    lines = [f"specops plan · environment {plan.env} (backend {plan.backend})", ""]
    for op in plan.operations:
        lines += ["  " + line for line in _op_lines(op)]
    if plan.operations:
        lines.append("")
    lines += [f"note: {note}" for note in plan.notes]
    lines.append(plan.summary())
    return "\n".join(lines)


def to_json(plan: Plan) -> str:
    return json.dumps(
        {
            "environment": plan.env,
            "backend": plan.backend,
            "summary": {a.value: plan.count(a) for a in Action},
            "operations": [
                {
                    "action": op.action.value,
                    "resource": op.key,
                    "changes": [{"path": c.path, "old": c.old, "new": c.new} for c in op.changes],
                    "after": op.after,
                }
                for op in plan.operations
            ],
            "notes": plan.notes,
        },
        indent=2,
        sort_keys=True,
        default=str,
    )


def to_markdown(plan: Plan) -> str:
    lines = [MARKER, f"### specops plan · `{plan.env}` ({plan.backend})", "", f"**{plan.summary()}**", ""]
    if plan.operations:
        lines += ["| | resource | what changes |", "|---|---|---|"]
        for op in plan.operations:
            what = ", ".join(f"`{c.path}`" for c in op.changes) or op.action.value
            lines.append(f"| `{op.action.symbol}` | `{op.key}` | {what} |")
        lines += ["", "<details><summary>Details</summary>", "", "```diff"]
        for op in plan.operations:
            lines += _op_lines(op)
        lines += ["```", "", "</details>"]
    lines += [f"> {note}" for note in plan.notes]
    return "\n".join(lines) + "\n"


FORMATS = {"text": to_text, "json": to_json, "markdown": to_markdown}
