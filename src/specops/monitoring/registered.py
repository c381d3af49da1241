"""The registered model a monitor judges: its version by alias, evaluated metrics, stored model baseline, the model itself."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from specops.errors import SpecopsError
from specops.features.transforms import compute_features
from specops.registry import artifact_dir, connect, run_metrics, version_by_alias
from specops.monitoring.model_baseline import ModelBaseline, load_from_run
from specops.spec.kinds import Dataset, FeatureSet, Pipeline
from specops.spec.loader import SpecSet


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    alias: str
    version: str
    run_id: str | None  # None: registered outside a run, so nothing is stored with it
    client: MlflowClient
    pipeline: Pipeline

    def metrics(self) -> dict[str, float]:
        """What the evaluate stage measured for this version on the held-out rows."""
        return run_metrics(self.client, self.client.get_model_version(self.name, self.version))

    def baseline(self) -> ModelBaseline:
        stored = load_from_run(self.client, self.run_id, artifact_dir(self.version)) if self.run_id else None
        if stored is None:
            raise SpecopsError(f"{self.name} v{self.version} has no stored prediction and attribution baseline "
                               f"(registered before specops kept one): retrain it")
        return stored

    def load(self) -> Any:
        import mlflow.sklearn

        try:
            return mlflow.sklearn.load_model(f"models:/{self.name}/{self.version}")
        except Exception as exc:  # MLflow and the flavor raise many types; the signal reports it
            raise SpecopsError(f"cannot load {self.name} v{self.version} as a scikit-learn model: {exc}") from exc

    def features(self, specs: SpecSet, inputs: pd.DataFrame) -> pd.DataFrame:
        """The model's inputs computed from logged raw rows, as serving computes them; incomplete rows dropped."""
        feature_set = specs.require(FeatureSet, self.pipeline.spec.feature_set)
        dataset = specs.require(Dataset, self.pipeline.spec.dataset)
        features = compute_features(inputs.reset_index(drop=True), feature_set.spec, dataset.spec)
        return features[np.isfinite(features.to_numpy()).all(axis=1)]


def registered_model(specs: SpecSet, name: str, alias: str) -> RegisteredModel:
    client = connect(specs)
    version = version_by_alias(client, name, alias)
    if version is None:
        raise SpecopsError(f"model {name!r} has no {alias} yet")
    pipeline = next((p for p in specs.of_kind(Pipeline) if p.spec.model_name == name), None)
    if pipeline is None:
        raise SpecopsError(f"no pipeline registers model {name!r}")
    return RegisteredModel(name, alias, version.version, version.run_id, client, pipeline)
