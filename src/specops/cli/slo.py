"""`specops slo status [NAME] [--format text|json|markdown]`: objectives, error budgets, burn rates."""
from __future__ import annotations

import json

import click

from specops.cli.options import console, friendly, with_project
from specops.core.tables import markdown_table, plain_number
from specops.project import Project
from specops.slo.budget import ObjectiveStatus

COLUMNS = ("SLO", "objective", "window", "SLI", "target", "bad / allowed", "remaining", "burn rate", "status")
_STYLE = {"ok": "green", "at risk": "yellow", "exhausted": "red", "no data": "dim"}


@click.group("slo")
def slo_group() -> None:
    """Service-level objectives: SLIs, error budgets, burn rates."""


@slo_group.command("status")
@click.argument("name", required=False)
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True)
@with_project
@friendly
def status(name: str | None, fmt: str, project: Project) -> None:
    """Each objective of NAME (default: every SLO): SLI vs target, error budget left, burn rate."""
    from specops.slo.engine import evaluate
    from specops.spec.slos import SLO

    specs = project.specs
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
    return f"{plain_number(s.bad)} / {plain_number(s.budget)} of {plain_number(s.events)}"


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _text(statuses: list[ObjectiveStatus]) -> None:
    from rich.table import Table
    from rich.text import Text

    if not statuses:
        console.print("no SLOs defined")
        return
    table = Table(*COLUMNS)
    for s in statuses:
        table.add_row(*cells(s)[:-1], Text(s.status, style=_STYLE[s.status]))
    console.print(table)
    for s in statuses:
        if s.note:
            console.print(f"  {s.slo}/{s.objective}: {s.note}")


def _json(statuses: list[ObjectiveStatus]) -> None:
    click.echo(json.dumps([s.to_json() for s in statuses], indent=2))


def _markdown(statuses: list[ObjectiveStatus]) -> None:
    click.echo(markdown_table(COLUMNS, map(cells, statuses)), nl=False)


COMMANDS = (slo_group,)
