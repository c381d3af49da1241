"""The loader reports every problem at once, each as file:line:col: field: message."""
from __future__ import annotations

import codecs
import shutil
from pathlib import Path

import pytest

from specops.errors import SpecErrors
from specops.spec import Gate, Pipeline, load_specs
from specops.spec.checks import find_cycle
from specops.spec.loader import MAX_BYTES, load_files
from tests.conftest import specops

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
    assert ("specs/data/credit-applications.yaml:31:12: spec.version: "
            "Input should be a valid integer, unable to parse string as an integer (got 'one')") in errors
    assert "specs/data/credit-applications.yaml:32:3: spec.colour: unknown field" in errors
    assert any(e.startswith("specs/data/credit-applications.yaml:34:12: spec.refresh: invalid cron expression '0 25 * * *'")
               for e in errors)


def test_dangling_gate_metric_names_the_check(project: Path):
    edit(project / "specs/gates/promotion.yaml", "metric: roc_auc", "metric: roc_auc_score")
    [error] = errors_of(project)
    assert error.startswith("specs/gates/promotion.yaml:11:7: spec.checks[1].metric: "
                            "no step of pipeline 'credit-risk-training' produces metric 'roc_auc_score'")


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


def test_a_data_path_the_file_system_cannot_hold_is_an_error_not_a_crash(project: Path):
    edit(project / "specs/data/credit-applications.yaml", "path: data/credit.csv", f"path: data/{'9' * 5000}.csv")
    errors = errors_of(project)
    assert any("spec.path: data file path cannot be used: File name too long" in e for e in errors)


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


def test_load_files_loads_specs_given_in_memory():
    contents = {p.relative_to(REPO).as_posix(): p.read_bytes() for p in sorted((REPO / "specs").rglob("*.yaml"))}
    assert {d.key for d in load_files(REPO, contents).documents} == {d.key for d in load_specs(REPO).documents}


# Hostile or broken files: each ends in a SpecError that says where, among the other files' errors.

LATIN1 = b"apiVersion: specops/v1\nkind: Gate\nmetadata: {name: caf\xe9}\nspec: {}\n"
# Nine levels of nine aliases: under 1 KB, 9**9 values if expanded.
BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join(['*' + alias] * 9)}]\n" for alias, name in zip("abcdefgh", "bcdefghi"))


def test_a_byte_that_is_not_utf8_is_reported_at_its_line_and_column(project: Path):
    (project / "specs/x.yaml").write_bytes(LATIN1)
    (project / "specs/y.yaml").write_bytes("kind: Gizmo\n# déjà vu ".encode() + b"\xe9\n")
    (project / "specs/z.yaml").write_text("apiVersion: specops/v1\nkind: Gizmo\nmetadata: {name: g}\nspec: {}\n")
    errors = errors_of(project)
    assert "specs/x.yaml:3:21: not UTF-8 (byte 0xe9 at line 3, column 21)" in errors
    assert "specs/y.yaml:2:11: not UTF-8 (byte 0xe9 at line 2, column 11)" in errors  # columns count characters, not bytes
    assert any(e.startswith("specs/z.yaml:2:1: kind: unknown kind 'Gizmo'") for e in errors)


def test_binary_files_utf16_and_control_characters_are_named(project: Path):
    (project / "specs/logo.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (project / "specs/junk.yaml").write_bytes(bytes(range(0x80, 0x100)))
    (project / "specs/utf16.yaml").write_bytes("apiVersion: specops/v1\n".encode("utf-16"))
    (project / "specs/escape.yaml").write_bytes(b"apiVersion: specops/v1\nkind: Gate\nmetadata: {name: a\x1bb}\n")
    errors = errors_of(project)
    assert "specs/logo.yaml:3:1: a binary file, not YAML text (NUL byte at line 3, column 1)" in errors
    assert "specs/junk.yaml:1:1: not UTF-8 (byte 0x80 at line 1, column 1)" in errors
    assert "specs/utf16.yaml:1:1: not UTF-8 but UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8" in errors
    assert "specs/escape.yaml:3:19: YAML: character '\\x1b' is not allowed" in errors


def test_a_utf8_byte_order_mark_is_accepted_and_takes_no_column(project: Path):
    project_file = project / "specs/project.yaml"  # its kind line first, right after the mark
    project_file.write_text("kind: Project\n" + project_file.read_text().replace("kind: Project\n", "", 1))
    for path in (project / "specs").rglob("*.yaml"):
        path.write_bytes(codecs.BOM_UTF8 + path.read_bytes())
    assert "Project/credit-risk" in {d.key for d in load_specs(project).documents}
    (project / "specs/x.yaml").write_bytes(codecs.BOM_UTF8 + b"apiVersion: specops/v2\nkind: Gate\nmetadata: {name: x}\nspec: {}\n")
    assert errors_of(project) == ["specs/x.yaml:1:1: apiVersion: expected apiVersion: specops/v1"]


def test_a_file_that_cannot_be_read_is_an_error(project: Path, monkeypatch):
    # chmod 000 does not stop root, and CI containers run as root: refuse the open instead.
    locked, real_open = project / "specs/gates/promotion.yaml", Path.open

    def open_(path: Path, *args, **kwargs):
        if path == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_)
    assert "specs/gates/promotion.yaml:1:1: cannot read the file: Permission denied" in errors_of(project)


