"""Feature transforms: the one function training and serving both call.

`compute_features` is pure and row-independent: a row's features depend on
that row alone, never on the rest of the frame. That is what lets serving call
it on a single request and get exactly what training saw. Categories for
one-hot encoding therefore come from the Dataset spec's `allowed` list, not
from the values present in the data.

The transforms work on numpy columns: serving calls `feature_matrix` on the
rows of a request directly, without building a DataFrame (which costs more
than a small model's predict).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from specops.errors import SpecopsError
from specops.spec.kinds import DatasetSpec, Feature, FeatureSetSpec

Arrays = dict[str, np.ndarray]


def compute_features(frame: pd.DataFrame, feature_set: FeatureSetSpec, dataset: DatasetSpec) -> pd.DataFrame:
    """Return the model inputs for every row of `frame`, columns in feature-set order, all float64."""
    names, matrix = feature_matrix({c: frame[c].to_numpy() for c in frame.columns}, feature_set, dataset)
    return pd.DataFrame(matrix, columns=names, index=frame.index)


def feature_matrix(columns: Mapping[str, Sequence[Any]], feature_set: FeatureSetSpec, dataset: DatasetSpec) -> tuple[list[str], np.ndarray]:
    """The features of raw input columns: (names, float64 matrix with one row per input row)."""
    missing = sorted({src for f in feature_set.features for src in f.sources} - set(columns))
    if missing:
        raise SpecopsError(f"input is missing column(s) {', '.join(missing)} needed by the feature set")
    outputs: Arrays = {}
    for feature in feature_set.features:
        outputs.update(TRANSFORMS[feature.transform](columns, feature, dataset))
    # One dtype for every feature, so a 1-row request and a batch give the model identical input types.
    rows = len(next(iter(columns.values()))) if columns else 0
    matrix = np.column_stack(list(outputs.values())) if outputs else np.empty((rows, 0))
    return list(outputs), matrix.astype("float64", copy=False)


def _numeric(values: Sequence[Any]) -> np.ndarray:
    try:
        return np.asarray(values, dtype="float64")  # None becomes NaN
    except (TypeError, ValueError):  # text that is not a number: missing, as pandas' coerce does
        return pd.to_numeric(pd.Series(values, dtype="object"), errors="coerce").to_numpy(dtype="float64")


def _source(columns: Mapping[str, Sequence[Any]], feature: Feature, index: int = 0) -> np.ndarray:
    return _numeric(columns[feature.sources[index]])


def _identity(columns, feature: Feature, dataset: DatasetSpec) -> Arrays:
    return {feature.name: _source(columns, feature)}


def _log1p(columns, feature: Feature, dataset: DatasetSpec) -> Arrays:
    with np.errstate(invalid="ignore", divide="ignore"):
        return {feature.name: np.log1p(_source(columns, feature))}


def _ratio(columns, feature: Feature, dataset: DatasetSpec) -> Arrays:
    numerator, denominator = _source(columns, feature, 0), _source(columns, feature, 1)
    # A zero denominator has no meaningful ratio: NaN, which tree models route as missing.
    with np.errstate(invalid="ignore", divide="ignore"):
        return {feature.name: numerator / np.where(denominator == 0.0, np.nan, denominator)}


def _difference(columns, feature: Feature, dataset: DatasetSpec) -> Arrays:
    return {feature.name: _source(columns, feature, 0) - _source(columns, feature, 1)}


def _product(columns, feature: Feature, dataset: DatasetSpec) -> Arrays:
    return {feature.name: _source(columns, feature, 0) * _source(columns, feature, 1)}


def _clip(columns, feature: Feature, dataset: DatasetSpec) -> Arrays:
    values = _source(columns, feature)
    lower, upper = feature.params.get("lower"), feature.params.get("upper")
    return {feature.name: np.clip(values, -np.inf if lower is None else lower, np.inf if upper is None else upper)}


def _bucketize(columns, feature: Feature, dataset: DatasetSpec) -> Arrays:
    values = _source(columns, feature)
    buckets = np.digitize(values, sorted(feature.params["edges"])).astype("float64")
    return {feature.name: np.where(np.isnan(values), np.nan, buckets)}


def _one_hot(columns, feature: Feature, dataset: DatasetSpec) -> Arrays:
    values = np.asarray(columns[feature.sources[0]], dtype="object")
    return {f"{feature.name}_{category}": (values == category).astype("float64") for category in _categories(feature, dataset)}


def _categories(feature: Feature, dataset: DatasetSpec) -> list:
    column = dataset.columns[feature.sources[0]]
    if not column.allowed:
        raise SpecopsError(
            f"feature {feature.name!r}: one_hot needs the dataset column {feature.sources[0]!r} to declare `allowed` values"
        )
    return list(column.allowed)


Transform = Callable[[Mapping[str, Sequence[Any]], Feature, DatasetSpec], Arrays]
TRANSFORMS: dict[str, Transform] = {
    "identity": _identity,
    "log1p": _log1p,
    "ratio": _ratio,
    "difference": _difference,
    "product": _product,
    "clip": _clip,
    "one_hot": _one_hot,
    "bucketize": _bucketize,
}
