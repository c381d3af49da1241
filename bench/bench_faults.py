"""The endpoint under a bad-row mix: good requests failed before and after per-request failure isolation.

One registered model (a logistic regression on the example data), the example's
features. Two wrk clients at once: 16 connections sending good single-row
requests, and 1 connection sending, back to back, a row whose `income` is -1
(log1p(-1) = -inf: the model raises). The same load runs against, one after the
other, never at once:

- before: the code this branch started from (`git archive` of --before, default
  the merge base with main, run with the same virtualenv through PYTHONPATH):
  the bad row fails every request batched with it;
- isolated: this code with `server.out_of_range: flag`, so the bad row still
  reaches the model: only its own request fails (422), the batch is retried
  without it;
- door: this code with the default `reject`: the Dataset declares income >= 0,
  so the bad row is a 422 before it reaches a batch;
- clean: this code, the good client alone (the reference for throughput);
- large / huge: this code, the bad-row client replaced by one sending 1,000-row
  requests (the default server.max_rows_per_request: scored) or 10,000-row
  ones (refused, 413), back to back;
- large-before: the 1,000-row client against the code before (--before), which
  queued large requests in front of small ones (this code gives them turns);
- slowloris: this code, the second client replaced by 1,000 connections that
  send a request's headers a line every 2 s and never finish.

Run: .venv/bin/python bench/bench_faults.py [--seconds 20] [--workers 2] [--before REV] [--runs door,clean,...]
     [--startup S]
Needs wrk (apt-get install wrk).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from credit_risk.generate import generate  # noqa: E402
from specops.core.paths import ProjectPaths  # noqa: E402
from specops.features.transforms import compute_features  # noqa: E402
from specops.serving.keys import ensure_keys  # noqa: E402
from specops.spec import Dataset, FeatureSet, load_specs  # noqa: E402

ENDPOINT = """apiVersion: specops/v1
kind: Endpoint
metadata: {{name: {name}}}
spec:
  deployments:
    - {{name: blue, model: "credit-risk@{version}", data_collector: {{enabled: false}}}}
  traffic: {{blue: 100}}
  server: {{workers: {workers}{extra}}}
