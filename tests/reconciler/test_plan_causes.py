"""The plan says why a pipeline's outputs are stale: each changed parameter, spec field, data and code file.

A real DVC repository with two trivial stages (no training: seconds), then one change of each kind.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from dvc.repo import Repo

from specops.backends.dvc_causes import FEEDS_TRAINING, pipeline_causes, pipeline_status
from specops.plan.format import to_json, to_markdown, to_text
from specops.plan.model import Action, Cause, Change, Operation, Plan
from specops.spec.kinds import Dataset
from specops.spec.loader import Source, SpecSet

from tests.conftest import run

# The interpreter by its path: the stages run in-process (DVC's shell), whatever PATH the test has.
DVC_YAML = f"""\
stages:
  p-train:
    cmd: {sys.executable} code/train.py
    deps:
    - code/train.py
    - data/rows.csv
    - specs/data.yaml
    params:
    - train
    outs:
    - out/model.txt
  p-register:
    cmd: {sys.executable} -c "open('out/registered.txt', 'w').write('ok')"
    deps:
    - out/model.txt
    outs:
    - out/registered.txt
"""
PARAMS = "train:\n  seed: 1\n  fixed:\n    n_estimators: 100\n    min_samples_leaf: 5\n"
TRAIN = "import pathlib\npathlib.Path('out').mkdir(exist_ok=True)\npathlib.Path('out/model.txt').write_text('m')\n"


def scratch(root: Path) -> Path:
    (root / "code").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "code" / "train.py").write_text(TRAIN)
    (root / "data" / "rows.csv").write_text("a,b\n1,2\n")
    (root / "params.yaml").write_text(PARAMS)
    (root / "specs").mkdir()
    (root / "specs" / "data.yaml").write_text("min_value: 500\n")
    (root / "dvc.yaml").write_text(DVC_YAML)
    run(["git", "init", "-q"], root)
    # In process: two fewer interpreters importing DVC (seconds each on a busy machine).
    Repo.init(str(root)).close()
    with Repo(str(root)) as repo, contextlib.chdir(root):  # stage commands run in the cwd
        repo.reproduce()
    return root


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory) -> Path:
    return scratch(tmp_path_factory.mktemp("causes") / "proj")


@pytest.fixture
def root(reproduced: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(reproduced, tmp_path / "proj"))


def dataset(min_value: int) -> Dataset:
    return Dataset.model_validate({"apiVersion": "specops/v1", "kind": "Dataset", "metadata": {"name": "d"}, "spec": {
        "path": "data/rows.csv", "target": "b", "columns": {"a": {"type": "int"}, "b": {"type": "int"}},
        "expectations": [{"expect_table_row_count_to_be_between": {"min_value": min_value}}]}})


def causes_of(root: Path, specs: SpecSet | None = None, stored: dict | None = None) -> tuple[Cause, ...]:
    pipeline = SimpleNamespace(name="p")  # all pipeline_status and pipeline_causes read of a Pipeline
    status = pipeline_status(root, [pipeline])  # type: ignore[list-item]
    return pipeline_causes(root, pipeline, status, specs or SpecSet(root, "local"), stored or {})  # type: ignore[arg-type]


def test_each_changed_input_is_named_with_its_old_and_new_value(root: Path):
    assert causes_of(root) == ()

    (root / "params.yaml").write_text(PARAMS.replace("n_estimators: 100", "n_estimators: 150"))
    (root / "code" / "train.py").write_text(TRAIN + "# tuned\n")
    (root / "data" / "rows.csv").write_text("a,b\n1,2\n3,4\n")
    causes = {(c.stage, c.kind, c.path): c for c in causes_of(root)}

    params = causes[("p-train", "params", "train.fixed.n_estimators")]
    assert (params.old, params.new) == (100, 150)
    assert ("p-train", "params", "train.seed") not in causes  # unchanged leaves of the section stay out
    code, data = causes[("p-train", "code", "code/train.py")], causes[("p-train", "data", "data/rows.csv")]
    for cause in (code, data):
        assert cause.old and cause.new and cause.old != cause.new and len(cause.new) == 8  # md5 before and after
    assert all(kind in FEEDS_TRAINING for _, kind, _ in causes)


def test_a_changed_spec_file_names_the_fields_that_differ_from_the_last_apply(root: Path):
    (root / "specs" / "data.yaml").write_text("min_value: 600\n")
    specs = SpecSet(root, "local")
    specs.add(dataset(600), Source("specs/data.yaml", {}, []))
    applied = {"Dataset/d": {"spec": dataset(500).spec.model_dump(mode="json")}}
    [cause] = causes_of(root, specs, applied)
    assert (cause.stage, cause.kind) == ("p-train", "spec")
    assert cause.path == "Dataset/d spec.expectations[0].expect_table_row_count_to_be_between.min_value"
    assert (cause.old, cause.new) == (500, 600)
    # Never applied (a fresh CI runner has no state): the file itself is named.
    [unknown] = causes_of(root, specs, {})
    assert (unknown.kind, unknown.path, unknown.note) == ("spec", "specs/data.yaml", "modified")


def test_a_missing_output_is_not_a_change_of_what_feeds_training(root: Path):
    """A fresh clone has no DVC-cached outputs: the plan names them, the review does not retrain for them."""
    (root / "out" / "model.txt").unlink()
    causes = causes_of(root)
    assert causes and all(c.kind in ("outputs", "missing") for c in causes)
    assert not any(c.kind in FEEDS_TRAINING for c in causes)


def test_text_json_and_markdown_plans_carry_the_causes():
    cause = Cause("p-train", "params", "train.fixed.n_estimators", 100, 150)
    op = Operation(Action.UPDATE, "Pipeline", "p", {"outputs": "stale (train)"}, {"outputs": "current"},
                   (Change("outputs", "stale (train)", "current"),), causes=(cause,))
    plan = Plan("local", "local", [op])
    assert "because p-train: params train.fixed.n_estimators: 100 → 150" in to_text(plan)
    assert json.loads(to_json(plan))["operations"][0]["causes"] == [
        {"stage": "p-train", "kind": "params", "path": "train.fixed.n_estimators", "old": 100, "new": 150, "note": ""}]
    row = next(line for line in to_markdown(plan).splitlines() if line.startswith("| `~` | `Pipeline/p`"))
    assert "because `p-train: params train.fixed.n_estimators: 100 → 150`" in row
