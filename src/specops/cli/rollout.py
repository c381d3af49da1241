"""`specops rollout status|promote|abort|undo|resume ENDPOINT`: drive an endpoint's rollout by hand."""
from __future__ import annotations

import click

from specops.cli.options import console, friendly, version, with_project
from specops.core.paths import ProjectPaths
from specops.core.tables import plain_number
from specops.project import Project
from specops.state.records import RolloutRecord
from specops.state.storage import Storage


def _rollout(project: Project, endpoint: str):
    from specops.rollout import Rollout  # imports the serving stack: only when a command runs

    return Rollout(project, endpoint)


def show(record: RolloutRecord, storage: Storage) -> None:
    """The rollout record as a person reads it; `storage` says where its incident record is."""
    weights = ", ".join(f"{name} {weight}%" for name, weight in record.weights.items())
    console.print(f"endpoint {record.endpoint}: {record.status} ({record.strategy})")
    console.print(f"  stable  {record.stable} ({record.model} {version(record.stable_version)})")
    console.print(f"  canary  {record.canary} ({record.model} {version(record.canary_version)})")
    console.print(f"  traffic {weights}" + (f"; mirror {record.mirror}" if record.mirror else ""))
    console.print(f"  step    {record.step}")
    if record.message:
        console.print(f"  note    {record.message}")
    if record.incident:
        incident = record.incident
        console.print(f"  incident {incident} ({storage.describe(ProjectPaths.relative(lambda p: p.incident(incident)))})")
    for arm, metrics in record.extra.get("arms", {}).items():  # A/B: the experiment's report
        console.print(f"  arm {arm}: " + ", ".join(f"{k} {_number(v)}" for k, v in metrics.items()))
    if record.analyses:
        last = record.analyses[-1]
        console.print(f"  last analysis (step {last['step']}): {last['phase']}")
        for check in last["checks"]:
            console.print(f"    {check['phase']:<12} {check['check']}: {_number(check['value'])}"
                          + (f"  ({check['note']})" if check["note"] else ""))


def _number(value) -> str:
    numeric = value is None or isinstance(value, (int, float)) and not isinstance(value, bool)
    return plain_number(value) if numeric else str(value)


@click.group("rollout")
def rollout() -> None:
    """Drive an endpoint's rollout: see it, promote it, abort it, undo a promotion."""


@rollout.command("status")
@click.argument("endpoint")
@with_project
@friendly
def status(endpoint: str, project: Project) -> None:
    """Where ENDPOINT's rollout stands: traffic, step, last analysis, open incident."""
    show(_rollout(project, endpoint).status(), project.storage)


@rollout.command("promote")
@click.argument("endpoint")
@with_project
@friendly
def promote(endpoint: str, project: Project) -> None:
    """Send all traffic to the canary now; it becomes stable and its model version the champion."""
    show(_rollout(project, endpoint).promote(), project.storage)


@rollout.command("abort")
@click.argument("endpoint")
@with_project
@friendly
def abort(endpoint: str, project: Project) -> None:
    """Send all traffic back to the stable deployment now and open an incident."""
    show(_rollout(project, endpoint).abort(), project.storage)


@rollout.command("undo")
@click.argument("endpoint")
@with_project
@friendly
def undo(endpoint: str, project: Project) -> None:
    """Go back to the deployment stable before the last promotion (within rollback_window, no analysis)."""
    show(_rollout(project, endpoint).undo(), project.storage)


@rollout.command("resume")
@click.argument("endpoint")
@with_project
@friendly
def resume(endpoint: str, project: Project) -> None:
    """Continue a paused or interrupted rollout from its recorded step (an interrupted abort is finished)."""
    show(_rollout(project, endpoint).resume(), project.storage)


COMMANDS = (rollout,)
