"""Request metrics on the hot path: specops' shared array vs prometheus_client's multiprocess mode.

specops counts each request in a lock-free shared array (one slice per worker
process) and uses prometheus_client for the exposition and the parser. The
competitor is the library's own multiprocess mode: Counter and Histogram
values in one mmap file per process (PROMETHEUS_MULTIPROC_DIR), merged by
MultiProcessCollector at scrape time. Measured in one run:

1. `observe` alone, ns per call (best of 5 x 200,000 calls): the array; the
   library with `.labels()` per call, as usually written; the library with the
   labelled children looked up once (its best case).
2. The endpoint server under wrk (16 connections, one small logistic
   regression as two deployments 90/10, inference log on), the variants taking
   turns, `--rounds` times: this tree; this tree with the library's
   multiprocess mode swapped in (its best case, children cached); and with
   `--before REV`, the server as it was at REV. Two loads per run: single-row
   scoring requests, and requests refused with a 400 (the cheapest request
   that is counted, where the counting weighs most). Besides wrk's req/s and
   latency, the server's CPU time (parent and workers, user + system) per
   request it counted: on a shared machine, less disturbed by other load than
   req/s; the median duration of an observe() call inside the workers (every
   variant's Metrics.observe wrapped alike, so each call also carries two
   clock reads); and the median time of 30 scrapes of /metrics.

Run: .venv/bin/python bench/bench_metrics.py [--seconds 15] [--rounds 3] [--workers N] [--before REV]
[--micro-only]; bench/RESULTS.md's runs: --before ff949d6 --rounds 5 --seconds 10 (or 6 rounds).
Needs wrk (apt-get install wrk).
"""
from __future__ import annotations

import os
import sys
import tempfile

LIBRARY_VARIANT = "SPECOPS_BENCH_LIBRARY_METRICS"  # set in a server's environment: its workers use the competitor
TIMINGS = "SPECOPS_BENCH_OBSERVE_TIMINGS"  # a folder: each server process writes how long its observe() calls took
# The library picks its value class (mmap files or not) when first imported: this must come first. The bench's
# own process needs a folder for its microbenchmark; a server process finds one in its environment, or none.
if TIMINGS not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="specops-bench-prom-")

import argparse  # noqa: E402 -- after PROMETHEUS_MULTIPROC_DIR is set
import platform  # noqa: E402 -- after PROMETHEUS_MULTIPROC_DIR is set
import shutil  # noqa: E402 -- after PROMETHEUS_MULTIPROC_DIR is set
import statistics  # noqa: E402 -- after PROMETHEUS_MULTIPROC_DIR is set
import subprocess  # noqa: E402 -- after PROMETHEUS_MULTIPROC_DIR is set
import time  # noqa: E402 -- after PROMETHEUS_MULTIPROC_DIR is set
from array import array  # noqa: E402 -- after PROMETHEUS_MULTIPROC_DIR is set
from datetime import UTC, datetime  # noqa: E402 -- after PROMETHEUS_MULTIPROC_DIR is set
from pathlib import Path  # noqa: E402 -- after PROMETHEUS_MULTIPROC_DIR is set

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest  # noqa: E402 -- after PROMETHEUS_MULTIPROC_DIR is set
from prometheus_client.multiprocess import MultiProcessCollector  # noqa: E402 -- after PROMETHEUS_MULTIPROC_DIR is set

REPO = Path(__file__).resolve().parents[1]
if TIMINGS not in os.environ:  # a server process runs the src/ its PYTHONPATH names (--before: another tree)
    sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from specops.serving import metrics as specops_metrics  # noqa: E402
from specops.serving.metrics import BUCKETS, STATUS_CLASSES  # noqa: E402

CLASS = {2: "2xx", 4: "4xx", 5: "5xx"}


