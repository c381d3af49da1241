"""Endpoint servers that outlive the command that started them: what `specops apply` deploys.

`start` runs `python -m specops.serving` in a session of its own, logging to
server.log, and returns once every worker listens (the server writes
server.pid then). With `replace`, the new server shares the port with the
running one (SO_REUSEPORT) and the old one is stopped only after the new one
listens, so loading a new model version never refuses a request: the old
server drains what it accepted. `stop` ends a server the same way.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from specops.errors import SpecopsError
from specops.serving.config import endpoint_dir
from specops.serving.server import DRAIN_SECONDS, PID_FILE, STARTUP_TIMEOUT_S

LOG_FILE = "server.log"
POLL_S = 0.1


def server_info(root: Path, endpoint: str) -> dict[str, Any] | None:
    """The running server's pid file, or None when no live process owns it."""
    try:
        info = json.loads((endpoint_dir(root, endpoint) / PID_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if _alive(info.get("pid")) else None


def start(root: Path, endpoint: str, replace: bool = False, workers: int | None = None) -> dict[str, Any]:
    """Start the endpoint's server in the background; with `replace`, then stop the one it replaces."""
    root = Path(root)
    old = server_info(root, endpoint)
    state_dir = endpoint_dir(root, endpoint)
    state_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "specops.serving", str(root), endpoint]
    if workers is not None:
        command += ["--workers", str(workers)]
    if replace and old:
        command += ["--port", str(old["port"]), "--replace"]
    with (state_dir / LOG_FILE).open("a") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    info = _await_listening(root, endpoint, process)
    if replace and old:
        _terminate(old["pid"])
    return info


def stop(root: Path, endpoint: str) -> bool:
    """Stop the endpoint's server (it drains requests in flight); False when none was running."""
    info = server_info(root, endpoint)
    if info is None:
        return False
    _terminate(info["pid"])
    return True


def _await_listening(root: Path, endpoint: str, process: subprocess.Popen) -> dict[str, Any]:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        info = server_info(root, endpoint)
        if info and info["pid"] == process.pid:
            return info
        if process.poll() is not None:
            raise SpecopsError(f"the server of endpoint {endpoint!r} exited with code {process.returncode} while starting:\n"
                               f"{_log_tail(root, endpoint)}")
        time.sleep(POLL_S)
    process.kill()
    raise SpecopsError(f"the server of endpoint {endpoint!r} did not listen within {STARTUP_TIMEOUT_S}s; "
                       f"see {endpoint_dir(root, endpoint) / LOG_FILE}")


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


def _log_tail(root: Path, endpoint: str, lines: int = 15) -> str:
    try:
        return "\n".join((endpoint_dir(root, endpoint) / LOG_FILE).read_text().splitlines()[-lines:])
    except OSError:
        return "(no server log)"
