"""Feature transforms: the one function training and serving both call.

`compute_features` is pure and row-independent: a row's features depend on
that row alone, never on the rest of the frame. That is what lets serving call
it on a single request and get exactly what training saw. Categories for
one-hot encoding therefore come from the Dataset spec's `allowed` list, not
from the values present in the data.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from specops.errors import SpecopsError
from specops.spec.kinds import DatasetSpec, Feature, FeatureSetSpec

Columns = dict[str, pd.Series]


def compute_features(frame: pd.DataFrame, feature_set: FeatureSetSpec, dataset: DatasetSpec) -> pd.DataFrame:
    """Return the model inputs for every row of `frame`, columns in feature-set order, all float64."""
    missing = sorted({src for f in feature_set.features for src in f.sources} - set(frame.columns))
    if missing:
        raise SpecopsError(f"input is missing column(s) {', '.join(missing)} needed by the feature set")
    columns: Columns = {}
    for feature in feature_set.features:
        columns.update(TRANSFORMS[feature.transform](frame, feature, dataset))
    # One dtype for every feature, so a 1-row request and a batch give the model identical input types.
    return pd.DataFrame(columns, index=frame.index).astype("float64")


def _output_names(feature: Feature, dataset: DatasetSpec) -> list[str]:
    if feature.transform == "one_hot":
        return [f"{feature.name}_{category}" for category in _categories(feature, dataset)]
    return [feature.name]


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(frame[column], errors="coerce").astype("float64")


def _identity(frame: pd.DataFrame, feature: Feature, dataset: DatasetSpec) -> Columns:
    return {feature.name: _numeric(frame, feature.sources[0])}


def _log1p(frame: pd.DataFrame, feature: Feature, dataset: DatasetSpec) -> Columns:
    return {feature.name: np.log1p(_numeric(frame, feature.sources[0]))}


def _ratio(frame: pd.DataFrame, feature: Feature, dataset: DatasetSpec) -> Columns:
    numerator, denominator = (_numeric(frame, c) for c in feature.sources)
    # A zero denominator has no meaningful ratio: NaN, which tree models route as missing.
    return {feature.name: numerator / denominator.replace(0.0, np.nan)}


def _difference(frame: pd.DataFrame, feature: Feature, dataset: DatasetSpec) -> Columns:
    first, second = (_numeric(frame, c) for c in feature.sources)
    return {feature.name: first - second}


def _product(frame: pd.DataFrame, feature: Feature, dataset: DatasetSpec) -> Columns:
    first, second = (_numeric(frame, c) for c in feature.sources)
    return {feature.name: first * second}


def _clip(frame: pd.DataFrame, feature: Feature, dataset: DatasetSpec) -> Columns:
    values = _numeric(frame, feature.sources[0])
    return {feature.name: values.clip(lower=feature.params.get("lower"), upper=feature.params.get("upper"))}


def _bucketize(frame: pd.DataFrame, feature: Feature, dataset: DatasetSpec) -> Columns:
    values = _numeric(frame, feature.sources[0])
    buckets = np.digitize(values.to_numpy(), sorted(feature.params["edges"])).astype("float64")
    return {feature.name: pd.Series(np.where(values.isna(), np.nan, buckets), index=frame.index)}


def _one_hot(frame: pd.DataFrame, feature: Feature, dataset: DatasetSpec) -> Columns:
    values = frame[feature.sources[0]]
    return {
        name: (values == category).astype("float64")
        for name, category in zip(_output_names(feature, dataset), _categories(feature, dataset))
    }


def _categories(feature: Feature, dataset: DatasetSpec) -> list:
    column = dataset.columns[feature.sources[0]]
    if not column.allowed:
        raise SpecopsError(
            f"feature {feature.name!r}: one_hot needs the dataset column {feature.sources[0]!r} to declare `allowed` values"
        )
    return list(column.allowed)


Transform = Callable[[pd.DataFrame, Feature, DatasetSpec], Columns]
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
