from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from credit_risk.generate import generate
from specops.errors import SpecopsError
from specops.features.transforms import compute_features
from specops.spec.kinds import Dataset, DatasetSpec, FeatureSet, FeatureSetSpec
from specops.spec.loader import load_specs

REPO = Path(__file__).resolve().parents[2]

DATASET = DatasetSpec.model_validate({
    "path": "data.csv",
    "target": "y",
    "columns": {
        "a": {"type": "float"},
        "b": {"type": "float"},
        "colour": {"type": "str", "allowed": ["red", "green", "blue"]},
        "y": {"type": "int"},
    },
})


def feature_set(*features: dict) -> FeatureSetSpec:
    return FeatureSetSpec.model_validate({
        "dataset": "d", "version": 1, "owner": "me", "refresh": "0 2 * * *", "features": list(features),
    })


def test_each_transform_computes_its_documented_value():
    frame = pd.DataFrame({"a": [3.0, 0.0], "b": [2.0, 0.0], "colour": ["blue", "red"], "y": [0, 1]})
    features = compute_features(frame, feature_set(
        {"name": "a"},
        {"name": "log_a", "transform": "log1p", "inputs": ["a"]},
        {"name": "a_per_b", "transform": "ratio", "inputs": ["a", "b"]},
        {"name": "a_minus_b", "transform": "difference", "inputs": ["a", "b"]},
        {"name": "a_times_b", "transform": "product", "inputs": ["a", "b"]},
        {"name": "a_clipped", "transform": "clip", "inputs": ["a"], "params": {"lower": 1, "upper": 2.5}},
        {"name": "a_bucket", "transform": "bucketize", "inputs": ["a"], "params": {"edges": [1, 2]}},
        {"name": "colour", "transform": "one_hot"},
    ), DATASET)
    assert list(features.columns) == [
        "a", "log_a", "a_per_b", "a_minus_b", "a_times_b", "a_clipped", "a_bucket", "colour_red", "colour_green", "colour_blue",
    ]
    assert features.iloc[0].tolist() == pytest.approx([3.0, 1.3862944, 1.5, 1.0, 6.0, 2.5, 2.0, 0.0, 0.0, 1.0])
    assert pd.isna(features.loc[1, "a_per_b"])  # zero denominator
    assert features.loc[1, ["a_clipped", "a_bucket", "colour_red"]].tolist() == [1.0, 0.0, 1.0]


def test_one_hot_columns_come_from_the_spec_not_the_data():
    only_green = pd.DataFrame({"a": [1.0], "b": [1.0], "colour": ["green"], "y": [0]})
    features = compute_features(only_green, feature_set({"name": "colour", "transform": "one_hot"}), DATASET)
    assert list(features.columns) == ["colour_red", "colour_green", "colour_blue"]
    assert features.iloc[0].tolist() == [0.0, 1.0, 0.0]


def test_a_single_row_gets_exactly_the_features_it_gets_in_the_batch():
    specs = load_specs(REPO)
    feature_spec = specs.get(FeatureSet, "credit-features").spec
    dataset = specs.get(Dataset, feature_spec.dataset).spec
    batch = generate(50, seed=11)
    batch_features = compute_features(batch, feature_spec, dataset)
    for row in (0, 17, 49):
        single = compute_features(batch.iloc[[row]].reset_index(drop=True), feature_spec, dataset)
        pd.testing.assert_frame_equal(single, batch_features.iloc[[row]].reset_index(drop=True))


def test_a_missing_input_column_is_named():
    with pytest.raises(SpecopsError, match="missing column.*b"):
        compute_features(pd.DataFrame({"a": [1.0]}), feature_set({"name": "d", "transform": "difference", "inputs": ["a", "b"]}), DATASET)


def test_raw_rows_give_the_same_matrix_as_the_frame():
    """Serving's path (lists of raw values) and training's (a DataFrame) must agree bit for bit."""
    from specops.features.transforms import feature_matrix

    frame = pd.DataFrame({"income": [52000.0, None, "n/a", 0.0], "debt_ratio": [0.3, 7.5, 1.0, -1.0],
                          "credit_score": [700, 650, None, 800], "age": [30, 41, 55, 22],
                          "employment_years": [3.0, 0.0, 12.5, 1.0], "region": ["north", "west", "south", "mars"]})
    specs = load_specs(REPO)
    fs, ds = specs.get(FeatureSet, "credit-features").spec, specs.get(Dataset, "credit-applications").spec
    expected = compute_features(frame, fs, ds)
    names, matrix = feature_matrix({c: frame[c].tolist() for c in frame.columns}, fs, ds)
    assert names == list(expected.columns)
    np.testing.assert_array_equal(matrix, expected.to_numpy())
    assert np.isnan(matrix[1, 0]) and np.isnan(matrix[2, 0])  # missing and non-numeric income
    assert matrix[3, names.index("region_north"):].sum() == 0  # an unknown category sets no column
