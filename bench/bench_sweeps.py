"""Sweeps: the full grid vs random search vs Bayesian search with early stopping, on the same data in one run.

A random forest on the example credit data (5,000 rows, 25% held out), a grid of
4 x 4 x 4 = 64 points (max_depth x min_samples_leaf x max_features), selection
metric ROC AUC. Each search runs the train stage's own search (specops.lifecycle.search,
the same fit-and-score in worker processes) with the same seed and two workers:

- grid: all 64 points;
- random: 20 draws from the same space;
- bayesian + median stopping: 20 TPE trials, each trained in rungs (20%, 50%, 100% of the
  training rows) and stopped when its rung's score is below the median.

Prints trials started, trials trained fully, wall time, the best score, and the ratios to the grid.
Run: .venv/bin/python bench/bench_sweeps.py [--rows 5000] [--trials 20]
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GRID = {"max_depth": [3, 6, 9, 12], "min_samples_leaf": [1, 5, 20, 50], "max_features": [0.3, 0.5, 0.7, 1.0]}


def main() -> None:
    from credit_risk.generate import generate, to_csv
    from specops.core.paths import RunPaths
    from specops.lifecycle.featurize import read_feature_table
    from specops.lifecycle.search import search
    from specops.lifecycle.stages import run_stage
    from specops.lifecycle.trial import TrialData, fit_and_score, setup
    from specops.spec import Pipeline, load_specs
    from specops.spec.kinds import Sweep
    from specops.spec.sweeps import Choice
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        shutil.copytree(REPO / "specs", root / "specs")
        (root / "params.yaml").write_text("train:\n  seed: 7\n  sweep: {}\n", encoding="utf-8")
        (root / "data").mkdir()
        (root / "data" / "credit.csv").write_text(to_csv(generate(args.rows, seed=7)), encoding="utf-8")
        specs = load_specs(root)
        pipeline = specs.require(Pipeline, "credit-risk-training")
        for stage in ("validate", "features"):
            run_stage(stage, specs, pipeline)
        table = read_feature_table(RunPaths(root, pipeline.name))
    rows = list(range(len(table.frame)))
    train, test = train_test_split(rows, test_size=0.25, random_state=7, stratify=table.frame[table.target])
    data = TrialData(RandomForestClassifier, {"random_state": 7, "n_estimators": 100}, table.inputs.iloc[train],
                     table.frame[table.target].iloc[train], table.frame.iloc[test], table, "gender", "roc_auc")
    space = {name: Choice(tuple(values)) for name, values in GRID.items()}
    runs = {
        "grid (64 points)": Sweep(sampling_algorithm="grid"),
        f"random ({args.trials} trials)": Sweep(sampling_algorithm="random", limits={"max_total_trials": args.trials}),
        f"bayesian + median stopping ({args.trials} trials)": Sweep(
            sampling_algorithm="bayesian", limits={"max_total_trials": args.trials},
            early_termination={"policy": "median_stopping"}),
    }
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}; {args.rows} rows, 2 workers")
    results = {}
    for name, sweep in runs.items():
        outcome = search(sweep, space, {}, 7, "maximize", 2, fit_and_score, setup, (data,))
        best = max(t.score for t in outcome.complete if t.score is not None)
        results[name] = (len(outcome.trials), len(outcome.complete), outcome.seconds, best)
        print(f"{name}: {len(outcome.trials)} trials, {len(outcome.complete)} trained fully, "
              f"{outcome.seconds:.1f}s, best roc_auc {best:.4f}", flush=True)
    grid = results["grid (64 points)"]
    print("\n| search | trials started | trained fully | wall s | best ROC AUC | time vs grid | best vs grid |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (started, full, seconds, best) in results.items():
        print(f"| {name} | {started} | {full} | {seconds:.1f} | {best:.4f} | {seconds / grid[2]:.2f}x | {best - grid[3]:+.4f} |")


if __name__ == "__main__":
    main()
