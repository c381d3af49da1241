"""The loader reports every problem at once, each as file:line:col: field: message."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from specops.errors import SpecErrors
from specops.spec import Gate, Pipeline, load_specs
from specops.spec.checks import find_cycle

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "specs", tmp_path / "specs")
    return tmp_path


def errors_of(root: Path, env: str | None = None) -> list[str]:
    with pytest.raises(SpecErrors) as info:
        load_specs(root, env)
    return [str(e) for e in info.value.errors]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_example_specs_are_valid():
    specs = load_specs(REPO)
    assert {d.key for d in specs.documents} >= {"Project/credit-risk", "Pipeline/credit-risk-training", "Gate/promotion"}


def test_unknown_key_wrong_type_and_bad_cron_are_all_reported_with_positions(project: Path):
    data = project / "specs/data/credit-applications.yaml"
    edit(data, "  version: 1\n", "  version: one\n  colour: red\n")
    edit(data, 'refresh: "0 2 * * *"', 'refresh: "0 25 * * *"')
    errors = errors_of(project)
    assert "specs/data/credit-applications.yaml:31:12: spec.version: Input should be a valid integer, unable to parse string as an integer (got 'one')" in errors
    assert "specs/data/credit-applications.yaml:32:3: spec.colour: unknown field" in errors
    assert any(e.startswith("specs/data/credit-applications.yaml:34:12: spec.refresh: invalid cron expression '0 25 * * *'") for e in errors)


def test_dangling_gate_metric_names_the_check(project: Path):
    edit(project / "specs/gates/promotion.yaml", "metric: roc_auc", "metric: roc_auc_score")
    [error] = errors_of(project)
    assert error.startswith("specs/gates/promotion.yaml:11:7: spec.checks[1].metric: no step of pipeline 'credit-risk-training' produces metric 'roc_auc_score'")


def test_dangling_reference_to_a_missing_gate(project: Path):
    edit(project / "specs/pipelines/training.yaml", "gate: promotion", "gate: strict")
    [error] = errors_of(project)
    assert error.startswith("specs/pipelines/training.yaml:17:3: spec.gate: no Gate named 'strict' (known: canary-health, promotion)")


def test_step_cycle_is_an_error(project: Path):
    edit(project / "specs/pipelines/training.yaml", "      outs: [data/credit.csv]\n",
         "      outs: [data/credit.csv]\n      needs: [b]\n    - name: b\n      command: echo b\n      needs: [generate-data]\n")
    errors = errors_of(project)
    assert any("steps form a cycle: generate-data -> b -> generate-data" in e for e in errors)


def test_tabs_duplicate_keys_and_malformed_yaml(project: Path):
    (project / "specs/tab.yaml").write_text("apiVersion: specops/v1\nkind: Gate\nmetadata:\n\tname: x\n")
    (project / "specs/dup.yaml").write_text("apiVersion: specops/v1\nkind: Gate\nmetadata:\n  name: a\n  name: b\nspec: {}\n")
    (project / "specs/broken.yaml").write_text("apiVersion: specops/v1\nkind: [Gate\n")
    errors = errors_of(project)
    assert "specs/tab.yaml:4:1: YAML: tab character; indent with spaces" in errors
    assert any(e.startswith("specs/dup.yaml:5:3: YAML: duplicate key 'name'") for e in errors)
    assert any(e.startswith("specs/broken.yaml:") for e in errors)


def test_missing_data_file_that_no_step_produces(project: Path):
    edit(project / "specs/data/credit-applications.yaml", "path: data/credit.csv", "path: data/nowhere.csv")
    errors = errors_of(project)
    assert any("spec.path: data file 'data/nowhere.csv' does not exist and no pipeline step produces it" in e for e in errors)


def test_unknown_kind_and_environment(project: Path):
    (project / "specs/x.yaml").write_text("apiVersion: specops/v1\nkind: Gizmo\nmetadata: {name: g}\nspec: {}\n")
    assert any("unknown kind 'Gizmo'" in e for e in errors_of(project))
    (project / "specs/x.yaml").unlink()
    assert any("unknown environment 'staging'" in e for e in errors_of(project, "staging"))


def test_literal_secret_in_azure_target_is_rejected(project: Path):
    edit(project / "specs/project.yaml", "subscription_id: ${AZURE_SUBSCRIPTION_ID}", "subscription_id: 0000-1111")
    assert any("spec.environments.dev.target.subscription_id: must be a reference like ${AZURE_SUBSCRIPTION_ID}" in e
               for e in errors_of(project))


def test_jinja_overlay_renders_per_environment_and_keeps_source_lines(project: Path):
    assert load_specs(project, "prod").get(Pipeline, "credit-risk-training").spec.sweep.max_parallel == 8
    assert load_specs(project, "local").get(Pipeline, "credit-risk-training").spec.sweep.max_parallel == 0
    pipeline = project / "specs/pipelines/training.yaml"
    # A block that vanishes in `local` must not shift the line numbers of later errors.
    edit(pipeline, "  selection:\n", "{% if env.name == 'prod' %}\n  # prod only\n{% endif %}\n  selection:\n")
    edit(pipeline, "  gate: promotion", "  gate: nope")
    [error] = errors_of(project, "local")
    assert error.startswith("specs/pipelines/training.yaml:20:3: spec.gate:"), error


def test_template_error_is_reported(project: Path):
    edit(project / "specs/pipelines/training.yaml", "{{ values.max_parallel }}", "{{ values.missing }}")
    errors = errors_of(project)
    assert any(e.startswith("specs/pipelines/training.yaml:") and "template:" in e and "missing" in e for e in errors)


def test_gate_bounds_are_required(project: Path):
    edit(project / "specs/gates/promotion.yaml", "      max: 0.08\n", "\n")
    assert any("spec.checks[2]: a check needs min, max or both" in e for e in errors_of(project))


def test_gate_describe():
    gate = load_specs(REPO).get(Gate, "promotion")
    assert gate.spec.checks[0].describe() == "accuracy >= 0.7"
    assert gate.spec.checks[-1].describe() == "accuracy - champion >= -0.01"


def test_find_cycle():
    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) is None
    assert find_cycle({"a": ["b"], "b": ["a"]}) == ["a", "b", "a"]


def test_tagged_union_errors_point_at_the_document_path(project: Path):
    (project / "specs/endpoint.yaml").write_text("""apiVersion: specops/v1
kind: Endpoint
metadata: {name: scoring}
spec:
  auth_mode: key
  deployments:
    - {name: blue, model: credit-risk@champion, instance_type: Standard_DS3_v2}
  traffic: {blue: 100}
  rollout:
    strategy: canary
    steps:
      - weight: 10
      - bogus: 1
""")
    assert "specs/endpoint.yaml:13:9: spec.rollout.steps[1].bogus: unknown field" in errors_of(project)