def test_aliases_are_refused_where_they_appear_so_an_alias_bomb_costs_nothing(project: Path):
    (project / "specs/bomb.yaml").write_text(BOMB)
    (project / "specs/alias.yaml").write_text("apiVersion: specops/v1\nkind: Gate\nmetadata: &m {name: x}\nspec: {labels: *m}\n")
    (project / "specs/merge.yaml").write_text("apiVersion: specops/v1\nkind: Gate\nmetadata: {name: y}\nspec:\n  <<: {checks: []}\n")
    errors = errors_of(project)
    assert "specs/bomb.yaml:2:8: YAML: aliases are not supported (*a); write the value out" in errors
    assert "specs/alias.yaml:4:16: YAML: aliases are not supported (*m); write the value out" in errors
    assert "specs/merge.yaml:5:3: YAML: merge keys (<<) are not supported; write the keys out" in errors


def test_deep_nesting_is_an_error_not_a_recursion_error(project: Path):
    (project / "specs/flow.yaml").write_text("[" * 10_000)
    (project / "specs/block.yaml").write_text("- " * 10_000 + "x\n")
    (project / "specs/mapping.yaml").write_text("".join(" " * i + "a:\n" for i in range(100)))
    errors = errors_of(project)
    assert any(e.startswith("specs/flow.yaml:1:") and "nest" in e for e in errors)  # libyaml stops at 1,000 levels
    assert "specs/block.yaml:1:129: YAML: nested more than 64 levels deep" in errors
    assert "specs/mapping.yaml:65:65: YAML: nested more than 64 levels deep" in errors


def test_a_huge_file_and_a_long_flat_one_end_in_one_error_each(project: Path):
    (project / "specs/huge.yaml").write_bytes(b"# padding\n" * (MAX_BYTES // 10 + 1))
    (project / "specs/flat.yaml").write_text("[" + "1, " * 30_000 + "1]\n")
    assert errors_of(project) == [
        "specs/flat.yaml:1:59999: YAML: more than 20,000 values in one file",
        "specs/huge.yaml:1:1: file larger than 256 KiB, the limit for a spec file",
    ]


def test_a_document_with_thousands_of_schema_errors_lists_the_first_hundred(project: Path):
    checks = ", ".join(["1"] * 5_000)
    (project / "specs/many.yaml").write_text(
        f"apiVersion: specops/v1\nkind: Gate\nmetadata: {{name: many}}\nspec: {{checks: [{checks}]}}\n")
    errors = [e for e in errors_of(project) if e.startswith("specs/many.yaml:")]
    assert len(errors) == 101
    assert "specs/many.yaml:1:1: 4,900 more errors in this document (the first 100 are listed)" in errors


@pytest.mark.parametrize("value,message", [
    ("!!int", "not a valid int: ''"),
    ("!!bool maybe", "not a valid bool: 'maybe'"),
    ("2001-13-45", "not a valid timestamp: '2001-13-45' (month must be in 1..12)"),
    ("9" * 5_000, f"not a valid int: '{'9' * 40}' (Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits)"),
    ("!!set {a, b}", "unsupported tag !!set"),
    ("!!python/object/apply:os.system [ls]", "unsupported tag !!python/object/apply:os.system"),
    ("!local x", "unsupported tag !local"),
])
def test_a_value_yaml_cannot_build_is_an_error_at_its_position(project: Path, value: str, message: str):
    (project / "specs/x.yaml").write_text(f"apiVersion: specops/v1\nkind: Gate\nmetadata: {{name: x}}\nspec:\n  pipeline: {value}\n")
    assert errors_of(project) == [f"specs/x.yaml:5:13: YAML: {message}"]


def test_a_template_expression_that_fails_is_an_error_at_its_line(project: Path):
    edit(project / "specs/pipelines/training.yaml", "{{ values.max_parallel }}", "{{ values.max_parallel / 0 }}")
    (project / "specs/tags.yaml").write_text("{{ 1 }}" * 1_001)
    errors = errors_of(project)  # with those of the specs that name the pipeline, now missing
    assert "specs/pipelines/training.yaml:13:1: template: ZeroDivisionError: division by zero" in errors
    assert "specs/tags.yaml:1:1: template: 1,001 tags, more than the limit of 1,000" in errors


def test_a_long_templated_file_keeps_its_source_line_numbers(project: Path):
    """Past what difflib can match quickly, rendered lines are followed back to source lines in order."""
    pipeline = project / "specs/pipelines/training.yaml"
    prod_only = "{% if env.name == 'prod' %}\n" + "  # prod only\n" * 250 + "{% endif %}\n"
    edit(pipeline, "spec:\n", "spec:\n" + prod_only + "".join(f"  # note {i}\n" for i in range(300)))
    edit(pipeline, "  gate: promotion", "  gate: nope")
    pipeline.write_text(pipeline.read_text() + "# rendered for {{ env.name }}\n")
    line = pipeline.read_text().splitlines().index("  gate: nope") + 1
    [error] = errors_of(project, "local")
    assert error.startswith(f"specs/pipelines/training.yaml:{line}:3: spec.gate: no Gate named 'nope'"), error


def test_validate_reports_hostile_files_and_exits_1_without_a_traceback(declarations: Path):
    (declarations / "specs/latin1.yaml").write_bytes(LATIN1)
    (declarations / "specs/bomb.yaml").write_text(BOMB)
    (declarations / "specs/deep.yaml").write_text("- " * 10_000)
    result = specops("validate", cwd=declarations)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert "specs/latin1.yaml:3:21: not UTF-8 (byte 0xe9 at line 3, column 21)" in output
    assert "specs/bomb.yaml:2:8: YAML: aliases are not supported (*a); write the value out" in output
    assert "specs/deep.yaml:1:129: YAML: nested more than 64 levels deep" in output
