"""`specops review --base REF`: the pull request's comment (plan, and the model's change) as Markdown."""
from __future__ import annotations

from pathlib import Path

import click

from specops.cli.options import friendly, reporter, with_project
from specops.errors import SpecopsError
from specops.project import Project


@click.command("review")
@click.option("--base", required=True, help="the revision the pull request goes into, e.g. origin/main (fetched)")
@click.option("--plan-env", help="environment whose plan the comment shows (default: --env, the one that trains)")
@click.option("--title", help="the comment's heading after 'specops plan:' (default: the plan's environment)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="write the comment here (default: stdout)")
@with_project
@friendly
def review_command(project: Project, base: str, plan_env: str | None, title: str | None, out: Path | None) -> None:
    """Plan, and for each pipeline whose training inputs changed since BASE, train a candidate locally (never
    registered nor deployed) and compare it with the evaluation committed on BASE: metrics, gate, fairness, plots."""
    from specops.review import review
    from specops.review.comment import to_comment

    planned = Project(project.root, plan_env) if plan_env else project
    result = review(project, base, plan=planned.plan() if plan_env else None, report=reporter("specops review"))
    body = to_comment(result, title or planned.env)
    if out is None:
        click.echo(body, nl=False)
    else:
        out.write_text(body, encoding="utf-8")
    if result.failed:  # the comment says why; the run fails too
        raise SpecopsError(f"training the candidate of {', '.join(result.failed)} failed (see the comment)")


COMMANDS = (review_command,)
