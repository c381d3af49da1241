"""Projects for the other task types, built from data sets bundled with scikit-learn, by specs alone.

wine (178 rows, three cultivars) is the multiclass project; diabetes (442 rows, disease progression, a number)
the regression one. Each gets a sensitive column (`site`, `sex`) so fairness by group is measured too.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from specops.lifecycle.stages import run_stage
from specops.spec.kinds import Pipeline
from specops.spec.loader import load_specs

PROJECT = """apiVersion: specops/v1
kind: Project
metadata: {name: tasks}
spec: {}
"""

WINE = """apiVersion: specops/v1
kind: Dataset
metadata: {name: wine}
spec:
  path: data/wine.csv
  target: cultivar
  sensitive: [site]
  columns:
    alcohol: {type: float, min: 0}
    malic_acid: {type: float, min: 0}
    flavanoids: {type: float, min: 0}
    color_intensity: {type: float, min: 0}
    proline: {type: float, min: 0}
    site: {type: str, allowed: [east, west]}
    cultivar: {type: str, allowed: [barolo, grignolino, barbera]}
---
apiVersion: specops/v1
kind: FeatureSet
metadata: {name: wine-features}
spec:
  dataset: wine
  version: 1
  owner: wine@example.com
  refresh: "@daily"
  features:
    - {name: alcohol}
    - {name: malic_acid}
    - {name: flavanoids}
    - {name: color_intensity}
    - {name: log_proline, transform: log1p, inputs: [proline]}
---
apiVersion: specops/v1
kind: Gate
metadata: {name: wine-gate}
spec:
  checks:
    - {metric: f1_macro, min: 0.8}
    - {metric: min_class_recall, min: 0.7}
    - {metric: recall_barbera, min: 0.7}
    - {metric: log_loss, max: 0.8}
    - {metric: error_rate_gap, max: 0.3}
    - {metric: f1_macro, compare_to: champion, min: -0.05}
---
apiVersion: specops/v1
kind: Pipeline
metadata: {name: wine-training}
spec:
  task: multiclass
  dataset: wine
  feature_set: wine-features
  params: train
  gate: wine-gate
  model_name: wine
"""

DIABETES = """apiVersion: specops/v1
kind: Dataset
metadata: {name: diabetes}
spec:
  path: data/diabetes.csv
  target: progression
  sensitive: [sex]
  columns:
    age: {type: float}
    bmi: {type: float}
    bp: {type: float}
    s5: {type: float}
    sex: {type: str, allowed: [F, M]}
    progression: {type: float, min: 0}
---
apiVersion: specops/v1
kind: FeatureSet
metadata: {name: diabetes-features}
spec:
  dataset: diabetes
  version: 1
  owner: clinic@example.com
  refresh: "@daily"
  features:
    - {name: age}
    - {name: bmi}
    - {name: bp}
    - {name: s5}
---
apiVersion: specops/v1
kind: Gate
metadata: {name: diabetes-gate}
spec:
  checks:
    - {metric: r2, min: 0.2}
    - {metric: rmse, max: 70}
    - {metric: mae_gap, max: 15}
    - {metric: rmse, compare_to: champion, max: 2}
---
apiVersion: specops/v1
kind: Pipeline
metadata: {name: diabetes-training}
spec:
  task: regression
  dataset: diabetes
  feature_set: diabetes-features
  params: train
  gate: diabetes-gate
  model_name: diabetes
"""

PARAMS = """\
train:
  seed: 3
  test_size: 0.3
  fixed: {n_estimators: 15, min_samples_leaf: 3}
  sweep:
    max_depth: [3, 6]
"""

CULTIVARS = np.array(["barolo", "grignolino", "barbera"])


def write_wine(path: Path) -> None:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame = frame[["alcohol", "malic_acid", "flavanoids", "color_intensity", "proline", "target"]].copy()
    frame["site"] = np.random.default_rng(5).choice(["east", "west"], len(frame))
    frame["cultivar"] = CULTIVARS[frame.pop("target").to_numpy()]
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def write_diabetes(path: Path) -> None:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame = frame[["age", "bmi", "bp", "s5", "sex", "target"]].rename(columns={"target": "progression"})
    frame["sex"] = np.where(frame["sex"] > 1.5, "F", "M")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def task_project(root: Path, specs: str, write: Callable[[Path], None], data: str) -> Path:
    (root / "specs").mkdir(parents=True)
    (root / "specs" / "project.yaml").write_text(PROJECT)
    (root / "specs" / "task.yaml").write_text(specs)
    (root / "params.yaml").write_text(PARAMS)
    write(root / data)
    return root


@pytest.fixture
def wine(tmp_path: Path) -> Path:
    return task_project(tmp_path / "wine", WINE, write_wine, "data/wine.csv")


@pytest.fixture
def diabetes(tmp_path: Path) -> Path:
    return task_project(tmp_path / "diabetes", DIABETES, write_diabetes, "data/diabetes.csv")


def run_stages(root: Path, *stages: str) -> None:
    """Run stages of the project's one pipeline in order, reloading the specs first (tests edit them)."""
    specs = load_specs(root)
    [pipeline] = specs.of_kind(Pipeline)
    for stage in stages:
        run_stage(stage, specs, pipeline)
