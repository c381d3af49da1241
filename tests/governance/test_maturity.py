"""The maturity model reads the specs and the repository: adding a practice moves the level."""
from __future__ import annotations

import shutil
from pathlib import Path

from specops.governance.maturity import assess, report
from specops.spec import load_specs
from tests.conftest import REPO

def test_example_repository_level_and_next_steps(tmp_path: Path):
    for name in ("specs", "params.yaml", "dvc.yaml"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, tmp_path / name)
    assessment = assess(load_specs(tmp_path))
    assert assessment.level == 2  # pipeline, tracking, data contract; no CI yet in this copy
    assert "CI/CD (GitHub Actions or Azure DevOps)" in assessment.missing_for_next()

    # With CI the example's Endpoint (canary), Monitor (retrains) and SLO count: level 4, and what level 5 needs.
    (tmp_path / "azure-pipelines.yml").write_text("stages: []\n")
    assessment = assess(load_specs(tmp_path))
    assert assessment.level == 4
    assert assessment.missing_for_next() == ["A/B experimentation (ab or bandit rollout)", "cost governance (infrastructure as code)"]
    text = report(assessment)
    assert text.startswith("maturity level 4 of 6: managed") and "[x] SLA enforcement (SLO spec)" in text
