"""A task that does not fit its target, its metrics or its signals is a spec error naming file, line and field."""
from __future__ import annotations

from pathlib import Path

import pytest

from specops.errors import SpecErrors, SpecopsError
from specops.spec import Pipeline, load_specs
from tests.tasks.conftest import run_stages


def errors_of(root: Path) -> list[str]:
    with pytest.raises(SpecErrors) as info:
        load_specs(root)
    return [str(e) for e in info.value.errors]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_each_task_defaults_its_estimator_and_selection(wine, diabetes):
    [multiclass] = load_specs(wine).of_kind(Pipeline)
    [regression] = load_specs(diabetes).of_kind(Pipeline)
    assert (multiclass.spec.estimator, multiclass.spec.selection.metric, multiclass.spec.selection.goal) == (
        "sklearn.ensemble.RandomForestClassifier", "f1_macro", "maximize")
    assert (regression.spec.estimator, regression.spec.selection.metric, regression.spec.selection.goal) == (
        "sklearn.ensemble.RandomForestRegressor", "rmse", "minimize")


def test_regression_on_a_text_column_is_named_at_the_task(diabetes):
    specs = diabetes / "specs/task.yaml"
    edit(specs, "progression: {type: float, min: 0}", "progression: {type: str}")
    [error] = errors_of(diabetes)
    line = specs.read_text().splitlines().index("  task: regression") + 1
    assert error.startswith(f"specs/task.yaml:{line}:3: spec.task: task regression needs a numeric target; "
                            "target 'progression' of dataset 'diabetes' is of type str")


def test_binary_on_three_declared_classes_is_an_error(wine):
    edit(wine / "specs/task.yaml", "task: multiclass", "task: binary")
    edit(wine / "specs/task.yaml", "    - {metric: f1_macro, min: 0.8}\n", "")
    errors = errors_of(wine)
    assert any("spec.task: task binary needs two classes; target 'cultivar' of dataset 'wine' allows 3" in e for e in errors)
    # and the gate's multiclass metrics are not produced by a binary pipeline
    assert any("spec.checks[0].metric: no step of pipeline 'wine-training' produces metric 'min_class_recall'" in e
               for e in errors)


def test_a_gate_metric_of_another_task_is_named(diabetes):
    edit(diabetes / "specs/task.yaml", "{metric: r2, min: 0.2}", "{metric: accuracy, min: 0.2}")
    [error] = errors_of(diabetes)
    assert "spec.checks[0].metric: no step of pipeline 'diabetes-training' produces metric 'accuracy'" in error
    assert "rmse" in error and "mae_gap" in error


def test_binary_on_three_classes_found_in_the_data_stops_training_at_the_task(wine):
    """A target declared without `allowed`: only the data shows the classes; nothing is trained or registered."""
    specs = wine / "specs/task.yaml"
    edit(specs, "cultivar: {type: str, allowed: [barolo, grignolino, barbera]}", "cultivar: {type: str}")
    edit(specs, "task: multiclass", "task: binary")
    edit(specs, "    - {metric: min_class_recall, min: 0.7}\n    - {metric: recall_barbera, min: 0.7}\n", "")
    edit(specs, "{metric: f1_macro, min: 0.8}", "{metric: f1, min: 0.8}")
    edit(specs, "error_rate_gap", "parity_diff")
    edit(specs, "{metric: f1_macro, compare_to", "{metric: f1, compare_to")
    with pytest.raises(SpecopsError) as failure:
        run_stages(wine, "features", "train")
    line = specs.read_text().splitlines().index("  task: binary") + 1
    assert str(failure.value).startswith(f"specs/task.yaml:{line}:3: spec.task: task binary needs two classes; "
                                         "target 'cultivar' has 3: ['barbera', 'barolo', 'grignolino']")
    assert not (wine / "artifacts/wine-training/candidates").exists()
