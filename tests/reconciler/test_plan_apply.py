"""plan/apply on declarations only (no pipeline run): fast, and every behaviour real."""
from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from specops.project import Project
from specops.core.paths import ProjectPaths
from specops.state.audit import AuditAction, AuditLog
from specops.state.storage import LocalStorage
from specops.state.store import StateStore
from specops.errors import LockHeld, SpecErrors
from specops.plan.format import MARKER, to_json, to_markdown, to_text
from specops.plan.model import Action
from specops.plan.saved import StalePlan
from tests.conftest import specops


def keys(plan) -> list[str]:
    return [f"{op.action.symbol} {op.key}" for op in plan.operations]


def test_first_plan_creates_everything_in_dependency_order(declarations: Path):
    plan = Project(declarations).plan()
    assert keys(plan) == ["+ Project/credit-risk", "+ Dataset/credit-applications", "+ FeatureSet/credit-features", "+ Gate/promotion"]
    assert plan.summary() == "Plan: 4 to create, 0 to update, 0 to delete."


def test_apply_is_idempotent_and_audited(declarations: Path):
    first = Project(declarations).apply()
    assert len(first.applied) == 4
    assert Project(declarations).plan().empty
    assert Project(declarations).apply().applied == []
    entries = list(AuditLog(declarations).entries())
    assert [e["resource"] for e in entries] == first.applied
    for entry in entries:
        assert entry["action"] == "create" and entry["before"] is None and len(entry["after"]) == 16
        assert entry["commit"] and entry["actor"] and entry["env"] == "local"
    # One commit path: each change bumped the state serial once, and its audit line names the serial it made.
    assert [e["serial"] for e in entries] == [1, 2, 3, 4] and Project(declarations).status().serial == 4


def test_audit_actions_are_typed(declarations: Path):
    with pytest.raises(ValueError, match="'promoted' is not a valid AuditAction"):
        AuditLog(declarations).record("promoted", "Endpoint/x")
    assert AuditLog(declarations).record(AuditAction.PROMOTE, "Endpoint/x")["action"] == "promote"


def test_concurrent_writers_never_lose_each_others_commits(declarations: Path):
    """Apply, the controller and rollouts write state from different processes: each commit is kept."""
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_commit_many, args=(str(declarations), w)) for w in range(3)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
    state = StateStore(LocalStorage(ProjectPaths(declarations).state_dir), "local").read()
    assert state.serial == 3 * COMMITS and len(state.resources) == 3 * COMMITS


def test_changing_one_gate_threshold_plans_exactly_that_change(declarations: Path):
    Project(declarations).apply()
    gate = declarations / "specs/gates/promotion.yaml"
    gate.write_text(gate.read_text().replace("min: 0.70", "min: 0.72"))
    plan = Project(declarations).plan()
    [op] = plan.operations
    assert op.action is Action.UPDATE and op.key == "Gate/promotion"
    assert [(c.path, c.old, c.new) for c in op.changes] == [("spec.checks[0].min", 0.7, 0.72)]
    assert "    spec.checks[0].min: 0.7 → 0.72" in to_text(plan)
    Project(declarations).apply()
    [entry] = [e for e in AuditLog(declarations).entries() if e["action"] == "update"]
    assert entry["changed"] == ["spec.checks[0].min"] and entry["before"] != entry["after"]


def test_removed_spec_is_planned_as_delete(declarations: Path):
    Project(declarations).apply()
    (declarations / "specs/gates/promotion.yaml").unlink()
    assert keys(Project(declarations).plan()) == ["- Gate/promotion"]


def test_broken_spec_changes_nothing(declarations: Path):
    Project(declarations).apply()
    state = (declarations / ".specops/state/local.json").read_text()
    audit = (declarations / ".specops/audit.jsonl").read_text()
    gate = declarations / "specs/gates/promotion.yaml"
    gate.write_text(gate.read_text().replace("min: 0.70", "min: high"))
    with pytest.raises(SpecErrors):
        Project(declarations).apply()
    result = specops("apply", cwd=declarations)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "specs/gates/promotion.yaml:10:12: spec.checks[0].min: Input should be a valid number" in result.stderr
    assert (declarations / ".specops/state/local.json").read_text() == state
    assert (declarations / ".specops/audit.jsonl").read_text() == audit


def test_plan_formats_and_detailed_exitcode(declarations: Path):
    plan = Project(declarations).plan()
    data = json.loads(to_json(plan))
    assert data["summary"] == {"create": 4, "update": 0, "delete": 0}
    markdown = to_markdown(plan)
    assert markdown.startswith(MARKER) and "<details>" in markdown and "**Plan: 4 to create" in markdown
    assert specops("plan", "--detailed-exitcode", cwd=declarations).returncode == 2
    specops("apply", cwd=declarations, check=True)
    done = specops("plan", "--detailed-exitcode", cwd=declarations)
    assert done.returncode == 0 and "No changes." in done.stdout


def test_references_are_never_resolved_in_plans(declarations: Path, monkeypatch):
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "11111111-2222-3333-4444-555555555555")
    text = to_json(Project(declarations).plan())
    assert "${AZURE_SUBSCRIPTION_ID}" in text and "11111111" not in text


COMMITS = 20


