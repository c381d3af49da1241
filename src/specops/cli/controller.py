"""`specops controller` and `specops retrain`: the retraining loop, by the clock or now."""
from __future__ import annotations

import click

from specops.cli.options import console, friendly, reporter, with_project
from specops.controller.events import REASONS
from specops.project import Project


@click.command()
@with_project
@click.option("--once", is_flag=True, help="one detection and run pass, then exit")
@click.option("--interval", default=60.0, show_default=True, help="seconds between passes")
@friendly
def controller(project: Project, once: bool, interval: float) -> None:
    """Run schedules, monitors, SLO scrapes, experiments and retraining triggers (drift, performance, stale, data change, cron)."""
    from specops.controller.loop import Controller

    ctl = Controller(project, report=reporter("controller"))
    if once:
        for event, status in ctl.tick():
            console.print(f"{event.id}: {status}")
        return
    ctl.run_forever(interval)


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
