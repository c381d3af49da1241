"""The stages end to end on a real (temporary) project: Great Expectations, sklearn and MLflow all run for real."""
import json

import pandas as pd
import pytest

from specops.errors import SpecopsError, StageFailed
from specops.registry import describe
from specops.core.paths import RunPaths
from specops.lifecycle.stages import STAGES
from specops.registry import connect
from specops.spec.kinds import Pipeline
from specops.spec.loader import load_specs

MODEL = "credit-risk"
PIPELINE = "credit-risk-training"


def registered_models(root):
    return connect(load_specs(root)).search_registered_models()


def test_a_passing_run_registers_a_champion_with_lineage_and_card(project, run):
    run(*STAGES)
    client = connect(load_specs(project))
    first = client.get_model_version_by_alias(MODEL, "champion")
    assert set(first.aliases) == {"champion", "challenger"}
    assert first.tags["lineage.feature_set"] == "credit-features@v1"
    assert first.tags["lineage.data_path"] == "data/credit.csv" and len(first.tags["lineage.data_md5"]) == 32
    assert first.tags["lineage.gate_passed"] == "true"

    paths = RunPaths(project, PIPELINE)
    assert all(out.exists() for stage in STAGES for out in paths.outputs(stage))
    # Train logs the selection metric (what an Azure ML sweep ranks trials by): on each candidate's run,
    # as evaluate then computes it, and the best on the execution's run (the sweep trial's run on Azure ML).
    evaluation = json.loads(paths.evaluation.read_text())["candidates"]
    scores = {c: e["metrics"]["roc_auc"] for c, e in evaluation.items()}
    for candidate, score in scores.items():
        meta = json.loads((paths.candidate(candidate) / "meta.json").read_text())
        history = client.get_metric_history(meta["run_id"], "roc_auc")
        assert [m.value for m in history] == [pytest.approx(score)] * 2  # train's, then evaluate's
        assert meta["model_uri"] == f"runs:/{meta['run_id']}/model"  # not MLflow 3's logged models: Azure has none
    assert client.get_run(meta["parent_run_id"]).data.metrics["roc_auc"] == pytest.approx(max(scores.values()))
    card = paths.model_card.read_text()
    for check in ("accuracy >= 0.7", "parity_diff <= 0.08", "p95_latency_ms <= 350", "accuracy - champion >= -0.01"):
        assert check in card
    assert "no champion yet" in card

    described = describe(load_specs(project), MODEL)
    assert described["version"] == first.version and described["model_card"] == card
    assert described["lineage"]["data"]["md5"] == first.tags["lineage.data_md5"]
    assert described["lineage"]["params"]["n_estimators"] == 20


def test_an_equal_retrain_becomes_challenger_but_not_champion(project, run):
    run(*STAGES)
    run("train", "evaluate", "gate", "register")
    client = connect(load_specs(project))
    assert client.get_model_version_by_alias(MODEL, "champion").version == 1
    assert client.get_model_version_by_alias(MODEL, "challenger").version == 2
    gate = json.loads(RunPaths(project, PIPELINE).gate.read_text())
    versus_champion = next(c for c in gate["checks"] if c["compare_to"] == "champion")
    assert versus_champion["value"] == 0.0 and versus_champion["note"] == "vs champion v1"
    with pytest.raises(SpecopsError, match="no alias 'staging'"):
        describe(load_specs(project), f"{MODEL}@staging")


def test_a_failing_expectation_stops_the_pipeline_and_names_the_bad_values(project, run):
    data = project / "data" / "credit.csv"
    frame = pd.read_csv(data)
    frame.loc[[3, 10, 20], "credit_score"] = 900
    frame.to_csv(data, index=False)
    with pytest.raises(StageFailed) as failure:
        run(*STAGES)
    message = str(failure.value)
    assert "column credit_score" in message and "expect_column_values_to_be_between" in message
    assert "900" in message and "3 of 1500 rows" in message
    paths = RunPaths(project, PIPELINE)
    assert json.loads(paths.validation.read_text())["success"] is False
    assert not paths.features.exists() and not paths.registration.exists()
    assert registered_models(project) == []


def test_a_missing_data_file_is_named(project, run):
    (project / "data" / "credit.csv").unlink()
    with pytest.raises(StageFailed, match="data file data/credit.csv does not exist"):
        run("validate")


def test_an_unknown_stage_lists_the_known_ones(run):
    with pytest.raises(SpecopsError, match="unknown stage 'deploy'; expected one of validate, features"):
        run("deploy")


def test_a_set_parameter_leaves_the_sweep_for_one_trial(project):
    """Azure ML runs each sweep trial as `stage train --set max_depth=8`: one candidate, that value."""
    from specops.lifecycle.context import StageContext
    from specops.lifecycle.search import grid_points
    from specops.lifecycle.train import load_params, search_space

    specs = load_specs(project)
    ctx = StageContext.of(specs, specs.get(Pipeline, PIPELINE), {"max_depth": 8})
    params = load_params(ctx)
    [point] = grid_points(search_space(ctx, params))
    candidate = {**params.fixed, **point}
    assert candidate["max_depth"] == 8 and candidate["n_estimators"] == 20
