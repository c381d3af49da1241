"""A Plan as text (terminal), JSON (machines) and Markdown (the PR comment)."""
from __future__ import annotations

import json
from typing import Any

from specops.plan.model import Action, Cause, Operation, Plan

MARKER = "<!-- specops-plan -->"


def show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def describe(cause: Cause) -> str:
    """`train: params train.fixed.n_estimators: 100 → 150`, `validate: data data/credit.csv: 1f0e… → 9a2b…`."""
    what = f"{cause.stage}: {cause.kind} {cause.path}"
    if cause.old is not None or cause.new is not None:
        what += f": {show(cause.old)} → {show(cause.new)}"
    return what + (f" ({cause.note})" if cause.note and cause.note != "modified" else "")


def _op_lines(op: Operation) -> list[str]:
    lines = [f"{op.action.symbol} {op.key}"]
    lines += [f"    {c.path}: {show(c.old)} → {show(c.new)}" for c in op.changes]
    lines += [f"      because {describe(cause)}" for cause in op.causes]
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
                    "causes": [cause.to_dict() for cause in op.causes],
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
            if op.causes:  # the reviewer's first question about stale outputs: why?
                what += "<br>because " + "<br>".join(f"`{_cell(describe(cause))}`" for cause in op.causes)
            lines.append(f"| `{op.action.symbol}` | `{op.key}` | {what} |")
        lines += ["", "<details><summary>Details</summary>", "", "```diff"]
        for op in plan.operations:
            lines += _op_lines(op)
        lines += ["```", "", "</details>"]
    lines += [f"> {note}" for note in plan.notes]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell and a code span."""
    return text.replace("|", "\\|").replace("`", "'")


FORMATS = {"text": to_text, "json": to_json, "markdown": to_markdown}
