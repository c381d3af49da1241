"""`specops` on the command line: a thin layer over the library (specops.project and the packages below it).

Each command parses its options, calls one library entry point with the
command's `Project` and prints the result. User mistakes (SpecopsError) print
a message and exit 1, never a traceback.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from specops.cli.options import console, friendly, reporter, table, version, with_project
from specops.errors import SpecopsError
from specops.project import Project, Status
from specops.state.records import HEALTHY


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="specops")
def main() -> None:
    """Declare ML systems as specs; validate, plan and apply them."""


@main.command()
@with_project
@friendly
def validate(project: Project) -> None:
    """Check every spec: schema, references, cron, cycles. Reports all errors at once."""
    specs = project.validate()
    console.print(f"{len(specs.documents)} specs valid for environment {specs.env}.")


@main.command()
@with_project
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True)
@click.option("--detailed-exitcode", is_flag=True, help="exit 0 when nothing changes, 2 when something does, 1 on error")
@click.option("-out", "--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the plan to FILE; `specops apply FILE` applies exactly it, or refuses if anything moved")
@friendly
def plan(project: Project, fmt: str, detailed_exitcode: bool, out: Path | None) -> None:
    """Show what apply would change."""
    from specops.plan.format import FORMATS

    result = project.save_plan(out)[0] if out is not None else project.plan()
    text = FORMATS[fmt](result)
    click.echo(_colour(text) if fmt == "text" and sys.stdout.isatty() else text)
    if detailed_exitcode and not result.empty:
        sys.exit(2)


def _colour(plan_text: str) -> str:
    """Terraform's colours for +, ~ and - lines, on a terminal only."""
    styles = {"+": "green", "~": "yellow", "-": "red"}
    lines = []
    for line in plan_text.splitlines():
        style = styles.get(line.strip()[:1]) if line.startswith("  ") and not line.startswith("    ") else None
        lines.append(click.style(line, fg=style) if style else line)
    return "\n".join(lines)


@main.command()
@with_project
@click.argument("planfile", required=False, type=click.Path(dir_okay=False, path_type=Path))
@friendly
def apply(project: Project, planfile: Path | None) -> None:
    """Carry out the plan, in dependency order, under the apply lock.

    With PLANFILE (from `specops plan -out`), apply exactly that plan in its environment,
    or refuse, changing nothing, if the specs, params, data or state moved since.
    """
    from specops.plan.format import to_text
    from specops.plan.saved import load

    if planfile is not None:
        env = load(planfile).env
        if project.requested_env not in (None, env):
            raise SpecopsError(f"{planfile} was planned for environment {env}, not {project.requested_env}")
        project = Project(project.root, env)
    result = project.apply(report=reporter("specops"), reviewed=planfile)
    console.print(to_text(result.plan) if result.plan.empty else f"Applied {len(result.applied)} change(s). {result.plan.summary()}")


@main.command()
@with_project
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@friendly
def status(project: Project, fmt: str) -> None:
    """Show what is deployed in an environment: applied resources, what they serve now, rollouts."""
    state = project.status()
    if fmt == "json":
        click.echo(json.dumps(state.to_dict(), indent=2, sort_keys=True, default=str))
        return
    if not state.resources:
        console.print(f"Nothing applied to {state.environment} yet.")
        return
    console.print(f"environment {state.environment} (state serial {state.serial})")
    console.print(table(("resource", "applied", "now", "outputs"),
                        ([r.key, r.applied_at, _live(r.live), _summary(r.outputs)] for r in state.resources)))
    _rollouts(state)


def _live(live: dict[str, Any]) -> str:
    return ", ".join(str(v) for v in live.values() if v is not None) or "-"


def _summary(outputs: dict[str, Any]) -> str:
    if "model" in outputs and "version" in outputs:
        return f"{outputs['model']} v{outputs['version']}"
    shown = {k: v for k, v in outputs.items() if v is not None and k in ("port", "versions", "traffic", "backend")}
    return ", ".join(f"{k}={_plain(v)}" for k, v in shown.items()) or "-"


def _plain(value: Any) -> str:
    if isinstance(value, dict):  # e.g. versions by deployment, where None is a deployment not serving yet
        return " ".join(f"{k}:{'-' if v is None else v}" for k, v in value.items())
    return str(value)


def _rollouts(state: Status) -> None:
    for name, record in sorted(state.rollouts.items()):
        weights = ", ".join(f"{d} {w}%" for d, w in record.weights.items())
        if record.status == HEALTHY and record.previous:
            where = (f"{record.stable} {version(record.stable_version)}, promoted from {record.previous['stable']} "
                     f"{version(record.previous['stable_version'])}")
        else:
            where = (f"{record.stable} {version(record.stable_version)} -> {record.canary} "
                     f"{version(record.canary_version)}")
        incident = f"; incident {record.incident}" if record.incident else ""
        console.print(f"rollout of {name}: {record.status} ({record.strategy}): {where}; traffic {weights}{incident}")


@main.command()
@with_project
@click.option("--check", is_flag=True, help="fail if dvc.yaml differs from what the specs render to")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="azureml environments: folder for Azure ML CLI v2 YAML (default build/<env>/azureml)")
@friendly
def render(project: Project, check: bool, out: Path | None) -> None:
    """Render the specs for the environment's backend: dvc.yaml (local) or Azure ML YAML (azureml)."""
    result = project.render(out, check)
    if project.environment.backend == "azureml":
        console.print(f"wrote {len(result.files)} Azure ML files to {result.folder}")
    else:
        console.print(f"wrote {result.files[0]}" if result.changed else "dvc.yaml is up to date.")


@main.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("schemas"), show_default=True)
def schema(out: Path) -> None:
    """Write the JSON Schema of every kind (for editors)."""
    from specops.schema import write_schemas

    for path in write_schemas(out):
        console.print(f"wrote {path}")


@main.command()
@with_project
@click.argument("ref")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@friendly
def lineage(project: Project, ref: str, fmt: str) -> None:
    """Lineage record and model card of MODEL[@version|@alias] (default @champion)."""
    from specops.registry import describe

    info = describe(project.specs, ref)
    if fmt == "json":
        click.echo(json.dumps(info, indent=2, sort_keys=True, default=str))
        return
    console.print(f"{info['model']} version {info['version']} aliases: {', '.join(info['aliases']) or '-'}", markup=False, style="bold")
    console.print(json.dumps(info["lineage"], indent=2, sort_keys=True, default=str))
    console.print(info["model_card"])


@main.group("env")
def env_group() -> None:
    """The Python environment."""


@env_group.command("check")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True)
@friendly
def env_check(root: Path) -> None:
    """Report installed packages that differ from requirements.lock."""
    from specops.envcheck import drift

    lock = root / "requirements.lock"
    if not lock.exists():
        raise SpecopsError(f"{lock} not found")
    problems = drift(lock)
    for line in problems:
        console.print(line)
    if problems:
        raise SpecopsError(f"{len(problems)} package(s) differ from {lock.name}; run `make venv` to reinstall")
    console.print(f"environment matches {lock.name}.")


def _register_groups() -> None:
    from specops.cli import batch, controller, endpoint, governance, init, monitor, review, rollout, slo, stage

    for module in (batch, controller, endpoint, governance, init, monitor, review, rollout, slo, stage):
        for command in module.COMMANDS:
            main.add_command(command)


_register_groups()
