"""Rollback time under load: specops' automatic rollback vs restarting the server with the stable spec.

A bad model (trained on inverted labels: every answer 200, every answer wrong) goes out as a canary
at 50% while locust, in its own process, sends single-row requests and their labels as feedback.
The canary's analysis fails on the accuracy regression and specops moves all traffic back to stable
(`set_traffic`; the workers follow within 0.1 s). Measured from the failed analysis to the last
answer the client got that was not a 200 from the stable deployment (the response header names who
answered), with every failed request counted.

The baseline does what a redeploy does (`az ml online-deployment update` with the previous spec, or
`mlflow models serve` restarted): the same 50% canary, then the spec is set back to stable and the
server restarted on the same port. Measured from the decision to the last answer that was not a 200
from stable (during the restart, every request fails; clients wait 50 ms after a refused connection).

Reuses the rollout tests' tiny project (tests/rollout/conftest.py). Run:
    .venv/bin/python bench/bench_rollback.py [--trials 5] [--workers 2] [--users 4]
"""
from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from specops.rollout import Rollout  # noqa: E402
from specops.rollout.loadtest import KEY_VARIABLE, locust_command  # noqa: E402
from specops.rollout.state import DEGRADED, record_path  # noqa: E402
from specops.serving.keys import ensure_keys  # noqa: E402
from specops.serving.traffic import set_traffic  # noqa: E402
from tests.rollout.conftest import DEPLOYMENTS, register_challengers, write_endpoint  # noqa: E402
from tests.serving.conftest import free_port, make_project  # noqa: E402

CANARY = """
    strategy: canary
    min_samples: 30
    steps:
      - weight: 50
      - pause: {duration: 2s}
      - analysis: canary-gate"""
STABLE, BAD = "blue", "bad"
WARMUP_S = 1.5  # locust starts and the stable deployment answers before anything changes
TAIL_S = 1.5  # the load goes on after recovery, so a late bad answer would still be seen
CANARY_S = 2.0  # the baseline's canary runs this long before the decision to roll back


class Server:
    """The endpoint server as its own process on a fixed port, so a restarted one is found at the same address."""

    def __init__(self, root: Path, port: int, workers: int):
        self.root, self.port, self.workers = root, port, workers
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = self.root.parent / "server.log"
        with log.open("a") as output:
            self.process = subprocess.Popen([sys.executable, "-m", "specops.serving", str(self.root), "live", "--port", str(self.port),
                                             "--workers", str(self.workers)], stdout=output, stderr=subprocess.STDOUT,
                                            start_new_session=True)  # its own process group: stop() waits for the workers too
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the endpoint server exited {self.process.returncode}:\n" + "\n".join(log.read_text().splitlines()[-5:]))
            try:
                urllib.request.urlopen(self.url + "/readiness", timeout=1).close()  # our own server
                return
            except OSError:
                time.sleep(0.02)
        raise SystemExit("the endpoint server did not become ready within 120 s")

    def stop(self) -> None:
        """SIGTERM to the server's process group, then wait until no worker is left to answer on the port
        (with SO_REUSEPORT a lingering worker would answer the restarted server's readiness probe)."""
        group = self.process.pid
        os.killpg(group, signal.SIGTERM)
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)
        os.killpg(group, signal.SIGKILL)


