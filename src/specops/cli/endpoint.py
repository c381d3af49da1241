"""`specops endpoint serve|stop|keys`: local online endpoints."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from specops.cli.options import console, err, friendly, reporter, with_project
from specops.project import Project

if TYPE_CHECKING:
    from specops.serving.keys import KeyType


@click.group()
def endpoint() -> None:
    """Local online endpoints: serve them, stop them, manage their keys."""


@endpoint.command("serve")
@click.argument("name")
@with_project
@click.option("--port", type=int, default=None, help="default: the spec's server.port")
@click.option("--workers", type=int, default=None, help="default: the spec's server.workers (0 = one per core)")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--controller/--no-controller", default=True, show_default=True,
              help="also run the controller (monitors, SLO scrapes, retraining triggers) beside the server")
@click.option("--interval", default=60.0, show_default=True, help="seconds between controller passes")
@friendly
def serve(name: str, project: Project, port: int | None, workers: int | None, host: str, controller: bool,
          interval: float) -> None:
    """Serve endpoint NAME until interrupted (POST /score, Azure ML's protocol), with the controller beside it."""
    from specops.controller.serve import serve_endpoint

    sys.exit(serve_endpoint(project, name, port=port, workers=workers, host=host,
                            controller_interval=interval if controller else None,
                            report=reporter("controller"), announce=lambda line: err.print(line)))


@endpoint.command("stop")
@click.argument("name")
@with_project
@friendly
def stop(name: str, project: Project) -> None:
    """Stop the background server `specops apply` started for NAME (requests in flight finish)."""
    from specops.serving.daemon import stop as stop_server

    project.validate()  # the environment named must exist, whatever server is found
    stopped = stop_server(project.paths, name)
    console.print(f"endpoint {name}: {'stopped' if stopped else 'no server was running'}")


@endpoint.command("keys")
@click.argument("name")
@with_project
@click.option("--regenerate", type=click.Choice(["primary", "secondary"]), default=None, help="replace this key")
@friendly
def keys(name: str, project: Project, regenerate: KeyType | None) -> None:  # click.Choice admits only a KeyType
    """Show where NAME's keys are kept, or rotate one. Keys are never printed into logs or plans."""
    from specops.serving.keys import ensure_keys, keys_file, regenerate_key
    from specops.spec.endpoints import Endpoint

    project.specs.require(Endpoint, name)
    state_dir = project.paths.endpoint(name)
    found = regenerate_key(state_dir, regenerate) if regenerate else ensure_keys(state_dir)
    console.print(f"{len(found)} keys in {keys_file(state_dir)} (mode 0600)" + (f"; {regenerate} key replaced" if regenerate else ""))


COMMANDS = (endpoint,)
