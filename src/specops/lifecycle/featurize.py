"""Stage `features`: compute the feature set and store it, versioned, as parquet.

The file holds the model inputs plus the target and sensitive columns (needed
for evaluation, never fed to the model); its schema metadata names the feature
set, its version and owner, and which columns are which.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from specops.errors import SpecopsError, StageFailed
from specops.features.transforms import compute_features
from specops.lifecycle.context import StageContext
from specops.lifecycle.production import with_rows as with_production_rows
from specops.data import load_dataset
from specops.core.paths import RunPaths

METADATA_KEY = b"specops.feature_set"


@dataclass(frozen=True)
class FeatureTable:
    frame: pd.DataFrame
    features: list[str]
    target: str
    sensitive: list[str]
    info: dict  # feature set name, version, owner, dataset

    @property
    def inputs(self) -> pd.DataFrame:
        return self.frame[self.features]


def run(ctx: StageContext) -> None:
    dataset, feature_set = ctx.dataset.spec, ctx.feature_set.spec
    raw, joined = with_production_rows(ctx.root, ctx.pipeline, load_dataset(ctx.root, dataset))
    if joined:
        print(f"{joined} labelled production rows join the {len(raw) - joined} rows of dataset {ctx.dataset.name}")
    features = compute_features(raw, feature_set, dataset)
    extra = [dataset.target, *dataset.sensitive]
    clash = sorted(set(features.columns) & set(extra))
    if clash:
        raise SpecopsError(f"feature set {ctx.feature_set.name}: feature(s) {', '.join(clash)} clash with the target or a sensitive column")
    table = pd.concat([features, raw[extra]], axis=1)
    info = {
        "name": ctx.feature_set.name,
        "version": feature_set.version,
        "owner": feature_set.owner,
        "dataset": ctx.dataset.name,
        "features": list(features.columns),
        "target": dataset.target,
        "sensitive": list(dataset.sensitive),
    }
    write_feature_table(ctx.paths.features, table, info)
    print(f"features {ctx.feature_set.name} v{feature_set.version}: {features.shape[1]} columns for {len(table)} rows")


def write_feature_table(path: Path, frame: pd.DataFrame, info: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), METADATA_KEY: json.dumps(info).encode()}
    pq.write_table(table.replace_schema_metadata(metadata), path)


def read_feature_table(paths: RunPaths) -> FeatureTable:
    if not paths.features.exists():
        raise StageFailed(f"{paths.rel(paths.features)} is missing: run the features stage first")
    table = pq.read_table(paths.features)
    info = json.loads(table.schema.metadata[METADATA_KEY])
    return FeatureTable(table.to_pandas(), info["features"], info["target"], info["sensitive"], info)
