"""Load tests: locust, headless, in its own process, against a running endpoint.

Locust monkeypatches the standard library with gevent when imported, which
would break the threads and sockets of whatever imported it, so specops never
imports locust: `run_load_test` runs `python -m locust -f locustfile.py
--headless` as a subprocess and reads the stats it writes at exit (`--json-file`).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from specops.errors import SpecopsError

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
KEY_VARIABLE = "SPECOPS_ENDPOINT_KEY"  # as the locustfile reads it
SCORE = "/score"  # the locust entry measured; /feedback posts are not the endpoint's answers
STARTUP_S = 30.0  # locust's own start (imports, gevent) and shutdown on top of the run
STOP_TIMEOUT_S = 5  # requests in flight at the end of the run may finish within this


@dataclass(frozen=True)
class LoadTestResult:
    """One run's `/score` requests as the clients saw them; latencies in ms (None without requests)."""

    requests: int
    failures: int
    rps: float
    p50: float | None
    p95: float | None
    p99: float | None
    errors: dict[str, int] = field(default_factory=dict)  # failure message -> occurrences

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_load_test(url: str, key: str, rows_csv: Path | str, users: int, spawn_rate: float | None, duration_s: float,
                  deployment: str | None = None, column_types: dict[str, str] | None = None,
                  label_column: str | None = None, answers_log: Path | None = None) -> LoadTestResult:
    """Drive `url` with `users` closed-loop clients for `duration_s`, one random CSV row per request.

    `deployment` aims every request at one deployment (azureml-model-deployment header);
    `column_types` ({column: int|float|str|bool}) types the CSV's fields as the server checks them.
    """
    rows_csv = Path(rows_csv)
    if not rows_csv.is_file():
        raise SpecopsError(f"load test rows: no CSV file at {rows_csv}")
    with tempfile.TemporaryDirectory(prefix="specops-locust-") as tmp:
        stats = Path(tmp) / "stats"
        command = locust_command(url, rows_csv, users, spawn_rate, duration_s, stats, deployment, column_types or {},
                                 label_column, answers_log)
        # cwd: an empty folder, so locust reads no locust.conf or pyproject.toml of the caller's project
        env = {name: value for name, value in os.environ.items() if not name.startswith("LOCUST_")}
        try:
            done = subprocess.run(command, cwd=tmp, env={**env, KEY_VARIABLE: key}, capture_output=True, text=True,
                                  timeout=duration_s + STARTUP_S + STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise SpecopsError(f"the load test on {url} did not finish within {duration_s + STARTUP_S:.0f}s") from None
        return _result(stats, done)


def locust_command(url: str, rows: Path, users: int, spawn_rate: float | None, duration_s: float, stats: Path,
                   deployment: str | None = None, column_types: dict[str, str] | None = None,
                   label_column: str | None = None, answers_log: Path | None = None) -> list[str]:
    """The headless locust run; give it the key in the environment (KEY_VARIABLE). Stats go to `<stats>.json`."""
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", url,
               "-u", str(users), "-r", str(spawn_rate or users), "-t", f"{max(1, math.ceil(duration_s))}s",
               "--stop-timeout", str(STOP_TIMEOUT_S), "--json-file", str(stats), "--only-summary",
               "--loglevel", "WARNING", "--exit-code-on-error", "0",  # failures are results, not a crash
               "--rows", str(Path(rows).resolve()), "--column-types", json.dumps(column_types or {}),
               "--errors-file", f"{stats}-errors.json"]
    if deployment:
        command += ["--deployment", deployment]
    if label_column:
        command += ["--label-column", label_column]
    if answers_log is not None:
        command += ["--answers-log", str(Path(answers_log).resolve())]
    return command


def _result(stats: Path, done: subprocess.CompletedProcess) -> LoadTestResult:
    path = stats.with_name(stats.name + ".json")
    if done.returncode != 0 or not path.exists():
        tail = "\n".join((done.stderr or done.stdout or "").strip().splitlines()[-5:])
        raise SpecopsError(f"locust exited {done.returncode} without stats:\n{tail}")
    entry = next((e for e in json.loads(path.read_text()) if e["name"] == SCORE), None)
    errors_path = stats.with_name(stats.name + "-errors.json")
    errors = json.loads(errors_path.read_text()) if errors_path.exists() else {}
    if entry is None:
        return LoadTestResult(0, 0, 0.0, None, None, None, errors)
    return summarize(entry, errors)


def summarize(entry: dict[str, Any], errors: dict[str, int] | None = None) -> LoadTestResult:
    """A locust stats entry (its --json form) as a result: counts, throughput and percentiles."""
    times = {float(ms): count for ms, count in entry["response_times"].items()}  # JSON made the keys strings
    requests = entry["num_requests"]
    elapsed = (entry.get("last_request_timestamp") or entry["start_time"]) - entry["start_time"]
    rps = requests / elapsed if elapsed > 0 else float(requests)
    p50, p95, p99 = (percentile(times, requests, q) for q in (0.5, 0.95, 0.99))
    return LoadTestResult(requests, entry["num_failures"], round(rps, 1), p50, p95, p99, dict(errors or {}))


def percentile(times: dict[float, int], requests: int, q: float) -> float | None:
    """Locust's own rule: the response time that fraction q of the requests finished within."""
    if requests <= 0 or not times:
        return None
    allowed_above = requests - int(requests * q)
    counted = 0
    for ms in sorted(times, reverse=True):
        counted += times[ms]
        if counted >= allowed_above:
            return ms
    return min(times)
