"""The local endpoint server: a parent process and N workers sharing one port.

The parent resolves the endpoint (aliases -> versions, model files copied),
makes sure keys exist, then starts the workers with `spawn` and supervises
them. Each worker loads every deployment once and serves on the same port
through SO_REUSEPORT, so the kernel spreads connections over the cores without
a proxy in the way. If a worker dies the whole server stops with its exit code
(a half-served endpoint would skew traffic and metrics silently).
"""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
import signal
import sys
from pathlib import Path

from specops.errors import SpecopsError
from specops.serving.config import ServingConfig, endpoint_dir, resolve_endpoint
from specops.serving.keys import ensure_keys
from specops.serving.metrics import shared_array
from specops.serving.traffic import set_traffic
from specops.spec import load_specs

STARTUP_TIMEOUT_S = 120
CONFIG_FILE = "config.json"


def prepare(root: Path | str, endpoint: str, port: int | None = None, workers: int | None = None) -> Path:
    """Resolve the endpoint and write what the workers read; returns the config file."""
    specs = load_specs(root)
    config = resolve_endpoint(specs, endpoint)
    config.port = port if port is not None else config.port
    config.workers = workers if workers is not None else (config.workers or os.cpu_count() or 1)
    ensure_keys(Path(config.state_dir))
    # The spec's weights are where a (re)started server begins; a rollout moves them with set_traffic.
    set_traffic(config.state_dir, [d.name for d in config.deployments], config.traffic, config.mirror_traffic)
    path = endpoint_dir(specs.root, endpoint) / CONFIG_FILE
    config.save(path)
    return path


def serve(config_path: Path, host: str = "127.0.0.1", announce=print) -> int:
    """Run the workers until a signal or a worker's death; returns the exit code."""
    config = ServingConfig.load(config_path)
    context = multiprocessing.get_context("spawn")
    array = shared_array(config.workers, len(config.deployments))
    started = context.Queue()
    workers = [context.Process(target=worker_main, args=(str(config_path), i, host, array, started), daemon=True)
               for i in range(config.workers)]
    for process in workers:
        process.start()
    try:
        _await_startup(started, workers)
    except SpecopsError:
        _stop(workers)
        raise
    for d in config.deployments:
        announce(f"  {d.name}: {d.model} -> {'version ' + d.version if d.version else 'NOT READY: ' + str(d.error)}")
    announce(f"endpoint {config.endpoint} listening on http://{host}:{config.port} ({config.workers} workers)")
    return _supervise(workers)


def _await_startup(started, workers) -> None:
    for _ in workers:
        try:
            outcome = started.get(timeout=STARTUP_TIMEOUT_S)
        except queue.Empty:
            raise SpecopsError(f"the endpoint's workers did not start within {STARTUP_TIMEOUT_S}s") from None
        if outcome is not None:
            raise SpecopsError(outcome)


def _supervise(workers) -> int:
    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    from multiprocessing.connection import wait

    while stop["signal"] is None:
        dead = [p for p in workers if p.sentinel in wait([p.sentinel for p in workers], timeout=0.5)]
        if dead:
            print(f"worker {dead[0].pid} exited with code {dead[0].exitcode}; stopping the endpoint", file=sys.stderr)
            _stop(workers)
            return 1
    _stop(workers)
    return 0


def _stop(workers) -> None:
    for process in workers:
        if process.is_alive():
            process.terminate()
    for process in workers:
        process.join(timeout=10)


def worker_main(config_path: str, worker: int, host: str, array, started) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    try:
        asyncio.run(_worker(ServingConfig.load(Path(config_path)), worker, host, array, started))
    except OSError as exc:  # e.g. the port is taken by another program
        started.put(f"worker {worker} cannot listen on {host}: {exc}")
        raise SystemExit(1) from None


async def _worker(config: ServingConfig, worker: int, host: str, array, started) -> None:
    from aiohttp import web

    from specops.serving.app import build_app, make_endpoint

    endpoint = make_endpoint(config, worker, array)
    endpoint.start()
    runner = web.AppRunner(build_app(endpoint), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, config.port, reuse_port=True, backlog=1024).start()
    started.put(None)
    await asyncio.Event().wait()  # serve until the parent terminates this process
