"""`specops endpoint serve`: an endpoint's server in the foreground, the controller beside it in a thread."""
from __future__ import annotations

import threading
from collections.abc import Callable

from specops.controller.loop import Controller
from specops.plan.backend import Reporter, quiet
from specops.project import Project
from specops.serving.server import prepare, serve


def serve_endpoint(project: Project, endpoint: str, *, port: int | None = None, workers: int | None = None,
                   host: str = "127.0.0.1", controller_interval: float | None = 60.0, report: Reporter = quiet,
                   announce: Callable[[str], None] = print) -> int:
    """Serve until interrupted; returns the server's exit code. `controller_interval` None: no controller."""
    config = prepare(project.specs, endpoint, port, workers, host)
    stop = threading.Event()
    if controller_interval is not None:
        ctl = Controller(project, report=report)
        threading.Thread(target=ctl.run_forever, args=(controller_interval, stop), daemon=True, name="controller").start()
    try:
        return serve(config, host, announce=announce)
    finally:
        stop.set()
