"""A retraining learns from production: the endpoint's labelled live answers join the Dataset's rows."""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from specops.core.paths import ProjectPaths
from specops.errors import SpecErrors
from specops.lifecycle import production
from specops.registry import connect
from specops.lifecycle.featurize import read_feature_table
from specops.core.paths import RunPaths
from specops.serving.inference_log import InferenceLog
from specops.spec import Pipeline, load_specs
from tests.lifecycle.conftest import PIPELINE, ROWS

APPLICANT = {"income": 41000.0, "debt_ratio": 0.9, "credit_score": 610, "age": 33, "employment_years": 2.5, "region": "south"}


def answer(request_id: str, at: float, shadow: bool = False, deployment: str = "blue", gender: str = "F") -> dict:
    return {"time": at, "request_id": request_id, "row": 0, "deployment": deployment, "shadow": shadow,
            "inputs": APPLICANT, "prediction": 0, **({} if shadow else {"sensitive": {"gender": gender}})}


def log_answers(root: Path, now: float, more: int = 0) -> None:
    """One labelled live answer (and `more`), its mirrored copy, an unlabelled one and a labelled one too old."""
    log = InferenceLog(ProjectPaths(root).endpoint("credit-scoring"), worker=0)
    extra = [f"labelled-{i}" for i in range(more)]
    log.write_requests([
        answer("labelled", now - 60),
        answer("labelled", now - 60, shadow=True, deployment="green"),  # its mirrored copy: the same request
        answer("unlabelled", now - 30),
        answer("stale", now - 8 * 86400),  # older than the example's max_age of P7D
        *(answer(request_id, now - 20, gender="FM"[i % 2]) for i, request_id in enumerate(extra)),  # both groups alike
    ])
    log.write_feedback([{"request_id": "labelled", "label": 1}, {"request_id": "stale", "label": 0},
                        *({"request_id": request_id, "label": 1} for request_id in extra)])


def test_only_labelled_live_answers_within_max_age_are_exported_as_dataset_rows(project: Path):
    specs = load_specs(project)
    pipeline = specs.get(Pipeline, PIPELINE)
    now = time.time()
    log_answers(project, now)
    assert production.export(specs, pipeline, now=now) == 1
    rows = pd.read_csv(ProjectPaths(project).production_rows(PIPELINE))
    assert list(rows.columns) == ["income", "debt_ratio", "credit_score", "age", "employment_years", "region", "gender", "default"]
    assert rows.iloc[0].to_dict() == {**APPLICANT, "gender": "F", "default": 1}


def test_the_pipeline_trains_on_the_dataset_and_the_exported_rows(project: Path, run, capsys):
    specs = load_specs(project)
    pipeline = specs.get(Pipeline, PIPELINE)
    production.ensure(specs, pipeline)  # before any retraining: a header, no rows
    run("validate", "features")
    assert len(read_feature_table(RunPaths(project, PIPELINE)).frame) == ROWS
    log_answers(project, time.time(), more=59)  # enough that some fall in the test split
    production.export(specs, pipeline)
    run("features")
    table = read_feature_table(RunPaths(project, PIPELINE))
    assert len(table.frame) == ROWS + 60 and table.frame[table.target].iloc[-60:].eq(1).all()
    assert "60 labelled production rows join the 1500 rows of dataset credit-applications" in capsys.readouterr().out
    # The rest of the pipeline reads the same rows (register's drift baseline among them) and records them.
    run("train", "evaluate", "gate", "register")
    version = connect(load_specs(project)).get_model_version_by_alias("credit-risk", "champion")
    assert version.tags["lineage.production_rows"] == "60"


@pytest.mark.parametrize("endpoint, message", [
    ("nowhere", "no Endpoint named 'nowhere'"),
    ("other", "endpoint 'other' does not serve model 'credit-risk' (it serves other-model)"),
])
def test_feedback_from_an_endpoint_that_does_not_serve_the_model_is_refused(project: Path, endpoint, message):
    other = project / "specs" / "endpoints" / "other.yaml"
    other.write_text("apiVersion: specops/v1\nkind: Endpoint\nmetadata: {name: other}\nspec:\n"
                     "  deployments:\n    - {name: blue, model: other-model@1}\n  traffic: {blue: 100}\n")
    pipeline = project / "specs" / "pipelines" / "training.yaml"
    pipeline.write_text(pipeline.read_text().replace("endpoint: credit-scoring", f"endpoint: {endpoint}"))
    with pytest.raises(SpecErrors) as raised:
        load_specs(project)
    [error] = [e for e in raised.value.errors if "feedback" in str(e)]
    assert message in str(error) and "training.yaml" in str(error) and "spec.feedback.endpoint" in str(error)


def test_a_version_trained_on_production_rows_names_them_in_its_lineage(project: Path):
    from specops.lifecycle.context import StageContext
    from specops.lifecycle.lineage import lineage_tags
    from specops.lifecycle.register import production_rows

    specs = load_specs(project)
    ctx = StageContext.of(specs, specs.get(Pipeline, PIPELINE), {})
    assert production_rows(ctx) == {}  # no retraining exported rows yet
    log_answers(project, time.time())
    production.export(specs, specs.get(Pipeline, PIPELINE))
    rows = production_rows(ctx)["production_rows"]
    assert rows["rows"] == 1 and rows["endpoint"] == "credit-scoring" and len(rows["md5"]) == 32
    record = {"data": {"path": "data/credit.csv", "md5": "x", "production_rows": rows}, "git": {"commit": "c", "dirty": False},
              "code_sha256": "c", "requirements_lock_sha256": "r", "feature_set": {"name": "f", "version": 1},
              "gate": {"passed": True}}
    tags = lineage_tags(record)
    assert tags["lineage.production_rows_md5"] == rows["md5"] and tags["lineage.production_rows"] == "1"
