"""Where a monitor's baseline comes from: the register stage's summary of the training rows, the champion, a data set."""
from __future__ import annotations

import json

import mlflow
import pytest

from credit_risk.generate import generate, to_csv
from specops.errors import SpecopsError
from specops.lifecycle.context import StageContext
from specops.lifecycle.register import training_baseline
from specops.registry import connect, use_experiment
from specops.monitoring.baseline import BASELINE_FILE, champion_baseline, monitor_baseline
from specops.spec import Pipeline, load_specs
from specops.spec.monitors import Monitor

INPUTS = {"income", "debt_ratio", "credit_score", "age", "employment_years"}


def test_the_register_stage_summarises_the_raw_inputs_on_the_training_rows_only(project):
    specs = load_specs(project)
    ctx = StageContext.of(specs, specs.get(Pipeline, "credit-risk-training"))
    ctx.paths.split.parent.mkdir(parents=True)
    ctx.paths.split.write_text(json.dumps({"seed": 0, "test_size": 0.2, "test_rows": list(range(1000))}))
    summary = training_baseline(ctx)
    # Not the label, not the sensitive column; types from the Dataset spec (region is categorical).
    assert summary.rows == 4000 and set(summary.numeric) == INPUTS and set(summary.categorical) == {"region"}


def test_a_champion_baseline_is_the_summary_stored_with_the_champion_version(project, tmp_path):
    specs = load_specs(project)
    ctx = StageContext.of(specs, specs.get(Pipeline, "credit-risk-training"))
    ctx.paths.split.parent.mkdir(parents=True)
    ctx.paths.split.write_text(json.dumps({"seed": 0, "test_size": 0.2, "test_rows": []}))
    stored = training_baseline(ctx).save(tmp_path / BASELINE_FILE)
    client = connect(specs)
    with pytest.raises(SpecopsError, match="no champion yet"):
        champion_baseline(specs, "credit-risk")

    # What the register stage leaves in MLflow: the version's run holds registry/v<version>/baseline.npz.
    use_experiment(specs, "training")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(stored), "registry/v1")
    client.create_registered_model("credit-risk")
    version = client.create_model_version("credit-risk", f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias("credit-risk", "champion", version.version)
    assert set(champion_baseline(specs, "credit-risk").numeric) == INPUTS

    monitor = specs.get(Monitor, "credit-drift")
    narrowed = monitor.model_copy(update={"spec": monitor.spec.model_copy(update={
        "baseline": monitor.spec.baseline.model_copy(update={"dataset": None, "champion": "credit-risk"}),
        "features": ["income", "region"]})})
    summary = monitor_baseline(specs, narrowed)
    assert set(summary.numeric) == {"income"} and set(summary.categorical) == {"region"}


def test_a_dataset_baseline_is_summarised_once_per_file_content(project):
    specs = load_specs(project)
    monitor = specs.get(Monitor, "credit-drift")
    cache = project / ".specops" / "monitors" / "credit-drift"
    assert monitor_baseline(specs, monitor).rows == monitor_baseline(specs, monitor).rows == 5000
    assert len(list(cache.glob("baseline-*.npz"))) == 1
    (project / "data" / "credit.csv").write_text(to_csv(generate(800, seed=1)), encoding="utf-8")
    assert monitor_baseline(specs, monitor).rows == 800  # new data, new summary
    assert len(list(cache.glob("baseline-*.npz"))) == 2
