"""Data drift on 20 numeric + 5 categorical features: specops vs Evidently, and specops' scaling.

1. Writes 1M baseline and 1M target rows (four features shifted: a 0.3-std mean
   shift, a 1.5x scale change, a 15% mixture, changed category proportions) to
   parquet once.
2. specops: summarises the baseline once (stored .npz), then each monitor run is
   a fresh process that loads the summary, reads the target and detects.
3. Evidently's DataDriftPreset on the same parquet files, in its own virtualenv
   (Evidently 0.7 needs pandas < 3; the project pins pandas 3), created on first
   use from bench/requirements-evidently.txt.
4. specops alone at 100k, 1M and 10M rows, to show linear growth.

Every measurement runs in a child process: wall time is timed inside it, peak
memory is the child's ru_maxrss. Verdicts are compared feature by feature.
Run: .venv/bin/python bench/bench_drift.py [--rows N] [--scaling 100000,1000000,10000000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

BENCH = Path(__file__).resolve().parent
EVIDENTLY_ENV = BENCH / ".venv-evidently"
REQUIREMENTS = BENCH / "requirements-evidently.txt"
NUMERIC = [f"x{i:02d}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]
SHIFTED = ["c3", "x03", "x07", "x11"]
USUAL, CHANGED = [0.4, 0.3, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]


# --- data --------------------------------------------------------------------

def make_frame(rows: int, seed: int, shifted: bool) -> pd.DataFrame:
    """Standard normal numerics and four-level categoricals; `shifted` applies the four changes."""
    rng = np.random.default_rng(seed)
    columns = dict(zip(NUMERIC, rng.standard_normal((len(NUMERIC), rows))))
    for name in CATEGORICAL:
        proportions = CHANGED if shifted and name == "c3" else USUAL
        columns[name] = pd.Categorical.from_codes(rng.choice(4, size=rows, p=proportions), ["a", "b", "c", "d"])
    frame = pd.DataFrame(columns)
    if shifted:
        frame["x03"] += 0.3
        frame["x07"] *= 1.5
        mixed = rng.random(rows) < 0.15
        frame.loc[mixed, "x11"] = rng.normal(3, 1, mixed.sum())
    return frame


# --- children: each prints one JSON object -----------------------------------

def child_summarize(data: Path) -> dict:
    from specops.monitoring.drift import summarize

    baseline = pd.read_parquet(data / "baseline.parquet")
    start = time.perf_counter()
    summarize(baseline, NUMERIC, CATEGORICAL).save(data / "summary.npz")
    return {"seconds": time.perf_counter() - start}


def child_detect(data: Path) -> dict:
    from specops.monitoring.drift import BaselineSummary, detect

    start = time.perf_counter()
    target = pd.read_parquet(data / "target.parquet")
    read = time.perf_counter() - start
    start = time.perf_counter()
    report = detect(BaselineSummary.load(data / "summary.npz"), target)
    return {"read_seconds": read, "seconds": time.perf_counter() - start,
            "verdicts": {f.name: f.drifted for f in report.features}}


def child_evidently(data: Path) -> dict:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    start = time.perf_counter()
    baseline, target = pd.read_parquet(data / "baseline.parquet"), pd.read_parquet(data / "target.parquet")
    read = time.perf_counter() - start
    start = time.perf_counter()
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(target, data_definition=definition),
        reference_data=Dataset.from_pandas(baseline, data_definition=definition),
    )
    seconds = time.perf_counter() - start
    # Evidently's distance tests drift when the score reaches the threshold.
    drifts = [m for m in snapshot.dict()["metrics"] if m["config"]["type"].endswith("ValueDrift")]
    verdicts = {m["config"]["column"]: bool(m["value"] >= m["config"]["threshold"]) for m in drifts}
    methods = sorted({m["config"]["method"] for m in drifts})
    return {"read_seconds": read, "seconds": seconds, "verdicts": verdicts, "methods": methods}


def child_scale(rows: int) -> dict:
    """specops alone at one size, data made in the process (no parquet at 10M rows)."""
    from specops.monitoring.drift import detect, summarize

    baseline = make_frame(rows, seed=1, shifted=False)
    start = time.perf_counter()
    summary = summarize(baseline, NUMERIC, CATEGORICAL)
    summarize_seconds = time.perf_counter() - start
    del baseline
    target = make_frame(rows, seed=2, shifted=True)
    start = time.perf_counter()
    report = detect(summary, target)
    return {"summarize_seconds": summarize_seconds, "seconds": time.perf_counter() - start,
            "drifted": sorted(report.drifted)}


CHILDREN = {"summarize": child_summarize, "detect": child_detect, "evidently": child_evidently}


# --- the parent --------------------------------------------------------------

def run_child(python: Path | str, *args: str) -> dict:
    """Run this script as a child; return its JSON plus its own peak memory (MB)."""
    child = subprocess.Popen([str(python), __file__, "--child", *args], stdout=subprocess.PIPE, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"child {args} exited {child.returncode}")
    return {**json.loads(output), "peak_mb": usage.ru_maxrss / 1024}


def evidently_python() -> Path:
    python = EVIDENTLY_ENV / "bin" / "python"
    if not python.exists():
        print(f"creating {EVIDENTLY_ENV} from {REQUIREMENTS.name} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_ENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)], check=True)
        (EVIDENTLY_ENV / ".gitignore").write_text("*\n")  # never committed
    return python


def compare(rows: int, repeat: int, data: Path) -> None:
    print(f"writing {rows:,} baseline and {rows:,} target rows to parquet ...", flush=True)
    make_frame(rows, seed=1, shifted=False).to_parquet(data / "baseline.parquet")
    make_frame(rows, seed=2, shifted=True).to_parquet(data / "target.parquet")

    summary = run_child(sys.executable, "summarize", str(data))
    runs = [run_child(sys.executable, "detect", str(data)) for _ in range(repeat)]
    ours = min(runs, key=lambda r: r["seconds"])
    theirs = run_child(evidently_python(), "evidently", str(data))  # ~minutes: once

    print(f"\nspecops summarize (once):   {summary['seconds']:7.2f} s  peak {summary['peak_mb']:6.0f} MB")
    all_runs = ", ".join(f"{r['seconds']:.2f}" for r in runs)
    print(f"specops detect (best of {repeat}): {ours['seconds']:7.2f} s  peak {ours['peak_mb']:6.0f} MB"
          f"  (all runs: {all_runs} s; reading target {ours['read_seconds']:.2f} s)")
    print(f"Evidently DataDriftPreset:  {theirs['seconds']:7.2f} s  peak {theirs['peak_mb']:6.0f} MB"
          f"  (reading both {theirs['read_seconds']:.2f} s; methods: {', '.join(theirs['methods'])})")
    print(f"ratio: specops is {theirs['seconds'] / ours['seconds']:.0f}x faster, "
          f"end to end with reading {(theirs['seconds'] + theirs['read_seconds']) / (ours['seconds'] + ours['read_seconds']):.0f}x; "
          f"peak memory {ours['peak_mb'] / theirs['peak_mb']:.2f} of Evidently's")
    differ = sorted(n for n in ours["verdicts"] if ours["verdicts"][n] != theirs["verdicts"].get(n))
    drifted = sorted(n for n, d in ours["verdicts"].items() if d)
    print(f"verdicts: specops drifted {drifted}; expected {SHIFTED}; "
          f"{'identical to Evidently' if not differ else f'differ from Evidently on {differ}'}")


def scaling(sizes: list[int]) -> None:
    print("\nspecops alone (baseline and target of the same size; detect only):")
    previous = None
    for rows in sizes:
        result = run_child(sys.executable, "scale", str(rows))
        growth = f"  x{result['seconds'] / previous[1]:.1f} time for x{rows / previous[0]:.0f} rows" if previous else ""
        print(f"{rows:>11,} rows: detect {result['seconds']:6.2f} s  summarize {result['summarize_seconds']:6.2f} s"
              f"  peak {result['peak_mb']:6.0f} MB  drifted {result['drifted']}{growth}", flush=True)
        previous = (rows, result["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scaling", default="100000,1000000,10000000", help="comma-separated sizes; empty to skip")
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("ROLE", "ARG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        role, arg = args.child
        print(json.dumps(child_scale(int(arg)) if role == "scale" else CHILDREN[role](Path(arg))))
        return
    load = os.getloadavg()[0]
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load average {load:.1f}, python {platform.python_version()}")
    if not args.skip_evidently:
        with tempfile.TemporaryDirectory(prefix="bench-drift-") as data:
            compare(args.rows, args.repeat, Path(data))
    if args.scaling:
        scaling([int(s) for s in args.scaling.split(",")])


if __name__ == "__main__":
    main()
