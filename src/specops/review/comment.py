"""A Review as the one pull-request comment: the plan (with why), then the model's change.

Plots are Mermaid `xychart-beta` blocks and Markdown tables, which GitHub renders in the comment itself.
The alternatives need something a comment cannot hold: GitHub strips inline `<svg>` and `data:` image
URIs from comments, and an image file must be pushed somewhere first (a branch, which a pull request's
workflow should not be able to write, or a third-party asset host). Text charts also diff and test as text.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from specops.core.tables import markdown_table
from specops.plan.format import MARKER, describe, to_markdown
from specops.review.candidate import ROC_POINTS, PipelineReview, Plots, Review

GROUP_METRICS = ("accuracy", "selection_rate")


def to_comment(review: Review, title: str) -> str:
    """The comment body: MARKER first, so the workflow finds its comment and edits it in place."""
    # The plan's own marker and heading give way to the comment's, which names the environment with `title`.
    plan = [line for line in to_markdown(review.plan).splitlines() if line != MARKER and not line.startswith("### specops plan")]
    lines = [MARKER, f"## specops plan: {title}", *plan, "", "## The model's change", ""]
    if not review.pipelines:
        lines.append("_No pipeline is declared: no model to train._")
    for pipeline in review.pipelines:
        lines += _pipeline(pipeline, review.base)
    return "\n".join(lines).rstrip() + "\n"


def _pipeline(p: PipelineReview, base: str) -> list[str]:
    lines = [f"### Pipeline `{p.pipeline}`", ""]
    if p.failed:
        return [*lines, "Training the candidate **failed** ❌; its inputs changed because:", "",
                *(f"- `{describe(cause)}`" for cause in p.causes), "", "```", p.note, "```", ""]
    if not p.trained:
        return [*lines, f"_{p.note}_", ""]
    lines += ["Trained on this pull request because:", ""]
    lines += [f"- `{describe(cause)}`" for cause in p.causes] + [""]
    against = f"the champion: candidate `{p.champion}` of the evaluation committed on `{base}`" if p.champion else "no champion"
    lines += [f"Candidate **`{p.candidate}`** (trained by CI, not registered, not deployed) against {against}.", ""]
    if p.note:
        lines += [f"> {p.note}", ""]
    lines += [_metrics(p), _gate(p)]
    if p.by_group:
        lines.append(_fairness(p))
    if p.plots is not None:
        lines += _plots(p.plots, p.candidate or "")
    if p.metrics_diff:
        lines += ["<details><summary>Every committed metric against <code>" + base + "</code> (<code>dvc metrics diff --md</code>)"
                  "</summary>", "", p.metrics_diff, "", "</details>", ""]
    return lines


def _metrics(p: PipelineReview) -> str:
    old = p.champion_metrics or {}
    rows = [(f"`{name}`", _num(old.get(name)), _num(value), _delta(value, old.get(name)))
            for name, value in p.metrics.items()]
    return "**Metrics**\n\n" + markdown_table(("metric", "champion", "candidate", "Δ"), rows)


def _gate(p: PipelineReview) -> str:
    verdict = "passes ✅" if p.passed else "fails ❌"
    failed = sum(1 for c in p.checks if not c["passed"])
    head = f"**Gate `{p.gate}`: the candidate {verdict}** ({len(p.checks) - failed} of {len(p.checks)} checks pass)\n\n"
    rows = [(f"`{c['check']}`", _num(c["value"]), "✅ pass" if c["passed"] else "❌ fail", c["note"] or "")
            for c in p.checks]
    return head + markdown_table(("check", "value", "verdict", "note"), rows)


def _fairness(p: PipelineReview) -> str:
    rows = []
    for group, values in sorted(p.by_group.items()):
        old = p.champion_by_group.get(group, {})
        rows.append((f"`{group}`", *(f"{_num(old.get(m))} → {_num(values.get(m))}" for m in GROUP_METRICS),
                     _num(values.get("count"))))
    columns = ("group", *(f"{m.replace('_', ' ')} (champion → candidate)" for m in GROUP_METRICS), "rows")
    return "**Fairness by group**\n\n" + markdown_table(columns, rows)


def _plots(plots: Plots, candidate: str) -> list[str]:
    negative, positive = plots.labels
    (tn, fp), (fn, tp) = plots.confusion
    confusion = markdown_table(("true \\ predicted", f"`{negative}`", f"`{positive}`"),
                               [(f"`{negative}`", tn, fp), (f"`{positive}`", fn, tp)])
    chance = [round(i / (ROC_POINTS - 1), 4) for i in range(ROC_POINTS)]
    roc = _chart(f"ROC curve of {candidate} (diagonal: chance)", ['x-axis "false positive rate" 0 --> 1',
                 'y-axis "true positive rate" 0 --> 1', f"line {_list(plots.roc)}", f"line {_list(chance)}"])
    names = ", ".join(_quoted(name) for name, _ in plots.importance)
    top = max((value for _, value in plots.importance), default=0.0) or 1.0
    importance = _chart(f"Feature importance of {candidate}", [f"x-axis [{names}]", f'y-axis "importance" 0 --> {_num(top)}',
                        f"bar {_list(v for _, v in plots.importance)}"], horizontal=True)
    return ["**Plots** (the candidate on its held-out rows)", "", "Confusion matrix", "", confusion, roc, importance]


def _chart(title: str, body: list[str], horizontal: bool = False) -> str:
    head = "xychart-beta horizontal" if horizontal else "xychart-beta"
    return "\n".join(["```mermaid", head, f"    title {_quoted(title)}", *(f"    {line}" for line in body), "```", ""])


def _list(values: Iterable[float]) -> str:
    return "[" + ", ".join(_num(v) for v in values) + "]"


def _quoted(text: str) -> str:
    return '"' + text.replace('"', "'") + '"'


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.4g}"
    return str(int(value)) if isinstance(value, float) else str(value)


def _delta(new: float, old: float | None) -> str:
    return "-" if old is None else f"{new - old:+.4g}"

