"""`specops controller` and `specops retrain`: the retraining loop, by the clock or now."""
from __future__ import annotations

import json

import click

from specops.cli.options import console, friendly, reporter, with_project
from specops.controller.events import REASONS
from specops.project import Project


@click.command()
@with_project
@click.option("--once", is_flag=True, help="one detection and run pass, then exit")
@click.option("--interval", default=60.0, show_default=True, help="seconds between passes")
@click.option("--json", "as_json", is_flag=True, help="with --once: what the pass did with each event, as JSON "
              "(CI reads the retrainings a promoted environment requests of the one it comes from)")
@friendly
def controller(project: Project, once: bool, interval: float, as_json: bool) -> None:
    """Run schedules, monitors, SLO scrapes, experiments and retraining triggers (drift, performance, stale, data change, cron).

    On Azure ML: act on the workspace's monitor runs and follow the retraining jobs (run it from a schedule, --once)."""
    from specops.controller.loop import Controller

    if as_json and not once:
        raise click.UsageError("--json reports one pass: use it with --once")
    ctl = Controller(project, report=reporter("controller"))
    if not once:
        ctl.run_forever(interval)
        return
    outcomes = ctl.tick()
    if as_json:
        click.echo(json.dumps([{"event": e.id, "pipeline": e.pipeline, "reason": e.reason, "status": status}
                               for e, status in outcomes]))
    else:
        for event, status in outcomes:
            console.print(f"{event.id}: {status}")


@click.command()
@click.argument("pipeline")
@click.option("--reason", type=click.Choice([r for r in REASONS if r in ("drift", "performance", "stale", "manual")]),
              default="manual", show_default=True)
@with_project
@friendly
def retrain(pipeline: str, reason: str, project: Project) -> None:
    """Queue a retraining of PIPELINE with a recorded reason, and run it now."""
    from specops.controller.loop import Controller

    for event, status in Controller(project, report=reporter("controller")).retrain(pipeline, reason):
        console.print(f"{event.id}: {status}")


COMMANDS = (controller, retrain)
