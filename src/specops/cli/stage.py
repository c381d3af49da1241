"""`specops stage STAGE --pipeline P`: one lifecycle stage, as dvc.yaml and Azure ML components run it."""
from __future__ import annotations

import click

from specops.cli.options import friendly, with_project
from specops.project import Project


@click.command(hidden=True)
@click.argument("stage")
@click.option("--pipeline", required=True)
@click.option("--set", "overrides", multiple=True, metavar="PARAM=VALUE", help="fix a parameter for this run (one sweep trial)")
@with_project
@friendly
def stage(stage: str, pipeline: str, overrides: tuple[str, ...], project: Project) -> None:
    """Run one lifecycle stage (dvc.yaml and Azure ML components call this; apply passes its environment in SPECOPS_ENV)."""
    from specops.lifecycle.stages import parse_overrides, run_stage
    from specops.spec import Pipeline

    run_stage(stage, project.specs, project.specs.require(Pipeline, pipeline), parse_overrides(overrides))


COMMANDS = (stage,)
