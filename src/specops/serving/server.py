"""The local endpoint server: a parent process and N workers sharing one port.

The parent resolves the endpoint (aliases -> versions, model files copied),
makes sure keys exist, then starts the workers with `spawn` and supervises
them. Each worker loads every deployment once and serves on the same port
through SO_REUSEPORT, so the kernel spreads connections over the cores without
a proxy in the way. If a worker dies the whole server stops, exit code 1
(a half-served endpoint would skew traffic and metrics silently).
"""
from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import queue
import signal
import socket
import sys
import time
from multiprocessing.connection import wait
from pathlib import Path

from specops.core.clock import now
from specops.core.files import atomic_write
from specops.core.processes import die_with_parent, identity
from specops.errors import SpecopsError
from specops.serving.config import ServingConfig, find_endpoint, first_line, resolve_endpoint
from specops.serving.keys import ensure_keys
from specops.serving.metrics import MAX_DEPLOYMENTS, shared_array
from specops.serving.traffic import read_traffic, set_traffic
from specops.spec import SpecSet
from specops.state.records import ACTIVE
from specops.state.storage import open_storage
from specops.state.store import StateStore

STARTUP_TIMEOUT_S = 120
DRAIN_SECONDS = 5.0  # how long a stopping worker waits for requests in flight
CONFIG_FILE = "config.json"
PID_FILE = "server.pid"  # written once every worker listens: {"pid", "starttime", "cmdline", "port", "started"}


def prepare(specs: SpecSet, endpoint: str, port: int | None = None, workers: int | None = None,
            host: str = "127.0.0.1") -> Path:
    """Resolve the endpoint in `specs` (one environment's) and write what the workers read; returns the config file.

    The port is checked first, so a second server started by mistake fails
    before it touches the running one's files.
    """
    port = port if port is not None else find_endpoint(specs, endpoint).spec.server.port
    _check_port_free(host, port)
    config = resolve_endpoint(specs, endpoint)
    config.port = port
    config.workers = workers if workers is not None else (config.workers or os.cpu_count() or 1)
    config.slots = [d.name for d in config.deployments]
    _check_slots(config.slots)
    ensure_keys(Path(config.state_dir))
    # The spec's weights are where a new server begins, unless a rollout owns the traffic (a rollout moves it with
    # set_traffic): then the weights it recorded, which `rollout status` shows, so a restart mid-rollout moves nothing.
    config.traffic, config.mirror_traffic = _starting_weights(specs, endpoint, config)
    set_traffic(config.state_dir, config.slots, config.traffic, config.mirror_traffic)
    path = specs.paths.endpoint(endpoint) / CONFIG_FILE
    config.save(path)
    return path


def _starting_weights(specs: SpecSet, endpoint: str, config: ServingConfig) -> tuple[dict[str, int], dict[str, int]]:
    record = StateStore(open_storage(specs), specs.env).rollout(endpoint)
    if record is not None and record.status in ACTIVE and set(record.weights) | set(record.mirror) <= set(config.slots):
        return dict(record.weights), dict(record.mirror)
    return config.traffic, config.mirror_traffic


def stage_reload(specs: SpecSet, endpoint: str) -> ServingConfig:
    """Write the config a running server reloads (its workers watch the file): the spec's deployments
    resolved anew, at the next revision. Port, workers and the live traffic weights stay as they are:
    the weights may belong to a rollout, so a new model gets traffic only when something moves it there."""
    path = specs.paths.endpoint(endpoint) / CONFIG_FILE
    running = ServingConfig.load(path)
    config = resolve_endpoint(specs, endpoint)
    names = [d.name for d in config.deployments]
    traffic, mirror = read_traffic(running.state_dir)
    stranded = sorted(n for n, share in {**traffic, **mirror}.items() if share and n not in names)
    if stranded:
        raise SpecopsError(f"deployment {', '.join(stranded)} of endpoint {endpoint} still gets live traffic; move its traffic "
                           f"to another deployment first (keep it in the spec at 0%), then remove it")
    if config.port != running.port:
        raise SpecopsError(f"endpoint {endpoint} listens on port {running.port}, the spec now says {config.port}: "
                           f"`specops endpoint stop {endpoint}`, then apply again to restart it there")
    config.port, config.workers, config.revision = running.port, running.workers, running.revision + 1
    config.slots = running.slots + [n for n in names if n not in running.slots]
    _check_slots(config.slots)
    config.save(path)
    return config


def _check_slots(slots: list[str]) -> None:
    if len(slots) > MAX_DEPLOYMENTS:
        raise SpecopsError(f"an endpoint server tracks at most {MAX_DEPLOYMENTS} deployments over its life; this one would have "
                           f"{len(slots)}: restart it (`specops endpoint stop`, then apply)")


def serve(config_path: Path, host: str = "127.0.0.1", announce=print) -> int:
    """Run the workers until a signal or a worker's death; returns the exit code."""
    config = ServingConfig.load(config_path)
    _check_port_free(host, config.port)  # again: resolving the models took time, and serve() may be called alone
    stop = _catch_stop_signals()  # from now: a SIGTERM while the workers start stops them cleanly once they have
    context = multiprocessing.get_context("spawn")
    array = shared_array(config.workers)
    started = context.Queue()
    workers = [context.Process(target=worker_main, args=(str(config_path), i, host, array, started, os.getpid()), daemon=True)
               for i in range(config.workers)]
    for process in workers:
        process.start()
    try:
        _await_startup(started, workers)
        _check_listeners(host, config.port, len(workers))
    except SpecopsError:
        _stop(workers)
        raise
    for d in config.deployments:
        announce(f"  {d.name}: {d.model} -> {'version ' + d.version if d.version else 'NOT READY: ' + str(d.error)}")
    announce(f"endpoint {config.endpoint} listening on http://{host}:{config.port} ({config.workers} workers)")
    pid_file = Path(config.state_dir) / PID_FILE
    atomic_write(pid_file, json.dumps({**identity(), "port": config.port, "started": now()}))
    try:
        return _supervise(workers, stop)
    finally:
        _forget_pid(pid_file)


