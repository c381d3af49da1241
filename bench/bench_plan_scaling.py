"""How `specops plan` grows with the number of specs (50, 500, 5,000).

Generates projects of N declarations (Datasets, FeatureSets and Gates in equal
parts, cross-referenced like a real project), times load + validate + plan in
this process, and prints the time per spec so linear growth is visible.
Run: .venv/bin/python bench/bench_plan_scaling.py
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from specops import api

PROJECT = """apiVersion: specops/v1
kind: Project
metadata: {name: bench}
spec: {}
"""
GROUP = """apiVersion: specops/v1
kind: Dataset
metadata: {{name: data-{i}}}
spec:
  path: data.csv
  target: y
  sensitive: [group]
  columns:
    x1: {{type: float, min: 0}}
    x2: {{type: int, min: 0, max: 100}}
    group: {{type: str, allowed: [a, b]}}
    y: {{type: int, allowed: [0, 1]}}
---
apiVersion: specops/v1
kind: FeatureSet
metadata: {{name: features-{i}}}
spec:
  dataset: data-{i}
  version: 1
  owner: team@example.com
  refresh: "0 {hour} * * *"
  features:
    - {{name: log_x1, transform: log1p, inputs: [x1]}}
    - {{name: x2}}
---
apiVersion: specops/v1
kind: Gate
metadata: {{name: gate-{i}}}
spec:
  checks:
    - {{metric: accuracy, min: 0.8}}
    - {{metric: accuracy, compare_to: champion, min: -0.01}}
"""


def make_project(root: Path, specs: int) -> None:
    (root / "specs").mkdir(parents=True)
    (root / "data.csv").write_text("x1,x2,group,y\n")
    (root / "specs" / "project.yaml").write_text(PROJECT)
    for i in range((specs - 1) // 3):
        (root / "specs" / f"group-{i:05d}.yaml").write_text(GROUP.format(i=i, hour=i % 24))


def time_plan(root: Path, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        api.plan(root)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {sys.platform}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (50, 500, 5000):
            root = Path(tmp) / str(n)
            make_project(root, n)
            seconds = time_plan(root, repeats=5 if n < 5000 else 3)
            rows.append((n, seconds))
    base_n, base_s = rows[0]
    print(f"{'specs':>6} {'plan s':>8} {'ms/spec':>8} {'time ratio':>10} {'size ratio':>10}")
    for n, seconds in rows:
        print(f"{n:>6} {seconds:>8.3f} {seconds / n * 1000:>8.3f} {seconds / base_s:>10.1f} {n / base_n:>10.0f}")
    growth = (rows[-1][1] / rows[1][1]) / (rows[-1][0] / rows[1][0])
    print(f"500 -> 5000 specs: time grew {rows[-1][1] / rows[1][1]:.1f}x for 10x specs (1.0 = linear; {growth:.2f} of linear)")


if __name__ == "__main__":
    main()
