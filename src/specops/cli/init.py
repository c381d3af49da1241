"""`specops init DIR`: a thin command over specops.init (see docs/init.md)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from specops.cli.options import console, friendly, reporter


@click.command("init")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--name", "project_name", help="project name: lower-case letters, digits, '-' (default: DIR's name)")
@click.option("--description", help="one line about the project")
@click.option("--data", help="a CSV to import (its columns are inferred), or where example data is generated (default data/NAME.csv)")
@click.option("--dataset-path", help="where the data set lives inside the project (default: data/<CSV name>)")
@click.option("--target", help="the target column (binary label)")
@click.option("--sensitive", help="a sensitive attribute for fairness metrics (optional)")
@click.option("--ci", "ci_provider", metavar="github|azure-devops|both", help="CI files to generate [default: github]")
@click.option("--azure-subscription-id", help="placeholder value for AZURE_SUBSCRIPTION_ID (azure.env.example)")
@click.option("--azure-resource-group", help="placeholder value for AZURE_RESOURCE_GROUP")
@click.option("--azure-workspace", help="placeholder value for AZURE_ML_WORKSPACE")
@click.option("--endpoint/--no-endpoint", default=None, help="add an online Endpoint spec [default: no]")
@click.option("--endpoint-port", type=int, help="the endpoint's local server port [default: 5800]")
@click.option("--specops-source", help="pip requirement the project installs specops from (pin a tag)")
@click.option("--rows", "example_rows", type=int, help="rows of generated example data [default: 1500]")
@click.option("--min-roc-auc", type=float, help="the promotion gate's minimum ROC AUC [default: 0.7]")
@click.option("--force", is_flag=True, help="write into a non-empty DIR, replacing files the template has")
@click.option("--template", help="template to use: a folder or git URL (default: the one bundled with specops)")
@click.option("--vcs-ref", help="template version (git tag or commit) when --template is a git repository")
@click.option("--update", is_flag=True, help="take later template changes into the project in DIR (copier update)")
@click.option("--interactive/--no-interactive", default=None, help="ask for missing answers [default: when stdin is a terminal]")
@friendly
def init_command(directory: Path, data: str | None, force: bool, template: str | None, vcs_ref: str | None,
                 update: bool, interactive: bool | None, **answers) -> None:
    """Create a new specops project in DIR (or, with --update, update one)."""
    from specops.init.bootstrap import init_project, update_project

    report = reporter("specops init")
    if update:
        given = sorted(k for k, v in answers.items() if v is not None)
        if given or data or force:
            raise click.UsageError("--update takes only --vcs-ref and --template: the answers come from .copier-answers.yml")
        update_project(directory, vcs_ref=vcs_ref, template=template, report=report)
        return
    if interactive is None:
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if interactive and data is None:
        data = click.prompt("Data set CSV to import (empty: generate example data)", default="", show_default=False) or None
    project = init_project(directory, answers, data=data, force=force, template=template, vcs_ref=vcs_ref,
                           interactive=interactive, report=report)
    console.print(f"Created {project}. Next: cd {directory} && make demo")


COMMANDS = (init_command,)
