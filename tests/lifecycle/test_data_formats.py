"""Data as CSV or Parquet, one file or a folder of partitions, read the same way by every stage."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from credit_risk.generate import generate
from specops.core.digests import file_digest
from specops.errors import StageFailed
from tests.lifecycle.conftest import ROWS

DATASET_FILE = "specs/data/credit-applications.yaml"


def as_partitions(project: Path) -> Path:
    """The project's data as one Parquet file per region (data/credit/region=<r>/part-0.parquet)."""
    frame = pd.read_csv(project / "data" / "credit.csv", dtype={"region": "str", "gender": "str"})
    folder = project / "data" / "credit"
    for region, rows in frame.groupby("region"):
        (folder / f"region={region}").mkdir(parents=True)
        rows.to_parquet(folder / f"region={region}" / "part-0.parquet", index=False)
    (project / "data" / "credit.csv").unlink()
    spec = project / DATASET_FILE
    spec.write_text(spec.read_text().replace("  path: data/credit.csv\n", "  path: data/credit\n  format: parquet\n", 1))
    # The example's generate step writes data/credit.csv; this project's data is already there.
    pipeline = project / "specs/pipelines/training.yaml"
    text = pipeline.read_text()
    pipeline.write_text(text[:text.index("  steps:\n")] + text[text.index("  triggers:\n"):])
    return folder


def test_a_folder_of_parquet_partitions_is_validated_and_featurised_as_one_table(project: Path, run):
    folder = as_partitions(project)
    run("validate", "features")
    validation = json.loads((project / "artifacts/credit-risk-training/validation.json").read_text())
    assert validation["success"] and validation["rows"] == ROWS
    features = pd.read_parquet(project / "artifacts/credit-risk-training/features.parquet")
    assert len(features) == ROWS and {"region_north", "region_west"} <= set(features.columns)
    # The drift baseline and lineage digest a folder by its files: a changed partition changes it.
    before = file_digest(folder, "md5")
    generate(10, seed=1).to_parquet(folder / "region=north" / "part-1.parquet", index=False)
    assert file_digest(folder, "md5") not in (None, before)


def test_an_unreadable_parquet_file_is_named_with_its_dataset(project: Path, run):
    folder = as_partitions(project)
    (folder / "region=south" / "part-0.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(StageFailed, match=r"dataset data/credit: cannot read data/credit/region=south/part-0.parquet as Parquet"):
        run("validate")
