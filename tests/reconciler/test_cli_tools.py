"""Small commands: render --check, schema, env check."""
from __future__ import annotations

import json
from pathlib import Path

from specops.envcheck import drift
from specops.schema import write_schemas
from tests.conftest import REPO, make_project, specops


def test_committed_schemas_match_the_kinds(tmp_path: Path):
    for path in write_schemas(tmp_path):
        committed = REPO / "schemas" / path.name
        assert committed.exists(), f"run `specops schema`: {path.name} missing"
        assert json.loads(committed.read_text()) == json.loads(path.read_text()), f"run `specops schema`: {path.name} stale"


def test_every_example_spec_points_editors_at_its_schema():
    for spec in (REPO / "specs").rglob("*.yaml"):
        text = spec.read_text()
        for document in text.split("\n---\n"):
            kind = next(line.split(":", 1)[1].strip() for line in document.splitlines() if line.startswith("kind:"))
            assert f"schemas/{kind}.json" in document, f"{spec}: {kind} document lacks its yaml-language-server line"


def test_render_check_fails_when_dvc_yaml_is_stale(tmp_path: Path):
    root = make_project(tmp_path / "proj")
    assert specops("render", "--check", cwd=root).returncode == 0
    params = root / "specs/pipelines/training.yaml"
    params.write_text(params.read_text().replace("--rows 1500", "--rows 1600"))
    stale = specops("render", "--check", cwd=root)
    assert stale.returncode == 1 and "dvc.yaml is stale" in stale.stderr
    plan = specops("plan", cwd=root)
    assert plan.returncode == 1 and "dvc.yaml is out of date" in plan.stderr
    assert specops("render", cwd=root).returncode == 0
    assert specops("render", "--check", cwd=root).returncode == 0


def test_env_check_reports_packages_that_differ_from_the_lock(tmp_path: Path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("click==0.0.1 \\\n    --hash=sha256:00\npydantic==999.0\nnot-a-real-package-xyz==1.0\n")
    problems = drift(lock)
    assert any(p.startswith("click: locked 0.0.1, installed ") for p in problems)
    assert "not-a-real-package-xyz: locked 1.0, not installed" in problems
    assert len(problems) == 3


def test_env_check_passes_on_the_projects_own_environment():
    result = specops("env", "check", cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_render_for_an_azureml_environment_writes_cli_v2_yaml(tmp_path: Path):
    out = tmp_path / "azureml"
    result = specops("render", "--env", "dev", "--out", str(out), cwd=REPO)
    assert result.returncode == 0, result.stderr
    written = {p.relative_to(out).as_posix() for p in out.rglob("*.yaml")}
    assert {"jobs/credit-risk-training.yaml", "components/credit_risk_training_train.yaml"} <= written
    assert "experimental class" not in result.stderr
    assert specops("render", "--env", "dev", "--check", cwd=REPO).returncode == 1
