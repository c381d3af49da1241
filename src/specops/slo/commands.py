"""`specops slo status [NAME] [--format text|json|markdown]` (added to the CLI by specops.cli)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from specops.cli_options import ENV, ROOT, console, friendly
from specops.slo.budget import ObjectiveStatus

COLUMNS = ("SLO", "objective", "window", "SLI", "target", "bad / allowed", "remaining", "burn rate", "status")
_STYLE = {"ok": "green", "at risk": "yellow", "exhausted": "red", "no data": "dim"}


@click.group("slo")
def slo_group() -> None:
    """Service-level objectives: SLIs, error budgets, burn rates."""


@slo_group.command("status")
@click.argument("name", required=False)
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True)
@ENV
@ROOT
@friendly
def status(name: str | None, fmt: str, env: str | None, root: Path) -> None:
    """Each objective of NAME (default: every SLO): SLI vs target, error budget left, burn rate."""
    from specops.slo.engine import evaluate
    from specops.spec import load_specs
    from specops.spec.slos import SLO

    specs = load_specs(root, env)
    slos = specs.of_kind(SLO)
    if name is not None:
        slos = [specs.require(SLO, name)]
    statuses = [status for slo in slos for status in evaluate(specs, slo)]
    {"text": _text, "json": _json, "markdown": _markdown}[fmt](statuses)


def cells(s: ObjectiveStatus) -> list[str]:
    return [s.slo, s.objective, s.window, _sli(s), s.target, _budget(s), _fraction(s.remaining),
            "-" if s.burn_rate is None else f"{s.burn_rate:.2f}", s.status]


def _sli(s: ObjectiveStatus) -> str:
    if s.sli is None:
        return "-"
    if s.sli_kind == "freshness":
        return f"{s.sli:.1f} days"
    if s.sli_kind == "fairness":
        return f"{s.sli:.3f}"
    return f"{s.sli:.3%}"


def _budget(s: ObjectiveStatus) -> str:
    if s.events is None or s.budget is None:
        return "-"
    return f"{s.bad:g} / {s.budget:.4g} of {s.events:g}"


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _text(statuses: list[ObjectiveStatus]) -> None:
    from rich.table import Table

    if not statuses:
        console.print("no SLOs defined")
        return
    table = Table(*COLUMNS)
    for s in statuses:
        row = cells(s)
        row[-1] = f"[{_STYLE[s.status]}]{s.status}[/]"
        table.add_row(*row)
    console.print(table)
    for s in statuses:
        if s.note:
            console.print(f"  {s.slo}/{s.objective}: {s.note}", markup=False)


def _json(statuses: list[ObjectiveStatus]) -> None:
    click.echo(json.dumps([s.to_json() for s in statuses], indent=2))


def _markdown(statuses: list[ObjectiveStatus]) -> None:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in cells(s)) + " |" for s in statuses]
    click.echo("\n".join(lines))