class Load:
    """locust in its own process, logging every answer (time, deployment, status) until stopped."""

    def __init__(self, server: Server, root: Path, users: int, log: Path):
        self.log = log
        command = locust_command(server.url, root / "data" / "loans.csv", users, None, 3600, log.with_suffix(""),
                                 column_types={"region": "str"}, label_column="y", answers_log=log)
        env = {**os.environ, KEY_VARIABLE: ensure_keys(root / ".specops" / "endpoints" / "live")["primary"]}
        self.process = subprocess.Popen(command, cwd=log.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __enter__(self) -> Load:
        deadline = time.monotonic() + 30
        while not (self.log.exists() and self.log.stat().st_size > 0):
            if time.monotonic() > deadline:
                raise SystemExit("locust sent no request within 30 s")
            time.sleep(0.05)
        time.sleep(WARMUP_S)
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(TAIL_S)
        self.process.send_signal(signal.SIGTERM)  # locust stops its users and exits
        self.process.wait(timeout=30)

    def answers(self) -> list[tuple[float, str, int]]:
        rows = [line.split(",") for line in self.log.read_text().splitlines() if line.count(",") == 2]
        return [(float(t), deployment, int(status)) for t, deployment, status in rows]


def measure(answers: list[tuple[float, str, int]], decided_at: float) -> tuple[float, int, int]:
    """(seconds from the decision to the last answer not a 200 from stable, failed requests, requests)."""
    off = [t for t, deployment, status in answers if t >= decided_at and (deployment != STABLE or status != 200)]
    failed = sum(status != 200 for _, _, status in answers)
    return (max(off) - decided_at if off else 0.0), failed, len(answers)


def reset(root: Path) -> None:
    write_endpoint(root, "{bad: 100}", CANARY)  # the PR asking for the bad model
    set_traffic(root / ".specops" / "endpoints" / "live", DEPLOYMENTS, {STABLE: 100})
    record_path(root, "live").unlink(missing_ok=True)


def specops_trial(server: Server, root: Path, users: int, log: Path) -> tuple[float, int, int]:
    reset(root)
    with Load(server, root, users, log) as load:
        Rollout(root, "live").start(BAD, STABLE)
        record = Rollout(root, "live").run()
    if record.status != DEGRADED:
        raise SystemExit(f"the bad canary was not rolled back: {record.status} ({record.message})")
    return measure(load.answers(), record.analyses[-1]["time"])  # the failed analysis, just before abort is recorded


def restart_trial(server: Server, root: Path, users: int, log: Path) -> tuple[float, int, int]:
    reset(root)
    with Load(server, root, users, log) as load:
        set_traffic(root / ".specops" / "endpoints" / "live", DEPLOYMENTS, {STABLE: 50, BAD: 50})
        time.sleep(CANARY_S)
        decided_at = time.time()
        write_endpoint(root, "{blue: 100}", CANARY)  # the stable spec, redeployed
        server.stop()
        stopped_at = time.time()
        server.start()
        print(f"  restart: stop {stopped_at - decided_at:.1f} s, start until ready {time.time() - stopped_at:.1f} s")
    return measure(load.answers(), decided_at)


def summary(name: str, runs: list[tuple[float, int, int]]) -> tuple[float, float]:
    seconds = [r[0] for r in runs]
    print(f"{name}: rollback median {statistics.median(seconds) * 1000:.0f} ms, max {max(seconds) * 1000:.0f} ms; "
          f"failed requests {[r[1] for r in runs]} of {[r[2] for r in runs]}")
    return statistics.median(seconds), max(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--restart-trials", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--users", type=int, default=4)
    args = parser.parse_args()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores ({platform.machine()}), Python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}; server workers {args.workers}, locust users {args.users}")
    with tempfile.TemporaryDirectory(prefix="bench-rollback-") as tmp:
        root = make_project(Path(tmp) / "proj")
        write_endpoint(root, "{blue: 100}", CANARY)
        register_challengers(root)
        server = Server(root, free_port(), args.workers)
        began = time.time()
        server.start()
        print(f"  first start, no load: ready after {time.time() - began:.1f} s")
        try:
            ours = [specops_trial(server, root, args.users, Path(tmp) / f"specops-{i}.csv") for i in range(args.trials)]
            theirs = [restart_trial(server, root, args.users, Path(tmp) / f"restart-{i}.csv") for i in range(args.restart_trials)]
        finally:
            server.stop()
    median, _ = summary("specops set_traffic rollback", ours)
    baseline, _ = summary("restart with the stable spec", theirs)
    print(f"ratio (restart / specops, medians): {baseline / median:.0f}x" if median > 0 else "specops: no bad answer after the decision")


if __name__ == "__main__":
    main()
