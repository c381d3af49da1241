"""One deployment's scoring function: raw rows -> the feature set's features -> the model.

Loaded once per worker. The sklearn flavor is called directly: MLflow's pyfunc
wrapper re-checks the schema and copies the frame on every call, which costs
more than a logistic regression's predict. Models without that flavor fall back
to pyfunc. The model signature must name exactly the features the feature set
computes, or the deployment refuses to load (it would score garbage otherwise).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from specops.errors import SpecopsError
from specops.features.transforms import compute_features, feature_matrix
from specops.serving.config import DeploymentConfig, first_line
from specops.serving.fastpath import fast_predict
from specops.serving.schema import InputSchema, Unprocessable
from specops.spec.kinds import DatasetSpec, FeatureSetSpec

_SIGNATURE_TYPES = {"double": "number", "float": "number", "long": "integer", "integer": "integer",
                    "boolean": "boolean", "string": "string"}


class Scorer:
    def __init__(self, config: DeploymentConfig):
        self.feature_set = FeatureSetSpec.model_validate(config.feature_set)
        self.dataset = DatasetSpec.model_validate(config.dataset)
        self.schema = InputSchema.of(self.feature_set, self.dataset, config.out_of_range, config.max_rows)
        if config.model_path is None:  # resolve_model sets it for every model it accepts
            raise SpecopsError(f"deployment {config.name}: model {config.model} has no local copy")
        self.model, self.signature, self._sklearn = _load(Path(config.model_path))
        self._check_features()
        # Follows from scoring bare arrays, whose column order _check_features just proved right.
        warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)
        self._predict = fast_predict(self.model) if self._sklearn else self.model.predict

    def score(self, rows: list[list[Any]]) -> list[Any]:
        """Predictions for `rows` (lists in schema column order), one model call for all of them.

        When the model fails and a row's features explain it (infinite, NaN, or too large for float32),
        raises Unprocessable naming the first such row; any other failure propagates as it came.
        """
        columns = {name: [row[i] for row in rows] for i, name in enumerate(self.schema.columns)}
        names, matrix = feature_matrix(columns, self.feature_set, self.dataset)
        try:
            # The column order was checked against the model at load: hand sklearn the bare array and
            # spare it re-validating feature names on every call (a third of a small model's predict).
            predictions = self._predict(matrix) if self._sklearn else self.model.predict(pd.DataFrame(matrix, columns=names))
        except Exception as exc:  # whose fault? a row whose features no model takes is the request's
            blamed = _blame(names, matrix, exc)
            if blamed is None:
                raise
            raise blamed from None
        return predictions.tolist() if hasattr(predictions, "tolist") else list(predictions)

    def output_schema(self) -> dict[str, Any]:
        outputs = self.signature.outputs.to_dict() if self.signature and self.signature.outputs else []
        kind = outputs[0].get("type") if len(outputs) == 1 else None
        return {"type": _SIGNATURE_TYPES.get(kind, "number")} if kind else {}

    def _check_features(self) -> None:
        empty = pd.DataFrame([[None] * len(self.schema.columns)], columns=self.schema.columns)
        produced = list(compute_features(empty, self.feature_set, self.dataset).columns)
        for source, expected in (("signature", self.signature.inputs.input_names() if self.signature else None),
                                 ("fitted model", list(getattr(self.model, "feature_names_in_", [])) or None)):
            if expected is not None and expected != produced:
                raise SpecopsError(f"the model's {source} expects features {expected} but the feature set computes {produced}")


_FLOAT32_MAX = float(np.finfo(np.float32).max)  # sklearn's trees cast to float32: beyond it is infinity


def _blame(names: list[str], matrix: np.ndarray, exc: Exception) -> Unprocessable | None:
    """An Unprocessable for the first row with a feature value no model takes, if any row has one."""
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(matrix) | (np.abs(matrix) > _FLOAT32_MAX)
    rows = np.flatnonzero(bad.any(axis=1))
    if not rows.size:
        return None
    row = int(rows[0])
    column = int(np.flatnonzero(bad[row])[0])
    return Unprocessable(f"row {row}", f"row {row}: feature {names[column]} is {float(matrix[row, column])}, which the model "
                                       f"cannot score ({first_line(exc)})", row)


def _load(path: Path):
    from mlflow.models import Model

    meta = Model.load(str(path / "MLmodel"))
    if "sklearn" in meta.flavors:
        import mlflow.sklearn

        return mlflow.sklearn.load_model(str(path)), meta.signature, True
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(path)), meta.signature, False
