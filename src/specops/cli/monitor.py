"""`specops monitor run NAME` and `specops monitor report [NAME]`: drift monitors by hand."""
from __future__ import annotations

from datetime import UTC, datetime

import click

from specops.cli.options import console, friendly, table, with_project
from specops.project import Project


@click.group("monitor")
def monitor_group() -> None:
    """Drift monitors: run one now, list their reports."""


@monitor_group.command("run")
@click.argument("name")
@click.option("--at", "at", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"]), default=None,
              help="end the look-back window here (UTC unless an offset is given; default: now)")
@with_project
@friendly
def run(name: str, at: datetime | None, project: Project) -> None:
    """Run monitor NAME over its look-back window, write its reports and act on an alert."""
    from specops.controller.monitors import run_monitor
    from specops.spec.monitors import Monitor

    monitor = project.specs.require(Monitor, name)
    now = at.replace(tzinfo=at.tzinfo or UTC) if at else datetime.now(UTC)
    result = run_monitor(project, monitor, now)
    console.print(f"{name}: {result.status} ({result.target_rows} rows, "
                  f"{result.window_start.isoformat()} to {result.window_end.isoformat()})")
    if result.reason:
        console.print(f"  {result.reason}")
    for feature in result.features:
        for alert in feature.alerts:
            console.print(f"  {feature.name}: {alert}")
    for action in result.actions:
        console.print(f"  action{' (by an earlier run of this window)' if result.repeat else ''}: {action}")
    if result.report_dir is not None:
        console.print(f"  report: {result.report_dir / 'report.html'}")


@monitor_group.command("report")
@click.argument("name", required=False)
@with_project
@friendly
def report(name: str | None, project: Project) -> None:
    """List monitor reports, newest window first, with what alerted."""
    from specops.monitoring.report import list_reports

    reports = list_reports(project.root, name)
    if not reports:
        console.print(f"no reports yet{f' for monitor {name}' if name else ''}")
        return
    console.print(table(("window end", "monitor", "status", "drifted", "report"),
                        ([s["window_end"], s["monitor"], s["status"], ", ".join(s["drifted"]) or "-", folder / "report.html"]
                         for folder, s in reports)))


COMMANDS = (monitor_group,)