class LibraryMetrics:
    """The competitor, with specops' Metrics interface: prometheus_client's multiprocess mode."""

    def __init__(self, array, deployments: list[str], worker: int, capacity: int | None = None, cached: bool = True):
        self.requests = Counter("specops_requests", "Scoring requests answered.", ["deployment", "status"], registry=None)
        self.errors = Counter("specops_errors", "Server-side failures.", ["deployment"], registry=None)
        self.latency = Histogram("specops_request_duration_seconds", "Latency.", ["deployment"], buckets=BUCKETS, registry=None)
        self.cached = cached
        self.set_slots(deployments)

    def set_slots(self, deployments: list[str]) -> None:
        # Every series exists from the start at 0, as the array's do; the children are kept for observe.
        self.children = {name: ({c: self.requests.labels(name, c) for c in STATUS_CLASSES},
                                self.errors.labels(name), self.latency.labels(name)) for name in deployments}

    def observe(self, deployment: str, status: int, seconds: float) -> None:
        if not self.cached:  # as the library is usually used
            self.requests.labels(deployment, CLASS[status // 100]).inc()
            if status >= 500 or status == 408:
                self.errors.labels(deployment).inc()
            self.latency.labels(deployment).observe(seconds)
            return
        requests, errors, latency = self.children[deployment]
        requests[CLASS[status // 100]].inc()
        if status >= 500 or status == 408:
            errors.inc()
        latency.observe(seconds)

    def exposition(self) -> bytes:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)


def timed(cls: type) -> None:
    """Wrap cls.observe to keep each call's duration (ns), written to TIMINGS/<pid>.ns every 5,000 calls.
    The median is what is reported: a worker preempted mid-call (2 cores, many processes) makes outliers."""
    observe, durations = cls.observe, array("q")
    out = Path(os.environ[TIMINGS]) / f"{os.getpid()}.ns"

    def timed_observe(self, deployment: str, status: int, seconds: float) -> None:
        start = time.perf_counter_ns()
        observe(self, deployment, status, seconds)
        durations.append(time.perf_counter_ns() - start)
        if len(durations) % 5000 == 0:
            out.write_bytes(durations.tobytes())

    cls.observe = timed_observe


if os.environ.get(TIMINGS):  # a server process (spawn runs this file's top level in each worker): set it up
    import specops.serving.app as _app

    (Path(os.environ[TIMINGS]) / "served-from").write_text(_app.__file__)  # checked: the variant's own tree

    if os.environ.get(LIBRARY_VARIANT):
        _app.Metrics = LibraryMetrics
    timed(_app.Metrics)


def observe_ns(observe, calls: int = 200_000, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            observe("blue", 200, 0.004)
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e9


def micro() -> list[str]:
    deployments = ["blue", "green", "shadow"]
    ours = specops_metrics.Metrics(specops_metrics.shared_array(2), deployments, 0, specops_metrics.MAX_DEPLOYMENTS)
    variants = [("specops: shared array", ours.observe),
                ("prometheus_client multiprocess, `.labels()` per call", LibraryMetrics(None, deployments, 0, cached=False).observe),
                ("prometheus_client multiprocess, children cached", LibraryMetrics(None, deployments, 0).observe)]
    timings = [(label, observe_ns(observe)) for label, observe in variants]
    lines = ["| `observe` | ns per call | ratio to the array |", "|---|---:|---:|"]
    lines += [f"| {label} | {ns:.0f} | {ns / timings[0][1]:.1f}x |" for label, ns in timings]
    return lines


def exported_tree(rev: str) -> Path:
    """REV's src/ in a temp folder (git archive: no worktree is registered)."""
    target = Path(tempfile.mkdtemp(prefix="specops-bench-before-"))
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "src"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "src"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a server: its parent and all its workers."""
    import psutil

    parent = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [parent, *parent.children(recursive=True)])


def counted(url: str) -> float:
    """Requests the server counted, all deployments and status classes (any worker answers: the sum)."""
    from specops.rollout.metrics import scrape

    return sum(row["requests"] for row in scrape(f"{url}/metrics").values())


def load(url: str, pid: int, body: dict, key: str, seconds: int) -> dict:
    """wrk on /score, and the server's CPU per request it counted over the same time (warm-up included)."""
    from bench_serving import wrk

    requests_before, cpu_before = counted(url), cpu_seconds(pid)
    result = wrk(f"{url}/score", body, key, 16, seconds)
    cpu = cpu_seconds(pid) - cpu_before
    result["counted"] = counted(url) - requests_before
    result["cpu_us"] = cpu / result["counted"] * 1e6
    return result


def scrape_ms(url: str, times: int = 30) -> float:
    import requests

    timings = []
    for _ in range(times):
        start = time.perf_counter()
        requests.get(f"{url}/metrics", timeout=10).raise_for_status()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1000


def run_server(root: Path, name: str, variant: dict, workers: int, seconds: int) -> dict:
    from bench_serving import free_port, wait_until_up

    from specops.serving.config import endpoint_dir
    from specops.serving.keys import ensure_keys

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", LIBRARY_VARIANT)}
    timings = Path(tempfile.mkdtemp(prefix="specops-bench-observe-"))
    env.update({"PYTHONPATH": variant["src"], TIMINGS: str(timings)})
    if variant.get("library"):
        env.update({LIBRARY_VARIANT: "1", "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="specops-bench-prom-")})
    # Every variant starts through this file, so that its workers time observe() alike.
    process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", str(root), name, "--port", str(port),
                                "--workers", str(workers)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(f"{url}/readiness", process)
        served_from = Path((timings / "served-from").read_text())
        if not served_from.is_relative_to(variant["src"]):
            raise SystemExit(f"{variant['label']}: the server ran {served_from}, not the code under {variant['src']}")
        key = ensure_keys(endpoint_dir(root, name))["primary"]
        raw_row = variant["row"]
        scoring = load(url, process.pid, {"input_data": {"columns": list(raw_row.columns), "data": raw_row.values.tolist()}},
                       key, seconds)
        # The cheapest request that is counted: refused with a 400 before any scoring.
        refused = load(url, process.pid, {"data": [{"income": "not a number"}]}, key, seconds)
        return {"scoring": scoring, "refused": refused, "scrape_ms": scrape_ms(url), "observe_ns": observe_ns_in(timings)}
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(timings, ignore_errors=True)
        shutil.rmtree(env.get("PROMETHEUS_MULTIPROC_DIR", "/nonexistent"), ignore_errors=True)


def observe_ns_in(timings: Path) -> float:
    """The median duration of an observe() call in the server's workers, over both loads."""
    durations = array("q")
    for path in timings.glob("*.ns"):
        durations.frombytes(path.read_bytes())
    return statistics.median(durations)


def servers(args) -> list[str]:
    import bench_serving

    from credit_risk.generate import generate

    root = bench_serving.make_project(Path(tempfile.mkdtemp(prefix="specops-bench-metrics-")))
    bench_serving.MODELS = {k: v for k, v in bench_serving.MODELS.items() if k == "logistic regression"}
    [(version, _, _)] = bench_serving.register(root).values()
    name = f"bench-v{version}"
    (root / "specs" / f"{name}.yaml").write_text(bench_serving.ENDPOINT.format(name=name, version=version))
    row = generate(1, 11).drop(columns=["default", "gender"])
    this = str(REPO / "src")
    variants = [{"label": "specops: shared array, library exposition", "src": this, "row": row},
                {"label": "prometheus_client multiprocess mode", "src": this, "row": row, "library": True}]
    if args.before:
        variants.insert(0, {"label": f"before ({args.before}): shared array, hand-written text",
                            "src": str(exported_tree(args.before)), "row": row})
    results: dict[str, list[dict]] = {v["label"]: [] for v in variants}
    for round_ in range(args.rounds):
        for variant in variants:
            result = run_server(root, name, variant, args.workers, args.seconds)
            results[variant["label"]].append(result)
            ok, bad = result["scoring"], result["refused"]
            print(f"round {round_ + 1} {variant['label']}: scoring {ok['rps']:.0f} req/s, {ok['cpu_us']:.0f} us CPU/request, "
                  f"p95 {ok['p95']:.1f} ms; 400s {bad['rps']:.0f} req/s, {bad['cpu_us']:.0f} us CPU/request; "
                  f"scrape {result['scrape_ms']:.2f} ms; observe {result['observe_ns']:.0f} ns", flush=True)
    shutil.rmtree(root, ignore_errors=True)
    if args.before:
        shutil.rmtree(Path(variants[0]["src"]).parent, ignore_errors=True)
    return table(results, variants[-2]["label"], variants[-1]["label"])


def table(results: dict[str, list[dict]], ours: str, theirs: str) -> list[str]:
    def median(runs: list[dict], load: str, key: str) -> float:
        return statistics.median(r[load][key] for r in runs)

    lines = [("| server | load | req/s per round | median req/s | CPU us per request (median) | p50 ms | p95 ms | p99 ms | "
              "non-2xx, failed | /metrics ms | observe() in the workers, ns |"),
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, runs in results.items():
        for load, what in (("scoring", "scoring, 1 row"), ("refused", "400, refused body")):
            per_round = ", ".join(f"{r[load]['rps']:.0f}" for r in runs)
            lines.append(f"| {label} | {what} | {per_round} | {median(runs, load, 'rps'):.0f} | {median(runs, load, 'cpu_us'):.0f} | "
                         f"{median(runs, load, 'p50'):.1f} | {median(runs, load, 'p95'):.1f} | {median(runs, load, 'p99'):.1f} | "
                         f"{sum(r[load]['failed'] for r in runs)} | {statistics.median(r['scrape_ms'] for r in runs):.2f} | "
                         f"{statistics.median(r['observe_ns'] for r in runs):.0f} |")
    for load, what in (("scoring", "scoring"), ("refused", "400s")):
        rps = median(results[ours], load, "rps") / median(results[theirs], load, "rps")
        cpu = median(results[ours], load, "cpu_us") / median(results[theirs], load, "cpu_us")
        lines.append(f"| **array / multiprocess mode** | {what} | | **{rps:.3f}x** | **{cpu:.3f}x** | | | | | | |")
    observe = statistics.median(r["observe_ns"] for r in results[ours]) / statistics.median(r["observe_ns"] for r in results[theirs])
    lines.append(f"| **array / multiprocess mode** | observe() in the workers | | | | | | | | | **{observe:.3f}x** |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15, help="measured seconds per server run (after a 3 s warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="times each server variant runs, taking turns")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="server worker processes")
    parser.add_argument("--before", help="also run the server as it was at this git revision")
    parser.add_argument("--micro-only", action="store_true", help="only the observe() microbenchmark")
    args = parser.parse_args()
    if not args.micro_only and shutil.which("wrk") is None:
        raise SystemExit("bench_metrics needs wrk: apt-get install wrk")
    head = [f"### Metrics: shared array vs prometheus_client multiprocess mode ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)", "",
            (f"{platform.node()}: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
             f"Python {platform.python_version()}, prometheus_client {_version('prometheus_client')}, "
             f"load average at start {os.getloadavg()[0]:.1f}; servers: {args.workers} workers, wrk 16 connections, "
             f"{args.seconds} s per run, {args.rounds} rounds."), ""]
    lines = micro()
    print("\n".join(lines), flush=True)
    if not args.micro_only:
        lines += ["", *servers(args)]
    print("\n" + "\n".join([*head, *lines]))
    shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:  # a server variant: python bench_metrics.py --serve ROOT ENDPOINT ...
        from specops.serving.__main__ import main as serve

        sys.exit(serve(sys.argv[2:]))
    main()
