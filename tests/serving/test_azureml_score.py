"""The Azure ML scoring script in-process: the same predictions as the local scorer, online and in batch."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from specops.render.azureml import serving_settings
from specops.serving import azureml_score
from specops.serving.config import DeploymentConfig, resolve_model
from specops.serving.scorer import Scorer
from specops.spec import load_specs
from tests.serving.conftest import rows


@pytest.fixture(scope="module")
def local_scorer(project: Path) -> Scorer:
    from specops.registry import connect

    specs = load_specs(project)
    config = resolve_model(specs, connect(specs), project / ".specops" / "score-test", DeploymentConfig("blue", "tiny@2"))
    return Scorer(config)


def test_the_scoring_script_answers_as_the_local_scorer(project: Path, local_scorer: Scorer, monkeypatch, tmp_path: Path):
    model_dir = tmp_path / "azureml-models" / "tiny" / "2"
    # Azure ML mounts the registered folder under its own name (`model/`).
    shutil.copytree(local_scorer_model_path(project), model_dir / "model")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir))
    monkeypatch.setenv(azureml_score.SERVING_VARIABLE, serving_settings(load_specs(project), "blue", "tiny@2"))
    monkeypatch.delenv("AZUREML_MDC_CONFIG_PATH", raising=False)
    azureml_score.init()
    frame = rows(20, seed=5)[["income", "score", "region"]]
    body = {"input_data": {"columns": list(frame.columns), "index": list(range(20)), "data": frame.values.tolist()}}
    expected = local_scorer.score(frame.values.tolist())
    assert azureml_score.run(json.dumps(body)) == expected
    csv = tmp_path / "part-0.csv"
    frame.to_csv(csv, index=False)
    batch = azureml_score.run([str(csv)])
    assert list(batch.columns) == ["file", "row", "prediction"] and batch["prediction"].tolist() == expected


def local_scorer_model_path(project: Path) -> Path:
    return project / ".specops" / "score-test" / "models" / "tiny-v2"
