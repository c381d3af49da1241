"""`specops scoreboard`, `specops kpi`, `specops maturity`: how healthy the whole system is."""
from __future__ import annotations

from pathlib import Path

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


@click.command()
@with_project
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("site"), show_default=True,
              help="Folder for the static site (created); publish it as a CI artifact or on GitHub Pages.")
@friendly
def report(project: Project, out: Path) -> None:
    """A static HTML site: models with cards and lineage, drift over time, SLO budgets, rollouts and incidents."""
    from specops.governance.site import build_site

    result = build_site(project, out)
    console.print(f"wrote {len(result.pages)} pages to {out}/ (open {result.index})", markup=False)


COMMANDS = (scoreboard, kpi, maturity, report)
