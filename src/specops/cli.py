"""`specops` on the command line: a thin layer over specops.api.

User mistakes (SpecopsError) print a message and exit 1, never a traceback.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from specops import api
from specops.cli_options import ENV, ROOT, console, err, friendly
from specops.errors import SpecopsError
from specops.monitoring.commands import monitor_group
from specops.rollout.commands import rollout
from specops.serving.batch_commands import batch


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="specops")
def main() -> None:
    """Declare ML systems as specs; validate, plan and apply them."""


@main.command()
@ENV
@ROOT
@friendly
def validate(env: str | None, root: Path) -> None:
    """Check every spec: schema, references, cron, cycles. Reports all errors at once."""
    specs = api.validate(root, env)
    console.print(f"{len(specs.documents)} specs valid for environment {specs.env}.")


@main.command()
@ENV
@ROOT
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True)
@click.option("--detailed-exitcode", is_flag=True, help="exit 0 when nothing changes, 2 when something does, 1 on error")
@friendly
def plan(env: str | None, root: Path, fmt: str, detailed_exitcode: bool) -> None:
    """Show what apply would change."""
    from specops.plan.format import FORMATS

    result = api.plan(root, env).plan
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
@ENV
@ROOT
@friendly
def apply(env: str | None, root: Path) -> None:
    """Carry out the plan, in dependency order, under the apply lock."""
    from specops.plan.format import to_text

    result = api.apply(root, env, report=lambda line: err.print(f"[dim]specops[/dim] {line}", markup=True))
    console.print(to_text(result.plan) if result.plan.empty else f"Applied {len(result.applied)} change(s). {result.plan.summary()}")


@main.command()
@ENV
@ROOT
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@friendly
def status(env: str | None, root: Path, fmt: str) -> None:
    """Show what is deployed in an environment."""
    state = api.status(root, env)
    if fmt == "json":
        click.echo(json.dumps(state, indent=2, sort_keys=True))
        return
    if not state["resources"]:
        console.print(f"Nothing applied to {state['environment']} yet.")
        return
    console.print(f"environment {state['environment']}")
    width = max(len(key) for key in state["resources"])
    for key, entry in sorted(state["resources"].items()):
        console.print(f"  {key:<{width}}  applied {entry['applied_at']}  {_summary(entry.get('outputs', {}))}")


def _summary(outputs: dict) -> str:
    if "model" in outputs and "version" in outputs:
        return f"{outputs['model']} v{outputs['version']} ({', '.join(outputs.get('aliases', []))})"
    return ", ".join(f"{k}={v}" for k, v in outputs.items() if not isinstance(v, (dict, list)))


@main.command()
@ENV
@ROOT
@click.option("--check", is_flag=True, help="fail if dvc.yaml differs from what the specs render to")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="azureml environments: folder for Azure ML CLI v2 YAML (default build/<env>/azureml)")
@friendly
def render(env: str | None, root: Path, check: bool, out: Path | None) -> None:
    """Render the specs for the environment's backend: dvc.yaml (local) or Azure ML YAML (azureml)."""
    from specops.render.dvc import dump_dvc, render_dvc

    specs = api.validate(root, env)
    if specs.project.spec.environments[specs.env].backend == "azureml":
        if check:
            raise SpecopsError("--check compares dvc.yaml, which only local environments use")
        from specops.render.azureml import render_azureml

        folder = out or specs.root / "build" / specs.env / "azureml"
        console.print(f"wrote {len(render_azureml(specs, folder))} Azure ML files to {folder}")
        return
    text = dump_dvc(render_dvc(specs))
    target = specs.root / "dvc.yaml"
    current = target.read_text() if target.exists() else None
    if check:
        if current != text:
            raise SpecopsError("dvc.yaml is stale: run `specops render` and commit the result")
        console.print("dvc.yaml is up to date.")
    elif current != text:
        target.write_text(text)
        console.print(f"wrote {target}")
    else:
        console.print("dvc.yaml is up to date.")


@main.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("schemas"), show_default=True)
def schema(out: Path) -> None:
    """Write the JSON Schema of every kind (for editors)."""
    from specops.schema import write_schemas

    for path in write_schemas(out):
        console.print(f"wrote {path}")


@main.command()
@ROOT
@ENV
@click.argument("ref")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@friendly
def lineage(root: Path, env: str | None, ref: str, fmt: str) -> None:
    """Lineage record and model card of MODEL[@version|@alias] (default @champion)."""
    from specops.registry import describe

    info = describe(api.validate(root, env), ref)
    if fmt == "json":
        click.echo(json.dumps(info, indent=2, sort_keys=True, default=str))
        return
    console.print(f"[bold]{info['model']} version {info['version']}[/bold] aliases: {', '.join(info['aliases']) or '-'}", markup=True)
    console.print(json.dumps(info["lineage"], indent=2, sort_keys=True, default=str))
    console.print(info["model_card"])


@main.command()
@ENV
@ROOT
@click.option("--format", "fmt", type=click.Choice(["text", "markdown"]), default="text", show_default=True)
@friendly
def scoreboard(env: str | None, root: Path, fmt: str) -> None:
    """Every registered model version: accuracy, fairness, drift, latency, role."""
    from specops.governance import scoreboard as board

    rows = board.scoreboard(api.validate(root, env))
    click.echo((board.to_markdown if fmt == "markdown" else board.to_text)(rows) if rows else "No model registered yet.")


@main.command()
@ENV
@ROOT
@friendly
def kpi(env: str | None, root: Path) -> None:
    """Delivery KPIs from the audit log and the registry."""
    from specops.governance.kpi import compute

    kpis = compute(api.validate(root, env))
    width = max(len(k.name) for k in kpis)
    for k in kpis:
        console.print(f"{k.name:<{width}}  {k.show():>12}  target {k.target:<14} {k.detail}")


