"""`specops scoreboard`, `specops kpi`, `specops maturity`: how healthy the whole system is."""
from __future__ import annotations

import click

from specops.cli.options import console, friendly, table, with_project
from specops.project import Project


@click.command()
@with_project
@click.option("--format", "fmt", type=click.Choice(["text", "markdown"]), default="text", show_default=True)
@friendly
def scoreboard(project: Project, fmt: str) -> None:
    """Every registered model version: its task's selection metric, fairness gap, drift, latency, role."""
    from specops.governance import scoreboard as board

    rows = board.scoreboard(project.specs)
    if not rows:
        console.print("No model registered yet.")
    elif fmt == "markdown":
        click.echo(board.to_markdown(rows))
    else:
        console.print(table(board.COLUMNS, map(board.cells, rows)))


@click.command()
@with_project
@friendly
def kpi(project: Project) -> None:
    """Delivery KPIs from the audit log and the registry."""
    from specops.governance.kpi import compute

    console.print(table(("KPI", "value", "target", "detail"), ([k.name, k.show(), k.target, k.detail] for k in compute(project.specs))))


@click.command()
@with_project
@friendly
def maturity(project: Project) -> None:
    """Score the repository against the six-level MLOps maturity model."""
    from specops.governance.maturity import assess, report

    click.echo(report(assess(project.specs)))


COMMANDS = (scoreboard, kpi, maturity)
