"""Single-row feature computation: serving's raw-row path vs the DataFrame path, same spec, same row.

The online endpoint computes features per request; building a pandas
DataFrame for one row costs more than a logistic regression's predict.
Run: .venv/bin/python bench/bench_features.py
"""
from __future__ import annotations

import os
import platform
import timeit
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from specops.features.transforms import compute_features, feature_matrix
from specops.spec import Dataset, FeatureSet, load_specs

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["income", "debt_ratio", "credit_score", "age", "employment_years", "region"]
ROW = [52000.0, 0.3, 700, 30, 3.0, "north"]
CALLS = 5000


def main() -> None:
    specs = load_specs(REPO)
    fs, ds = specs.get(FeatureSet, "credit-features").spec, specs.get(Dataset, "credit-applications").spec
    frame_path = lambda: compute_features(pd.DataFrame([ROW], columns=COLUMNS), fs, ds).to_numpy()  # noqa: E731
    raw_path = lambda: feature_matrix({c: [ROW[i]] for i, c in enumerate(COLUMNS)}, fs, ds)[1]  # noqa: E731
    np.testing.assert_array_equal(frame_path(), raw_path())
    frame_ms = min(timeit.repeat(frame_path, number=CALLS, repeat=3)) / CALLS * 1e3
    raw_ms = min(timeit.repeat(raw_path, number=CALLS, repeat=3)) / CALLS * 1e3
    print(f"{date.today()} · {platform.machine()} · {os.cpu_count()} cores · Python {platform.python_version()}")
    print(f"DataFrame path: {frame_ms:.3f} ms per row; raw-row path: {raw_ms:.3f} ms per row; ratio {frame_ms / raw_ms:.1f}x")


if __name__ == "__main__":
    main()
