"""Reading a Dataset spec's file."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from specops.errors import StageFailed
from specops.spec.kinds import DatasetSpec


def load_dataset(root: Path, dataset: DatasetSpec) -> pd.DataFrame:
    path = root / dataset.path
    if not path.is_file():
        raise StageFailed(f"data file {dataset.path} does not exist (looked in {path})")
    if dataset.format == "parquet":
        return pd.read_parquet(path)
    # Declared string columns stay strings even when every value looks like a number (codes, zip codes).
    text_columns = {name: "str" for name, column in dataset.columns.items() if column.type == "str"}
    try:
        return pd.read_csv(path, dtype=text_columns)
    except (ValueError, pd.errors.ParserError) as exc:
        raise StageFailed(f"cannot read {dataset.path} as CSV: {exc}") from None
