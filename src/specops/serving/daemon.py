"""Endpoint servers that outlive the command that started them: what `specops apply` deploys.

`start` runs `python -m specops.serving` for one environment, in a session of
its own, logging to server.log, and returns once every worker listens (the
server writes server.pid then). `reload` makes a running server serve the spec
as it is now without a restart: the new config is written, each worker loads
what changed beside the models it serves and reports the revision it serves,
so no request is ever refused. `stop` ends a server; workers drain requests in
flight.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from specops.core.paths import ProjectPaths
from specops.core.processes import command_line, is_running
from specops.errors import SpecopsError
from specops.serving.config import worker_status_file
from specops.serving.server import DRAIN_SECONDS, PID_FILE, STARTUP_TIMEOUT_S
from specops.spec import SpecSet

LOG_FILE = "server.log"
POLL_S = 0.1


def server_info(paths: ProjectPaths, endpoint: str) -> dict[str, Any] | None:
    """The running server's pid file, or None when no live process owns it.

    The file records the server's pid with its start time and command line: after a kill -9 it stays
    behind, and its pid may since name another program, which must never get the server's signals.
    """
    try:
        info = json.loads((paths.endpoint(endpoint) / PID_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("pid"), int):
        return None
    _reap(info["pid"])
    if "starttime" not in info:  # written before pid files recorded who they name: trust a live server's command line only
        command = command_line(info["pid"]) or []
        return info if _alive(info["pid"]) and "specops.serving" in command else None
    return info if is_running(info) else None


def start(specs: SpecSet, endpoint: str) -> dict[str, Any]:
    """Start the endpoint's server in the background (the spec's port and workers); returns its pid file."""
    paths = specs.paths
    state_dir = paths.endpoint(endpoint)
    state_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "specops.serving", str(specs.root), endpoint, "--env", specs.env]
    with (state_dir / LOG_FILE).open("a") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return _await_listening(paths, endpoint, process)


def reload(specs: SpecSet, endpoint: str) -> dict[str, Any]:
    """Have the running server serve the spec as it is now; returns once every worker serves it."""
    from specops.serving.server import stage_reload  # resolving the spec imports MLflow: only when reloading

    paths = specs.paths
    info = server_info(paths, endpoint)
    if info is None:
        raise SpecopsError(f"endpoint {endpoint!r} has no running server to reload")
    config = stage_reload(specs, endpoint)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        revisions = [_served_revision(config.state_dir, worker) for worker in range(config.workers)]
        if all(r >= config.revision for r in revisions):
            return info
        if server_info(paths, endpoint) is None:
            raise SpecopsError(f"the server of endpoint {endpoint!r} stopped during the reload:\n{_log_tail(paths, endpoint)}")
        time.sleep(POLL_S)
    raise SpecopsError(f"the server of endpoint {endpoint!r} did not load revision {config.revision} within "
                       f"{STARTUP_TIMEOUT_S}s; see {paths.endpoint(endpoint) / LOG_FILE}")


def _served_revision(state_dir: str, worker: int) -> int:
    try:
        return json.loads(worker_status_file(state_dir, worker).read_text())["revision"]
    except (OSError, ValueError, KeyError):
        return -1


def stop(paths: ProjectPaths, endpoint: str) -> bool:
    """Stop the endpoint's server (it drains requests in flight); False when none was running."""
    info = server_info(paths, endpoint)
    if info is None:
        return False
    _terminate(info["pid"])
    return True


def _await_listening(paths: ProjectPaths, endpoint: str, process: subprocess.Popen) -> dict[str, Any]:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        info = server_info(paths, endpoint)
        if info and info["pid"] == process.pid:
            return info
        if process.poll() is not None:
            raise SpecopsError(f"the server of endpoint {endpoint!r} exited with code {process.returncode} while starting:\n"
                               f"{_log_tail(paths, endpoint)}")
        time.sleep(POLL_S)
    process.kill()
    raise SpecopsError(f"the server of endpoint {endpoint!r} did not listen within {STARTUP_TIMEOUT_S}s; "
                       f"see {paths.endpoint(endpoint) / LOG_FILE}")


def _terminate(pid: int) -> None:
    """SIGTERM (workers drain), then wait; SIGKILL only if it outlives the drain."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + DRAIN_SECONDS + 10
    while _alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(POLL_S)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def _reap(pid: int) -> None:
    """A server this process started is its child: collect it, or it lingers as a zombie that looks alive."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _log_tail(paths: ProjectPaths, endpoint: str, lines: int = 15) -> str:
    try:
        return "\n".join((paths.endpoint(endpoint) / LOG_FILE).read_text().splitlines()[-lines:])
    except OSError:
        return "(no server log)"