@main.command()
@ENV
@ROOT
@friendly
def maturity(env: str | None, root: Path) -> None:
    """Score the repository against the six-level MLOps maturity model."""
    from specops.governance.maturity import assess, report

    click.echo(report(assess(api.validate(root, env))))


@main.command()
@ENV
@ROOT
@click.option("--once", is_flag=True, help="one detection and run pass, then exit")
@click.option("--interval", default=60.0, show_default=True, help="seconds between passes")
@friendly
def controller(env: str | None, root: Path, once: bool, interval: float) -> None:
    """Run schedules and retraining triggers (drift, performance, stale, data change, cron)."""
    from specops.controller.loop import Controller

    ctl = Controller(root, env, report=lambda line: err.print(f"[dim]controller[/dim] {line}", markup=True))
    if once:
        for event, status in ctl.tick():
            console.print(f"{event.id}: {status}")
        return
    ctl.run_forever(interval)


@main.command()
@click.argument("pipeline")
@click.option("--reason", type=click.Choice(["drift", "performance", "stale", "manual"]), default="manual", show_default=True)
@ENV
@ROOT
@friendly
def retrain(pipeline: str, reason: str, env: str | None, root: Path) -> None:
    """Queue a retraining of PIPELINE with a recorded reason, and run it now."""
    from specops.core.clock import now
    from specops.controller.events import Event
    from specops.controller.loop import Controller

    ctl = Controller(root, env, report=lambda line: err.print(f"[dim]controller[/dim] {line}", markup=True))
    ctl.enqueue(Event(f"{reason}:{pipeline}:{now()}", pipeline, reason, "requested on the command line"))
    for event, status in ctl.run_pending(api.validate(root, env)):
        console.print(f"{event.id}: {status}")


@main.group()
def endpoint() -> None:
    """Local online endpoints: serve them, manage their keys."""


@endpoint.command("serve")
@click.argument("name")
@ROOT
@click.option("--port", type=int, default=None, help="default: the spec's server.port")
@click.option("--workers", type=int, default=None, help="default: the spec's server.workers (0 = one per core)")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--controller/--no-controller", default=True, show_default=True,
              help="also run the controller (monitors, retraining triggers) beside the server")
@click.option("--interval", default=60.0, show_default=True, help="seconds between controller passes")
@friendly
def endpoint_serve(name: str, root: Path, port: int | None, workers: int | None, host: str, controller: bool,
                   interval: float) -> None:
    """Serve endpoint NAME until interrupted (POST /score, Azure ML's protocol), with the controller beside it."""
    import threading

    from specops.serving.server import prepare, serve

    config = prepare(root, name, port, workers, host)
    stop = threading.Event()
    if controller:
        from specops.controller.loop import Controller

        ctl = Controller(root, report=lambda line: err.print(f"[dim]controller[/dim] {line}", markup=True))
        threading.Thread(target=ctl.run_forever, args=(interval, stop), daemon=True, name="controller").start()
    try:
        sys.exit(serve(config, host, announce=lambda m: err.print(m)))
    finally:
        stop.set()


@endpoint.command("stop")
@click.argument("name")
@ROOT
@friendly
def endpoint_stop(name: str, root: Path) -> None:
    """Stop the background server `specops apply` started for NAME (requests in flight finish)."""
    from specops.serving.daemon import stop

    stopped = stop(api.validate(root).root, name)
    console.print(f"endpoint {name}: {'stopped' if stopped else 'no server was running'}")


@endpoint.command("keys")
@click.argument("name")
@ROOT
@click.option("--regenerate", type=click.Choice(["primary", "secondary"]), default=None, help="replace this key")
@friendly
def endpoint_keys(name: str, root: Path, regenerate: str | None) -> None:
    """Show where NAME's keys are kept, or rotate one. Keys are never printed into logs or plans."""
    from specops.serving.config import endpoint_dir
    from specops.serving.keys import ensure_keys, keys_file, regenerate_key

    state_dir = endpoint_dir(api.validate(root).root, name)
    keys = regenerate_key(state_dir, regenerate) if regenerate else ensure_keys(state_dir)
    console.print(f"{len(keys)} keys in {keys_file(state_dir)} (mode 0600)" + (f"; {regenerate} key replaced" if regenerate else ""))


@main.group("env")
def env_group() -> None:
    """The Python environment."""


@env_group.command("check")
@ROOT
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


@main.command(hidden=True)
@click.argument("stage")
@click.option("--pipeline", required=True)
@click.option("--set", "overrides", multiple=True, metavar="PARAM=VALUE", help="fix a parameter for this run (one sweep trial)")
@ENV
@ROOT
@friendly
def stage(stage: str, pipeline: str, overrides: tuple[str, ...], env: str | None, root: Path) -> None:
    """Run one lifecycle stage (dvc.yaml and Azure ML components call this)."""
    import os

    import yaml

    from specops.lifecycle.stages import run_stage
    from specops.spec import Pipeline

    specs = api.validate(root, env or os.environ.get("SPECOPS_ENV"))
    doc = specs.get(Pipeline, pipeline)
    if doc is None:
        raise SpecopsError(f"no Pipeline named {pipeline!r}")
    fixed = {}
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SpecopsError(f"--set expects PARAM=VALUE, got {item!r}")
        fixed[name] = yaml.safe_load(value)  # 5 -> int, 0.1 -> float, gini -> str
    run_stage(stage, specs, doc, fixed)


main.add_command(monitor_group)
main.add_command(rollout)
main.add_command(batch)
from specops.init.commands import init_command; main.add_command(init_command)  # noqa: E402,E702
from specops.slo.commands import slo_group; main.add_command(slo_group)  # noqa: E402,E702
