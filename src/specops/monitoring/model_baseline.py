"""What a model did on its training rows: the reference for prediction drift and feature-attribution drift.

The register stage computes it once per model version, beside the inputs'
summary (`baseline.npz`): the distribution of the model's predictions (a
one-feature BaselineSummary, so prediction drift is the drift engine run on
one column) and the model's feature attribution (mean |SHAP| per model
feature; permutation importance for models SHAP's TreeExplainer cannot read).
A monitor run then reads the two small files instead of the training data.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.metrics import ndcg_score

from specops.monitoring.drift import BaselineSummary, summarize

PREDICTION = "prediction"  # the one feature of the predictions' summary
PREDICTIONS_FILE = "baseline_predictions.npz"
ATTRIBUTION_FILE = "baseline_attribution.json"
# SHAP on a 100-tree forest takes about 0.7 s per 500 rows; 500 rows rank 10-odd features stably.
ATTRIBUTION_ROWS = 500
PERMUTATION_REPEATS = 5


@dataclass(frozen=True)
class Attribution:
    importance: dict[str, float]  # model feature -> mean |SHAP value| (or permutation importance)
    method: str  # "shap" or "permutation"
    rows: int

    def ranking(self) -> list[str]:
        return sorted(self.importance, key=self.importance.__getitem__, reverse=True)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "rows": self.rows, "importance": self.importance}


@dataclass(frozen=True)
class ModelBaseline:
    predictions: BaselineSummary
    attribution: Attribution

    def save(self, folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        attribution = folder / ATTRIBUTION_FILE
        attribution.write_text(json.dumps(self.attribution.to_dict(), indent=2) + "\n", encoding="utf-8")
        return [self.predictions.save(folder / PREDICTIONS_FILE), attribution]

    @classmethod
    def load(cls, folder: Path) -> ModelBaseline:
        stored = json.loads((folder / ATTRIBUTION_FILE).read_text(encoding="utf-8"))
        return cls(BaselineSummary.load(folder / PREDICTIONS_FILE),
                   Attribution(stored["importance"], stored["method"], stored["rows"]))


def model_baseline(model: Any, features: pd.DataFrame, categorical: bool, seed: int = 0) -> ModelBaseline:
    """The model's predictions and attribution on its training rows (`features`: the model's own inputs)."""
    return ModelBaseline(prediction_summary(model.predict(features), categorical), attribution(model, features, seed))


def prediction_summary(predictions: np.ndarray, categorical: bool) -> BaselineSummary:
    frame = pd.DataFrame({PREDICTION: np.asarray(predictions)})
    return summarize(frame, categorical=[PREDICTION]) if categorical else summarize(frame, numeric=[PREDICTION])


def attribution(model: Any, features: pd.DataFrame, seed: int = 0) -> Attribution:
    """Mean |SHAP| per feature on up to ATTRIBUTION_ROWS rows; permutation importance when SHAP cannot explain the model."""
    sample = features.sample(min(len(features), ATTRIBUTION_ROWS), random_state=seed) if len(features) else features
    values = _tree_shap(model, sample)
    if values is not None:
        return Attribution(dict(zip(features.columns, values.tolist())), "shap", len(sample))
    # Against the model's own predictions: no labels needed, and it measures what the model relies on.
    result = permutation_importance(model, sample, np.asarray(model.predict(sample)), scoring=_agreement,
                                    n_repeats=PERMUTATION_REPEATS, random_state=seed)
    return Attribution(dict(zip(features.columns, result.importances_mean.tolist())), "permutation", len(sample))


def _agreement(model: Any, features: pd.DataFrame, reference: np.ndarray) -> float:
    """How closely the model's answers on (permuted) rows follow its answers on the real ones."""
    predicted = np.asarray(model.predict(features))
    if reference.dtype.kind == "f":  # a regressor: closeness, not equality
        return -float(np.mean((predicted - reference) ** 2))
    return float(np.mean(predicted == reference))


def _tree_shap(model: Any, sample: pd.DataFrame) -> np.ndarray | None:
    import shap  # 4 s to import: only where attributions are computed

    try:
        explainer = shap.TreeExplainer(model)
    except Exception:  # shap raises several types for "not a tree model I know"
        return None
    values = np.abs(np.asarray(explainer.shap_values(sample, check_additivity=False)))
    # Classifiers give (rows, features, classes): average over rows and classes alike.
    return values.mean(axis=0) if values.ndim == 2 else values.mean(axis=(0, 2))


def ndcg(baseline: Attribution, target: Attribution) -> float:
    """NDCG of the target's feature ranking, with the baseline's importances as the relevance of each feature.

    1.0 when the target ranks the features as the baseline does; it falls most when the baseline's most
    important features drop down the ranking. Negative permutation importances count as 0.
    """
    names = list(baseline.importance)
    relevance = np.maximum([baseline.importance[n] for n in names], 0.0)
    scores = np.array([target.importance.get(n, 0.0) for n in names])
    if len(names) < 2 or not relevance.any():
        return 1.0  # one feature, or none that mattered: no ranking to lose
    # Rounded: the same ranking is 1.0, not 0.9999999999999999.
    return round(float(ndcg_score(relevance[None, :], scores[None, :])), 12)


def load_from_run(client, run_id: str, artifact_folder: str) -> ModelBaseline | None:
    """The model baseline the register stage stored in a version's run, or None when it stored none."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            local = [Path(client.download_artifacts(run_id, f"{artifact_folder}/{name}", folder))
                     for name in (PREDICTIONS_FILE, ATTRIBUTION_FILE)]
        except Exception:  # MLflow raises several types for a missing artifact
            return None
        return ModelBaseline.load(local[0].parent)
