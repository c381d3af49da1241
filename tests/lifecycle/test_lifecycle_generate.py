import io

import pandas as pd

from credit_risk.generate import generate, main, to_csv


def test_the_same_seed_writes_byte_identical_files(tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    main(["--rows", "300", "--seed", "5", "--out", str(first)])
    main(["--rows", "300", "--seed", "5", "--out", str(second)])
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != to_csv(generate(300, seed=6)).encode()


def test_rows_match_the_dataset_spec():
    frame = pd.read_csv(io.StringIO(to_csv(generate(2000, seed=1))))
    assert list(frame.columns) == ["income", "debt_ratio", "credit_score", "age", "employment_years", "region", "gender", "default"]
    assert frame["credit_score"].between(300, 850).all() and frame["age"].between(18, 100).all()
    assert frame["debt_ratio"].between(0, 10).all() and frame["employment_years"].between(0, 60).all()
    assert set(frame["region"]) == {"north", "south", "east", "west"} and set(frame["gender"]) == {"F", "M"}
    assert 0.2 < frame["default"].mean() < 0.5


def test_drift_shifts_the_named_feature_only():
    reference, drifted = generate(4000, seed=2), generate(4000, seed=2, drift="income")
    assert drifted["income"].median() < 0.85 * reference["income"].median()
    pd.testing.assert_series_equal(drifted["region"], reference["region"])
    north = generate(4000, seed=2, drift="region")["region"].eq("north").mean()
    assert north > reference["region"].eq("north").mean() + 0.15
