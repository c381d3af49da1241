"""What every stage needs: the specs it runs for, where it writes, and JSON I/O."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from specops.errors import SpecopsError, StageFailed
from specops.core.paths import RunPaths
from specops.spec.kinds import Dataset, FeatureSet, Gate, Pipeline
from specops.spec.loader import SpecSet


@dataclass(frozen=True)
class StageContext:
    specs: SpecSet
    pipeline: Pipeline
    dataset: Dataset
    feature_set: FeatureSet
    gate: Gate
    paths: RunPaths
    # Parameter values fixed for this run (one sweep trial on Azure ML), overriding params.yaml.
    overrides: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, specs: SpecSet, pipeline: Pipeline, overrides: Mapping[str, Any] | None = None) -> StageContext:
        return cls(
            specs=specs,
            pipeline=pipeline,
            dataset=_referenced(specs, Dataset, pipeline.spec.dataset, pipeline),
            feature_set=_referenced(specs, FeatureSet, pipeline.spec.feature_set, pipeline),
            gate=_referenced(specs, Gate, pipeline.spec.gate, pipeline),
            paths=RunPaths(specs.root, pipeline.name),
            overrides=dict(overrides or {}),
        )

    @property
    def root(self) -> Path:
        return self.specs.root

    @property
    def sensitive_column(self) -> str | None:
        """Fairness metrics use the first declared sensitive column."""
        return next(iter(self.dataset.spec.sensitive), None)


def _referenced(specs: SpecSet, kind: type, name: str, pipeline: Pipeline):
    doc = specs.get(kind, name)
    if doc is None:
        raise SpecopsError(f"pipeline {pipeline.name!r} refers to {kind.__name__} {name!r}, which is not defined")
    return doc


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=_plain) + "\n", encoding="utf-8")


def read_json(paths: RunPaths, path: Path, producer: str) -> Any:
    if not path.exists():
        raise StageFailed(f"{paths.rel(path)} is missing: run the {producer} stage first")
    return json.loads(path.read_text(encoding="utf-8"))


def _plain(value: Any) -> Any:
    """numpy scalars and arrays -> JSON-native values."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