def _commit_many(root: str, writer: int) -> None:
    store = StateStore(LocalStorage(ProjectPaths(Path(root)).state_dir), "local")
    for i in range(COMMITS):
        store.put(f"Gate/w{writer}-{i}", {"spec": {}}, {})


def _hold_lock(root: str, ready, release) -> None:
    with Project(root).lock("apply --env local"):
        ready.set()
        release.wait(30)


def test_concurrent_apply_fails_at_once_naming_the_holder(declarations: Path):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(declarations), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(LockHeld, match=rf"pid {holder.pid}, .*apply --env local"):
            Project(declarations).apply()
    finally:
        release.set()
        holder.join(30)
    assert len(Project(declarations).apply().applied) == 4


def test_status_lists_applied_resources(declarations: Path):
    Project(declarations).apply()
    result = specops("status", "--format", "json", cwd=declarations, check=True)
    assert set(json.loads(result.stdout)["resources"]) == {
        "Project/credit-risk", "Dataset/credit-applications", "FeatureSet/credit-features", "Gate/promotion"}


# -- plan -out FILE / apply FILE: exactly the reviewed plan ------------------------------------------------------
def _state_and_audit(root: Path) -> tuple[str | None, str | None]:
    files = (root / ".specops/state/local.json", root / ".specops/audit.jsonl")
    return tuple(f.read_text() if f.exists() else None for f in files)  # type: ignore[return-value]


def test_saved_plan_is_applied_as_reviewed(declarations: Path, tmp_path: Path):
    saved = tmp_path / "reviewed.plan"
    plan, record = Project(declarations).save_plan(saved)
    assert record.serial == 0 and record.plan_digest and "specs/gates/promotion.yaml" in record.inputs
    result = Project(declarations).apply(reviewed=saved)
    assert result.applied == [op.key for op in plan.operations]
    # The state moved with that apply: the same file is now out of date.
    with pytest.raises(StalePlan, match="state moved from serial 0 to 4"):
        Project(declarations).apply(reviewed=saved)


@pytest.mark.parametrize("edit, named", [
    (lambda root: _replace(root / "specs/gates/promotion.yaml", "min: 0.70", "min: 0.72"), "specs/gates/promotion.yaml changed"),
    (lambda root: (root / "specs/gates/extra.yaml").write_text((root / "specs/gates/promotion.yaml").read_text()
                                                                .replace("name: promotion", "name: extra")),
     "specs/gates/extra.yaml added"),
    # The test project's Dataset points at params.yaml: both the params and the data digest move.
    (lambda root: _replace(root / "params.yaml", "seed: 42", "seed: 43"), "data params.yaml changed; params.yaml changed"),
    (lambda root: StateStore(LocalStorage(ProjectPaths(root).state_dir), "local").put("Gate/by-hand", {"spec": {}}),
     "state moved from serial 0 to 1"),
])
def test_apply_refuses_a_plan_whose_inputs_moved(declarations: Path, tmp_path: Path, edit, named):
    saved = tmp_path / "reviewed.plan"
    Project(declarations).save_plan(saved)
    edit(declarations)
    before = _state_and_audit(declarations)
    with pytest.raises(StalePlan, match="nothing was applied") as refused:
        Project(declarations).apply(reviewed=saved)
    assert named in str(refused.value)
    assert _state_and_audit(declarations) == before


def test_apply_refuses_a_plan_whose_observed_state_moved(declarations: Path, tmp_path: Path, monkeypatch):
    """Same files, same serial, but the backend observes something else now (a server stopped, outputs went stale)."""
    saved = tmp_path / "reviewed.plan"
    Project(declarations).save_plan(saved)
    from specops.backends.local import LocalBackend

    real = LocalBackend.observe
    monkeypatch.setattr(LocalBackend, "observe", lambda self, specs, stored: {**real(self, specs, stored),
                                                                            "Gate/promotion": {"spec": {}}})
    with pytest.raises(StalePlan, match="what the backend observes changed"):
        Project(declarations).apply(reviewed=saved)
    assert _state_and_audit(declarations) == (None, None)


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_plan_out_and_apply_file_on_the_command_line(declarations: Path, monkeypatch):
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "11111111-2222-3333-4444-555555555555")
    planned = specops("plan", "-out", "reviewed.plan", cwd=declarations)
    assert planned.returncode == 0 and "Plan: 4 to create" in planned.stdout
    text = (declarations / "reviewed.plan").read_text()
    assert "11111111" not in text and json.loads(text)["environment"] == "local"
    wrong = specops("apply", "--env", "dev", "reviewed.plan", cwd=declarations)
    assert wrong.returncode == 1 and "planned for environment local, not dev" in wrong.stderr
    applied = specops("apply", "reviewed.plan", cwd=declarations)
    assert applied.returncode == 0 and "Applied 4 change(s)" in applied.stdout
    again = specops("apply", "reviewed.plan", cwd=declarations)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert "reviewed.plan: refusing to apply a plan that is out of date" in again.stderr
    (declarations / "broken.plan").write_text('{"format": "specops-plan/1", "state_serial": NaN}')
    broken = specops("apply", "broken.plan", cwd=declarations)
    assert broken.returncode == 1 and "broken.plan is not a plan file" in broken.stderr and "Traceback" not in broken.stderr
