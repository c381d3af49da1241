"""A throw-away copy of the example project: the repository's specs, small data, a small sweep."""
from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from credit_risk.generate import generate, to_csv
from specops.lifecycle.stages import run_stage
from specops.spec.kinds import Pipeline
from specops.spec.loader import load_specs

REPO = Path(__file__).resolve().parents[2]
PIPELINE = "credit-risk-training"
ROWS = 1500
# Small enough to keep the suite fast; two candidates still exercise the parallel sweep and selection.
PARAMS = """\
train:
  seed: 3
  test_size: 0.25
  fixed:
    n_estimators: 20
    min_samples_leaf: 5
  sweep:
    max_depth: [4, 8]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "specs", tmp_path / "specs")
    (tmp_path / "params.yaml").write_text(PARAMS, encoding="utf-8")
    data = tmp_path / "data" / "credit.csv"
    data.parent.mkdir()
    data.write_text(to_csv(generate(ROWS, seed=7)), encoding="utf-8")
    return tmp_path


@pytest.fixture
def run(project: Path) -> Callable[..., None]:
    """Run stages of the project's pipeline in order, reloading the specs first (tests edit them)."""
    def run_stages(*stages: str) -> None:
        specs = load_specs(project)
        pipeline = specs.get(Pipeline, PIPELINE)
        for stage in stages:
            run_stage(stage, specs, pipeline)
    return run_stages