"""
WRK_SCRIPT = """
wrk.method = "POST"
local file = io.open(os.getenv("BODY_FILE"), "rb")
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
done = function(summary, latency, requests)
  local failed = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format('RESULT {"requests": %d, "seconds": %f, "failed": %d, "p50": %f, "p99": %f}\\n',
    summary.requests, summary.duration / 1e6, failed, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
"""
COLUMNS = ["income", "debt_ratio", "credit_score", "age", "employment_years", "region"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_project(root: Path) -> str:
    """The example specs and data, one registered logistic regression; returns its version."""
    import mlflow
    import mlflow.sklearn
    import skops.io
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    from specops.registry import connect

    shutil.copytree(REPO / "specs", root / "specs")
    for folder in ("endpoints", "monitors", "slos"):
        shutil.rmtree(root / "specs" / folder)
    (root / "data").mkdir()
    data = generate(5000, 7)
    data.to_csv(root / "data" / "credit.csv", index=False)
    specs = load_specs(root)
    connect(specs)
    features = compute_features(data, specs.get(FeatureSet, "credit-features").spec, specs.get(Dataset, "credit-applications").spec)
    model = LogisticRegression(max_iter=1000).fit(features, data["default"])
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", signature=infer_signature(features, model.predict(features)),
                                        skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)),
                                        pip_requirements=["scikit-learn", "skops"])
    return str(mlflow.register_model(info.model_uri, "credit-risk").version)


def checkout(rev: str, dest: Path) -> Path:
    """The package sources of `rev`, without touching any worktree: git archive into `dest`."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", rev, "src"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "src"


def wrk(url: str, body: dict, key: str, connections: int, seconds: int, script: Path) -> subprocess.Popen:
    text = json.dumps(body)
    body_file = script.with_name(f"body-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json")  # too long for the environment
    body_file.write_text(text)
    env = {**os.environ, "BODY_FILE": str(body_file), "KEY": key}
    return subprocess.Popen(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(process: subprocess.Popen) -> dict:
    out, err = process.communicate()
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk failed: {out}\n{err}")
    found = json.loads(line.removeprefix("RESULT "))
    found["rps"] = found["requests"] / found["seconds"]
    return found


def probe(url: str, body: dict, key: str) -> tuple[int, str]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()[:160]
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()[:160]


SLOW_CONNECTIONS = 1000
RUNS = ("before", "isolated", "door", "clean", "large-before", "large", "huge", "slowloris")


def slowloris(port: int, connections: int, stop: threading.Event) -> None:
    """Open `connections` requests and send their headers a line at a time, every 2 s, never finishing one."""
    sockets = []
    try:
        for _ in range(connections):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            sockets.append(sock)
        line = 0
        while not stop.wait(2.0):
            line += 1
            for sock in sockets:
                try:
                    sock.sendall(f"X-Slow-{line}: a\r\n".encode())
                except OSError:
                    pass  # closed by the server: allowed
    finally:
        for sock in sockets:
            sock.close()


def run(root: Path, name: str, version: str, args, extra: str, pythonpath: Path | None, other: str | None, script: Path) -> dict:
    (root / "specs" / f"{name}.yaml").write_text(ENDPOINT.format(name=name, version=version, workers=args.workers, extra=extra))
    port = free_port()
    env = {**os.environ, **({"PYTHONPATH": str(pythonpath)} if pythonpath else {})}
    server = subprocess.Popen([sys.executable, "-m", "specops.serving", str(root), name, "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + args.startup
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readiness", timeout=2)
                break
            except (urllib.error.URLError, OSError):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"server {name} did not start") from None
                time.sleep(0.3)
        key = ensure_keys(ProjectPaths(root).endpoint(name))["primary"]
        url = f"http://127.0.0.1:{port}/score"
        good = {"input_data": {"columns": COLUMNS, "data": generate(1, 11)[COLUMNS].values.tolist()}}
        poison = json.loads(json.dumps(good))
        poison["input_data"]["data"][0][0] = -1.0
        bodies = {"bad-row": poison, "large": {"input_data": {"columns": COLUMNS, "data": generate(1000, 12)[COLUMNS].values.tolist()}},
                  "huge": {"input_data": {"columns": COLUMNS, "data": generate(10_000, 13)[COLUMNS].values.tolist()}}}
        result(wrk(url, good, key, 16, 3, script))  # warm-up
        stop = threading.Event()
        slow = threading.Thread(target=slowloris, args=(port, SLOW_CONNECTIONS, stop)) if other == "slowloris" else None
        if slow:
            slow.start()
            time.sleep(2)  # every slow connection open before the measured run
        clients = [wrk(url, good, key, 16, args.seconds, script)]
        if other in bodies:
            clients.append(wrk(url, bodies[other], key, 1, args.seconds, script))
        found = {"good": result(clients[0]), "bad": result(clients[1]) if other in bodies else None,
                 "bad_answer": probe(url, bodies.get(other or "bad-row", poison), key)}
        stop.set()
        if slow:
            slow.join()
        return found
    finally:
        server.terminate()
        server.wait()
        (root / "specs" / f"{name}.yaml").unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20, help="measured seconds per run (after a 3 s warm-up)")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--before", help="the code without isolation (default: the merge base of HEAD and main)")
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated, of {', '.join(RUNS)}")
    parser.add_argument("--startup", type=float, default=180, help="seconds a server may take to start")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))  # so the running server is stopped on the way out
    if shutil.which("wrk") is None:
        raise SystemExit("bench_faults needs wrk: apt-get install wrk")
    before = args.before or subprocess.run(["git", "-C", str(REPO), "merge-base", "HEAD", "main"], check=True,
                                           capture_output=True, text=True).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="specops-bench-faults-"))
    try:
        print("\n" + "\n".join(measure(args, before, work)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(args: argparse.Namespace, before: str, work: Path) -> list[str]:
    """Every run, one after the other; the report's lines."""
    old_src = checkout(before, work / "before")
    root = work / "proj"
    version = make_project(root)
    script = work / "wrk.lua"
    script.write_text(WRK_SCRIPT)
    started = datetime.now(UTC)
    runs = [("before", f"code of {before[:7]}", "", old_src, "bad-row"),
            ("isolated", "this code, out_of_range: flag", ", out_of_range: flag", None, "bad-row"),
            ("door", "this code, out_of_range: reject (default)", "", None, "bad-row"),
            ("clean", "this code, no other client", "", None, None),
            ("large-before", f"code of {before[:7]}, 1 client of 1,000-row requests", "", old_src, "large"),
            ("large", "this code, 1 client of 1,000-row requests", "", None, "large"),
            ("huge", "this code, 1 client of 10,000-row requests", "", None, "huge"),
            ("slowloris", f"this code, {SLOW_CONNECTIONS} slowloris connections", "", None, "slowloris")]
    wanted = args.runs.split(",")
    runs = [r for r in runs if r[0] in wanted]
    rows = []
    for name, label, extra, pythonpath, other in runs:
        found = run(root, name, version, args, extra, pythonpath, other, script)
        rows.append((name, label, found))
        g, b = found["good"], found["bad"]
        print(f"{name}: good {g['requests']} ({g['rps']:.0f}/s), failed {g['failed']}, p50 {g['p50']:.1f} ms, p99 {g['p99']:.1f} ms; "
              f"other {b['requests'] if b else 0}; it gets {found['bad_answer'][0]}", flush=True)
    lines = [f"### Bad-row mix ({started:%Y-%m-%d %H:%M} UTC)", "",
             f"{platform.node()}: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
             f"load average at start {os.getloadavg()[0]:.1f}; {args.workers} workers; wrk: 16 connections of good single-row "
             f"requests and 1 connection of other requests (bad rows: income -1; or large ones), at once, {args.seconds} s per run; "
             f"before = {before[:7]}.", "",
             "| run | server | good req/s | good failed | good failed % | good p50 ms | good p99 ms | other req/s | other's answer |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, label, found in rows:
        g, b = found["good"], found["bad"]
        lines.append(f"| {name} | {label} | {g['rps']:.0f} | {g['failed']} | {100 * g['failed'] / max(g['requests'], 1):.2f} | "
                     f"{g['p50']:.1f} | {g['p99']:.1f} | {b['rps'] if b else 0:.0f} | {found['bad_answer'][0]} |")
    failed = {name: found["good"]["failed"] for name, _, found in rows}
    rps = {name: found["good"]["rps"] for name, _, found in rows}
    if "before" in failed and "isolated" in failed:
        ratio = "inf" if failed["isolated"] == 0 else f"{failed['before'] / failed['isolated']:.1f}x"
        lines += ["", f"good requests failed, before / isolated: {failed['before']} / {failed['isolated']} ({ratio})"]
    if "clean" in rps:
        lines += ["", "good throughput / clean: " + ", ".join(f"{n} {r / rps['clean']:.2f}" for n, r in rps.items() if n != "clean")]
    lines += ["", "good requests failed in the runs of this code: "
                  f"{sum(f for n, f in failed.items() if n not in ('before', 'large-before'))}", "",
              "other client's answer: " + "; ".join(f"{name}: {found['bad_answer'][0]} {found['bad_answer'][1]!r}"
                                                   for name, _, found in rows if found["bad"])]
    return lines


if __name__ == "__main__":
    main()