def _forget_pid(pid_file: Path) -> None:
    """Remove the pid file if it still names this process (a replacement may have written its own)."""
    try:
        if json.loads(pid_file.read_text())["pid"] == os.getpid():
            pid_file.unlink()
    except (OSError, ValueError, KeyError):
        pass


def _check_port_free(host: str, port: int) -> None:
    """Workers share the port through SO_REUSEPORT, which would also let them share it, silently,
    with another server that set it. A plain bind fails if anything at all listens there."""
    with socket.socket() as probe:
        # Connections the last server closed linger in TIME_WAIT on the port; they are no listener.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SpecopsError(f"cannot listen on {host}:{port}: {exc.strerror} (another endpoint server there?)") from None


def _check_listeners(host: str, port: int, workers: int) -> None:
    """Something that bound the port with SO_REUSEPORT between the check and the workers' binds (an orphaned
    worker of an earlier server, say) would now share the port, and answer a share of the requests."""
    found = listeners(port)
    if found is not None and found > workers:
        raise SpecopsError(f"cannot listen on {host}:{port}: {found - workers} other socket(s) listen there too "
                           f"(another endpoint server, or a worker it left behind?)")


def listeners(port: int) -> int | None:
    """Listening TCP sockets on `port`, any address (Linux /proc/net); None where that cannot be read."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines)
                count += sum(1 for line in lines if _listens_on(line.split(), port))
        except OSError:
            return None
    return count


def _listens_on(fields: list[str], port: int) -> bool:
    return len(fields) > 3 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port


def _await_startup(started, workers) -> None:
    """Wait for every worker to listen; fail fast on the first that reports a problem or dies."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    listening = 0
    while listening < len(workers):
        try:
            outcome = started.get(timeout=0.5)
        except queue.Empty:
            dead = [p for p in workers if not p.is_alive()]
            if dead:
                raise SpecopsError(f"worker {dead[0].pid} {ended(dead[0])} while starting") from None
            if time.monotonic() > deadline:
                raise SpecopsError(f"the endpoint's workers did not start within {STARTUP_TIMEOUT_S}s") from None
            continue
        if outcome is not None:
            raise SpecopsError(outcome)
        listening += 1


def _catch_stop_signals() -> dict[str, int | None]:
    """SIGINT and SIGTERM recorded rather than fatal: the supervisor stops the workers and exits 0."""
    stop: dict[str, int | None] = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    return stop


def _supervise(workers, stop: dict[str, int | None]) -> int:
    while stop["signal"] is None:
        dead = [p for p in workers if p.sentinel in wait([p.sentinel for p in workers], timeout=0.5)]
        if dead:
            print(f"worker {dead[0].pid} {ended(dead[0])}; stopping the endpoint", file=sys.stderr)
            _stop(workers)
            return 1
    _stop(workers)
    return 0


def ended(process: multiprocessing.process.BaseProcess) -> str:
    """How a dead worker ended. Its sentinel closes a moment before the kernel can report the exit: wait for that."""
    process.join(timeout=5)
    code = process.exitcode
    if code is not None and code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _stop(workers) -> None:
    for process in workers:
        if process.is_alive():
            process.terminate()
    for process in workers:
        process.join(timeout=DRAIN_SECONDS + 5)
        if process.is_alive():
            process.kill()


def worker_main(config_path: str, worker: int, host: str, array, started, parent: int) -> None:
    # First of all, before the heavy imports and the model loads: a parent killed outright (SIGKILL) cannot stop its
    # workers, so the kernel does (SIGTERM: they drain). A parent already gone is noticed here, not never.
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    try:
        asyncio.run(_worker(Path(config_path), worker, host, array, started, parent))
    except OSError as exc:  # e.g. the port is taken by another program
        started.put(f"worker {worker} cannot listen on {host}: {exc}")
        raise SystemExit(1) from None
    except Exception as exc:  # reported to the parent, which prints it without a traceback
        started.put(f"worker {worker} failed to start: {first_line(exc)}")
        raise SystemExit(1) from None


async def _worker(config_path: Path, worker: int, host: str, array, started, parent: int) -> None:
    from aiohttp import web

    from specops.serving.app import build_app, make_endpoint

    config = ServingConfig.load(config_path)
    endpoint = make_endpoint(config, worker, array)
    endpoint.start(config_path)
    endpoint.report_status()
    runner = web.AppRunner(build_app(endpoint), access_log=None)
    await runner.setup()
    # SIGTERM from the parent: stop accepting, let requests in flight finish, then exit.
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    orphan_watch = asyncio.get_running_loop().create_task(_stop_when_orphaned(stop, parent))
    await web.TCPSite(runner, host, config.port, reuse_port=True, backlog=1024, shutdown_timeout=DRAIN_SECONDS).start()
    started.put(None)
    await stop.wait()
    orphan_watch.cancel()
    await runner.cleanup()


async def _stop_when_orphaned(stop: asyncio.Event, parent: int) -> None:
    """Where PR_SET_PDEATHSIG does not exist: notice the parent's death (its pid is no longer ours) and stop."""
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    stop.set()
