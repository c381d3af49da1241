"""Multiclass and regression through the lifecycle's stages: the task's metrics, gate, fairness, card, registry."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from specops.core.paths import RunPaths
from specops.lifecycle.stages import STAGES
from specops.registry import connect
from specops.spec.loader import load_specs
from tests.tasks.conftest import run_stages


def test_a_multiclass_pipeline_registers_with_its_metrics_gate_and_card(wine):
    run_stages(wine, *STAGES)
    paths = RunPaths(wine, "wine-training")
    evaluation = json.loads(paths.evaluation.read_text())
    assert evaluation["task"] == "multiclass"
    for candidate in evaluation["candidates"].values():
        metrics = candidate["metrics"]
        assert {"accuracy", "f1_macro", "f1_weighted", "log_loss", "min_class_recall", "recall_barolo",
                "recall_grignolino", "recall_barbera", "error_rate_gap"} <= set(metrics)
        assert metrics["min_class_recall"] == min(metrics[f"recall_{c}"] for c in ("barolo", "grignolino", "barbera"))
        assert set(candidate["classes"]) == {"barolo", "grignolino", "barbera"}
        assert set(candidate["by_group"]) == {"east", "west"} and "error_rate" in candidate["by_group"]["east"]
    gate = json.loads(paths.gate.read_text())
    assert gate["passed"] and gate["selection"]["metric"] == "f1_macro" and gate["selection"]["goal"] == "maximize"
    client = connect(load_specs(wine))
    champion = client.get_model_version_by_alias("wine", "champion")
    assert champion.tags["lineage.task"] == "multiclass"
    card = paths.model_card.read_text()
    assert "task multiclass" in card and "recall_barbera >= 0.7" in card and "| site | accuracy | error rate | rows |" in card


def test_a_regression_pipeline_minimizes_rmse_and_measures_error_by_group(diabetes):
    run_stages(diabetes, *STAGES)
    paths = RunPaths(diabetes, "diabetes-training")
    evaluation = json.loads(paths.evaluation.read_text())
    for candidate in evaluation["candidates"].values():
        metrics = candidate["metrics"]
        assert {"rmse", "mae", "r2", "mae_gap"} <= set(metrics) and "accuracy" not in metrics
        assert metrics["rmse"] >= metrics["mae"] > 0
        by_group = candidate["by_group"]
        assert metrics["mae_gap"] == pytest.approx(abs(by_group["F"]["mae"] - by_group["M"]["mae"]))
    gate = json.loads(paths.gate.read_text())
    scores = {c: e["metrics"]["rmse"] for c, e in evaluation["candidates"].items()}
    assert gate["selection"]["goal"] == "minimize" and gate["selected"] == min(scores, key=scores.get)
    client = connect(load_specs(diabetes))
    assert client.get_model_version_by_alias("diabetes", "champion").tags["lineage.task"] == "regression"
    assert "| sex | mae | rows |" in paths.model_card.read_text()


@pytest.mark.parametrize("fixture, estimator, params, metric", [
    ("wine", "lightgbm.LGBMClassifier", "{n_estimators: 10, min_child_samples: 5}", "f1_macro"),
    ("diabetes", "xgboost.XGBRegressor", "{n_estimators: 10, max_depth: 3}", "rmse"),
])
def test_lightgbm_and_xgboost_are_plain_estimators(request, fixture, estimator, params, metric):
    root = request.getfixturevalue(fixture)
    (root / "params.yaml").write_text(f"train:\n  seed: 3\n  test_size: 0.3\n  fixed: {params}\n  sweep:\n"
                                      "    learning_rate: [0.1, 0.3]\n")
    specs = root / "specs/task.yaml"
    specs.write_text(specs.read_text().replace("  params: train\n", f"  estimator: {estimator}\n  params: train\n"))
    run_stages(root, "features", "train", "evaluate")
    evaluation = json.loads(RunPaths(root, f"{fixture}-training").evaluation.read_text())["candidates"]
    assert len(evaluation) == 2 and all(metric in c["metrics"] for c in evaluation.values())
    meta = json.loads((RunPaths(root, f"{fixture}-training").candidate("c01") / "meta.json").read_text())
    requirements = connect(load_specs(root)).download_artifacts(meta["run_id"], "model/requirements.txt", str(root))
    assert estimator.split(".")[0].replace("xgboost", "xgboost-cpu") in Path(requirements).read_text()
