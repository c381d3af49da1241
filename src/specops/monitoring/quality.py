"""Data quality of the logged inputs (Azure ML's DataQualitySignal): nulls, wrong types, values out of range.

Per feature, each rate is a share of the window's rows:

- `null_value_rate`: missing (None/NaN, or the column absent from a record);
- `data_type_error_rate`: present but not of the Dataset column's type (text in a numeric column,
  3.5 in an `int` column, 1 in a `str` column);
- `out_of_bounds_rate`: of the right type but outside the baseline: below its minimum or above its
  maximum (numerical), or a category the baseline never had (categorical).

A rate above its threshold alerts. Each column is checked with whole-array operations; only a column
pandas could not give one dtype (mixed types, so the log held something odd) is looked at value by value.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from specops.monitoring.drift import BaselineSummary
from specops.spec.signals import NULL_RATE, OUT_OF_BOUNDS_RATE, TYPE_ERROR_RATE, SignalResult

DATA_QUALITY = "data_quality"
ColumnTypes = Mapping[str, str]  # feature -> the Dataset column's type: int, float, str or bool


def data_quality(baseline: BaselineSummary, target: pd.DataFrame, types: ColumnTypes,
                 thresholds: Mapping[str, Mapping[str, float]]) -> SignalResult:
    """Rates per feature of the baseline summary, judged against `thresholds[numerical|categorical]`."""
    rows = len(target)
    table, metrics, alerts = [], {}, []
    features = [(n, "numerical") for n in baseline.numeric] + [(n, "categorical") for n in baseline.categorical]
    for name, kind in features:
        column = target[name] if name in target.columns else pd.Series([None] * rows, dtype=object)
        rates = _rates(column, types[name], _bounds(baseline, name, kind), rows)
        table.append({"feature": name, "type": kind, **rates})
        for metric, value in rates.items():
            metrics[f"{name}.{metric}"] = value
            threshold = thresholds[kind].get(metric)
            if threshold is not None and value > threshold:
                alerts.append(f"{name} {metric} {value:.4g} > {threshold:g}")
    return SignalResult.judged(DATA_QUALITY, metrics, alerts, features=table, rows=rows)


def _bounds(baseline: BaselineSummary, name: str, kind: str) -> tuple[float, float] | set[str]:
    if kind == "numerical":
        base = baseline.numeric[name]
        return base.minimum, base.maximum
    return set(baseline.categorical[name].categories)


def _rates(column: pd.Series, column_type: str, bounds, rows: int) -> dict[str, float]:
    null = column.isna().to_numpy()
    typed = _of_type(column, column_type) & ~null
    outside = _out_of_bounds(column, typed, bounds)
    share = (lambda mask: float(mask.sum() / rows)) if rows else (lambda mask: 0.0)
    return {NULL_RATE: share(null), TYPE_ERROR_RATE: share(~null & ~typed), OUT_OF_BOUNDS_RATE: share(outside)}


def _of_type(column: pd.Series, column_type: str) -> np.ndarray:
    """True where a value has the column's type (nulls are judged separately)."""
    kind = column.dtype.kind
    if column_type == "str":
        return _each(column, lambda v: isinstance(v, str)) if kind == "O" else np.zeros(len(column), bool)
    if column_type == "bool":
        return np.ones(len(column), bool) if kind == "b" else _each(column, lambda v: isinstance(v, (bool, np.bool_)))
    if kind in "iu":
        return np.ones(len(column), bool)
    if kind == "f":
        values = column.to_numpy()
        return values == np.floor(values) if column_type == "int" else np.ones(len(column), bool)
    if kind == "O":
        return _each(column, lambda v: _is_number(v) and (column_type != "int" or float(v).is_integer()))
    return np.zeros(len(column), bool)  # booleans, dates, ...: not numbers


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _each(column: pd.Series, test) -> np.ndarray:
    return np.fromiter((test(v) for v in column), dtype=bool, count=len(column))


def _out_of_bounds(column: pd.Series, typed: np.ndarray, bounds) -> np.ndarray:
    if isinstance(bounds, set):
        return typed & ~column.astype(str).isin(bounds).to_numpy()
    low, high = bounds
    values = pd.to_numeric(column.where(typed), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        return typed & ((values < low) | (values > high))
