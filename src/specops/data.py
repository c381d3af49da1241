"""Reading a Dataset spec's data: one CSV or Parquet file, or a folder of partitions (every `*.csv` or
`*.parquet` file in it and its sub-folders, in path order, e.g. `date=2026-01-01/part-0.parquet`).

Validation, features, the drift baseline and the model's baseline all read through here, so a folder is
checked, featurised and summarised exactly as one file is.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow

from specops.errors import StageFailed
from specops.spec.kinds import DatasetSpec


def load_dataset(root: Path, dataset: DatasetSpec) -> pd.DataFrame:
    path = root / dataset.path
    files = data_files(path, dataset.format)
    if not files:
        where = f"no *.{dataset.format} file in folder {dataset.path}" if path.is_dir() else f"data file {dataset.path} does not exist"
        raise StageFailed(f"{where} (looked in {path})")
    frames = [_read(file, dataset, root) for file in files]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def data_files(path: Path, format: str) -> list[Path]:
    """The file itself, or a folder's partitions of the declared format (hidden files such as .dvc left out)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    return sorted(p for p in path.rglob(f"*.{format}") if p.is_file() and not p.name.startswith("."))


def _read(file: Path, dataset: DatasetSpec, root: Path) -> pd.DataFrame:
    shown = file.relative_to(root).as_posix() if file.is_relative_to(root) else str(file)
    if dataset.format == "parquet":
        try:
            return pd.read_parquet(file)
        except (pyarrow.ArrowException, OSError, ValueError) as exc:
            raise StageFailed(f"dataset {dataset.path}: cannot read {shown} as Parquet: {exc}") from None
    # Declared string columns stay strings even when every value looks like a number (codes, zip codes).
    text_columns = {name: "str" for name, column in dataset.columns.items() if column.type == "str"}
    try:
        return pd.read_csv(file, dtype=text_columns)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise StageFailed(f"dataset {dataset.path}: cannot read {shown} as CSV: {exc}") from None
