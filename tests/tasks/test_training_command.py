"""The team's own training code: a command that saves an MLflow model (LightGBM here) and reports its metrics."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from specops.core.paths import RunPaths
from specops.errors import StageFailed
from specops.lifecycle.stages import STAGES
from specops.registry import connect
from specops.spec.loader import load_specs
from tests.tasks.conftest import run_stages

SCRIPT = '''\
"""Train a LightGBM classifier on what specops hands over; save it as an MLflow model, report its metrics."""
import json
import os

import lightgbm
import mlflow.lightgbm
import pandas as pd
from mlflow.models import infer_signature
from sklearn.metrics import f1_score

features, target = json.loads(os.environ["SPECOPS_FEATURES"]), os.environ["SPECOPS_TARGET"]
train = pd.read_parquet(os.environ["SPECOPS_TRAIN_DATA"])
test = pd.read_parquet(os.environ["SPECOPS_TEST_DATA"])
params = json.loads(os.environ["SPECOPS_PARAMS"])
model = lightgbm.LGBMClassifier(**params, random_state=int(os.environ["SPECOPS_SEED"]), verbose=-1)
model.fit(train[features], train[target])
mlflow.lightgbm.save_model(model, os.environ["SPECOPS_MODEL_DIR"],
                           signature=infer_signature(train[features], model.predict(train[features])))
with open(os.environ["SPECOPS_METRICS_FILE"], "w") as out:
    json.dump({"f1_macro": f1_score(test[target], model.predict(test[features]), average="macro"),
               "trees": model.n_estimators_}, out)
'''

PARAMS = """\
lgbm:
  seed: 4
  test_size: 0.3
  fixed: {n_estimators: 15, min_child_samples: 5}
  sweep:
    num_leaves: [4, 8]
"""


@pytest.fixture
def lightgbm_project(wine: Path) -> Path:
    (wine / "train_lgbm.py").write_text(SCRIPT)
    (wine / "params.yaml").write_text(PARAMS)
    specs = wine / "specs/task.yaml"
    specs.write_text(specs.read_text().replace("  params: train\n", f"""  params: lgbm
  training:
    command: {sys.executable} train_lgbm.py
    deps: [train_lgbm.py]
"""))
    return wine


def test_a_training_command_trains_each_trial_and_its_lightgbm_model_is_gated_and_registered(lightgbm_project):
    run_stages(lightgbm_project, *STAGES)
    paths = RunPaths(lightgbm_project, "wine-training")
    evaluation = json.loads(paths.evaluation.read_text())["candidates"]
    assert len(evaluation) == 2 and all("log_loss" in c["metrics"] for c in evaluation.values())  # native flavour
    client = connect(load_specs(lightgbm_project))
    for candidate in evaluation.values():
        run = client.get_run(candidate["run_id"])
        assert run.data.metrics["trees"] == 15 and run.data.params["num_leaves"] in ("4", "8")
    champion = client.get_model_version_by_alias("wine", "champion")
    model_files = {a.path for a in client.list_artifacts(champion.run_id, "model")}
    assert "model/MLmodel" in model_files
    mlmodel = Path(client.download_artifacts(champion.run_id, "model/MLmodel", str(lightgbm_project)))
    assert "lightgbm:" in mlmodel.read_text()
    assert not (paths.base / "trials").exists()


def test_a_command_that_reports_no_selection_metric_is_named_and_nothing_registers(lightgbm_project):
    script = lightgbm_project / "train_lgbm.py"
    script.write_text(script.read_text().replace('"f1_macro": ', '"f1": '))
    with pytest.raises(StageFailed, match=r"training command `.*train_lgbm.py` \(candidate c\d+, .*did not report the "
                                          r"selection metric 'f1_macro' \(it reported: f1, trees\); nothing was registered"):
        run_stages(lightgbm_project, "features", "train")
    assert connect(load_specs(lightgbm_project)).search_registered_models() == []


def test_a_command_that_saves_no_model_is_named(lightgbm_project):
    script = lightgbm_project / "train_lgbm.py"
    script.write_text(script.read_text().replace("mlflow.lightgbm.save_model(", "print(").replace(
        "signature=infer_signature(train[features], model.predict(train[features])))", ")"))
    with pytest.raises(StageFailed, match=r"candidate c\d+.*saved no MLflow model: save one to \$SPECOPS_MODEL_DIR"):
        run_stages(lightgbm_project, "features", "train")


def test_a_failing_command_shows_its_output(lightgbm_project):
    (lightgbm_project / "train_lgbm.py").write_text("import sys\nprint('no GPU here', file=sys.stderr)\nsys.exit(3)\n")
    with pytest.raises(StageFailed, match=r"\(candidate c\d+, .*\) exited 3; nothing was registered\nno GPU here"):
        run_stages(lightgbm_project, "features", "train")
