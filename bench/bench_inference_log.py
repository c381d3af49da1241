"""Reading the inference log for a 5-minute analysis window: the full read vs `read_log(since=...)`.

Generates 7 days of an endpoint's log as two workers write it: hourly request
files at 1 logged request per second in all (0.5 per worker), records shaped
as serving's (the example's six inputs), and 30% of them labelled by feedback
that arrives 1 minute to 2 hours later, in the hourly feedback files of when it
arrived. Each read runs in its own fresh process (time and peak memory, Linux's VmHWM), the
two modes taking turns, best of 3; a separate process checks that the bounded
read equals the full read filtered to the window.
Run: .venv/bin/python bench/bench_inference_log.py
"""
from __future__ import annotations

import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from specops.serving.inference_log import log_dir, read_log

DAYS, WORKERS, PER_WORKER_S = 7, 2, 2.0  # one logged request every 2 s per worker: 1/s in all
LABELLED, WINDOW_S = 0.3, 300.0
END = 3600.0 * 494_000  # an hour's start (2026-05-10 08:00 UTC): the window ends here
REGIONS = ("north", "south", "east", "west")


def stamp(at: float) -> str:
    return time.strftime("%Y%m%d%H", time.gmtime(at))


def request(rng: random.Random, at: float, worker: int) -> dict:
    return {"time": at, "request_id": f"{rng.getrandbits(128):032x}", "row": 0, "deployment": "blue",
            "model": "credit-risk", "version": "3", "shadow": False,
            "inputs": {"income": round(rng.lognormvariate(10.8, 0.5), 2), "debt_ratio": round(rng.random(), 4),
                       "credit_score": rng.randint(300, 850), "age": rng.randint(18, 80),
                       "employment_years": round(rng.random() * 30, 1), "region": rng.choice(REGIONS)},
            "prediction": rng.randint(0, 1), "latency_ms": round(rng.uniform(0.5, 8.0), 3)}


def generate(state_dir: Path) -> tuple[int, int]:
    """Write the log; returns (requests, labels) written."""
    folder = log_dir(state_dir)
    folder.mkdir(parents=True)
    rng, feedback, requests = random.Random(9), [], 0
    for hour in range(int(END // 3600) - DAYS * 24, int(END // 3600)):
        for worker in range(WORKERS):
            times = [hour * 3600 + worker + i * PER_WORKER_S for i in range(int(3600 / PER_WORKER_S))]
            records = [request(rng, at, worker) for at in times]
            (folder / f"requests-{stamp(hour * 3600)}-{worker}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
            requests += len(records)
            feedback += [{"request_id": r["request_id"], "label": rng.randint(0, 1), "time": r["time"] + rng.uniform(60, 7200)}
                         for r in records if rng.random() < LABELLED]
    files: dict[str, list[str]] = {}
    for label in sorted((f for f in feedback if f["time"] < END), key=lambda f: f["time"]):  # none from the future
        files.setdefault(f"feedback-{stamp(label['time'])}-{rng.randrange(WORKERS)}.jsonl", []).append(json.dumps(label) + "\n")
    for name, lines in files.items():
        (folder / name).write_text("".join(lines))
    return requests, sum(len(lines) for lines in files.values())


def child(state_dir: str, mode: str) -> None:
    """One read in this fresh process: prints seconds, records, labelled records and peak RSS (MB)."""
    since = END - WINDOW_S
    if mode == "check":
        bounded, full = read_log(state_dir, since=since), read_log(state_dir)
        assert bounded == [r for r in full if r["time"] >= since] and bounded, "bounded read differs"
        print(json.dumps({"records": len(bounded)}))
        return
    start = time.perf_counter()
    records = read_log(state_dir, since=since if mode == "bounded" else None)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "records": len(records), "labelled": sum("label" in r for r in records),
                      "peak_mb": peak_mb()}))


def peak_mb() -> float:
    """This process's peak resident memory. Not ru_maxrss: Linux carries that over from the parent that
    started us (which generated the log); VmHWM starts again at exec."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def run(state_dir: Path, mode: str) -> dict:
    out = subprocess.run([sys.executable, __file__, str(state_dir), mode], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        requests, labels = generate(Path(tmp))
        files = list(log_dir(tmp).iterdir())
        size = sum(p.stat().st_size for p in files) / 1e6
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
              f"load {os.getloadavg()[0]:.1f}")
        print(f"log: {DAYS} days, {requests:,} requests, {labels:,} labels, {len(files)} files, {size:,.0f} MB "
              f"(generated in {time.perf_counter() - start:.0f} s); window: the last {WINDOW_S:.0f} s")
        runs: dict[str, list[dict]] = {"full": [], "bounded": []}
        for i in range(3):
            for mode in ("full", "bounded") if i % 2 == 0 else ("bounded", "full"):
                runs[mode].append(run(Path(tmp), mode))
        checked = run(Path(tmp), "check")["records"]
        best = {mode: min(results, key=lambda r: r["seconds"]) for mode, results in runs.items()}
        print("| read | records returned | labelled | seconds (best of 3) | all runs s | peak RSS MB |")
        print("|---|---:|---:|---:|---|---:|")
        for mode, result in best.items():
            every = ", ".join(f"{r['seconds']:.3f}" for r in runs[mode])
            print(f"| {mode} | {result['records']:,} | {result['labelled']:,} | {result['seconds']:.3f} | {every} | "
                  f"{max(r['peak_mb'] for r in runs[mode]):.0f} |")
        print(f"full / bounded: {best['full']['seconds'] / best['bounded']['seconds']:.0f}x; "
              f"bounded read == full read filtered to the window: {checked:,} records, equal")


if __name__ == "__main__":
    if len(sys.argv) == 3:
        child(*sys.argv[1:])
    else:
        main()
