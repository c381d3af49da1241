"""The pull request's comment, driven the way the PR workflow drives it (`specops review --base REF --out FILE`)
on a two-commit repository: the base trained and committed (dvc.lock, evaluation.json), the PR raising a
training parameter and a gate bound."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from specops.gates import select_best
from specops.project import Project
from specops.review import review
from specops.plan.format import MARKER
from specops.spec.kinds import Pipeline
from specops.spec.loader import load_specs

from tests.conftest import make_project, run, specops

EVALUATION = "artifacts/credit-risk-training/evaluation.json"
IGNORED = "/.specops/\n/mlruns/\n"


def selected(root: Path, evaluation: dict) -> dict:
    pipeline = load_specs(root).get(Pipeline, "credit-risk-training")
    return evaluation["candidates"][select_best(evaluation["candidates"], pipeline.spec.selection)]


@pytest.mark.timeout(1800)  # two trainings and three DVC runs: minutes, more on a busy machine
def test_a_training_change_gets_its_candidate_trained_and_compared(tmp_path: Path):
    root = make_project(tmp_path / "proj", rows=800, sweep="[4]")
    (root / ".gitignore").write_text(IGNORED)
    run(["dvc", "repro", "-q", "credit-risk-training-evaluate"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "trained: dvc.lock and the evaluation committed"], root)
    champion = selected(root, json.loads((root / EVALUATION).read_text()))

    # Nothing that feeds training changed: no candidate, said so.
    [quiet] = review(Project(root, "local"), "HEAD").pipelines
    assert not quiet.trained and quiet.note == "nothing that feeds training changed: no candidate trained"

    params = root / "params.yaml"
    params.write_text(params.read_text().replace("n_estimators: 30", "n_estimators: 40"))
    gate = root / "specs/gates/promotion.yaml"
    gate.write_text(gate.read_text().replace("min: 0.70", "min: 0.72", 1))
    run(["git", "commit", "-qam", "more trees, a stricter gate"], root)

    out = tmp_path / "comment.md"
    specops("review", "--base", "HEAD~1", "--out", str(out), cwd=root, check=True)
    comment = out.read_text()
    candidate = selected(root, json.loads((root / EVALUATION).read_text()))

    assert comment.startswith(MARKER) and "## specops plan: local" in comment
    assert "`credit-risk-training-train: params train.fixed.n_estimators: 30 → 40`" in comment  # why it trained
    # Metrics: champion (committed on the base) and candidate (trained here), with the delta.
    accuracy = next(line for line in comment.splitlines() if line.startswith("| `accuracy` |"))
    old, new, delta = (float(cell) for cell in accuracy.strip("|").split("|")[1:4])
    assert (old, new) == (round(champion["metrics"]["accuracy"], 4), round(candidate["metrics"]["accuracy"], 4)) \
        or abs(old - champion["metrics"]["accuracy"]) < 1e-4 and abs(new - candidate["metrics"]["accuracy"]) < 1e-4
    assert abs(delta - (new - old)) < 1e-3
    # The gate of the pull request (0.72), each check with its verdict; the champion check names the base.
    assert re.search(r"\*\*Gate `promotion`: the candidate (passes ✅|fails ❌)\*\*", comment)
    assert "| `accuracy >= 0.72` |" in comment
    assert "vs the champion committed on HEAD~1 (" in comment
    # Fairness by group, champion → candidate.
    for group in candidate["by_group"]:
        assert f"| `{group}` |" in comment
    # Plots GitHub renders: the confusion matrix (as many rows as the test split), ROC and importance charts.
    counts = [int(n) for n in re.findall(r"^\| `[^`]+` \| (\d+) \| (\d+) \|$", comment, re.M) for n in n]
    assert sum(counts) == json.loads((root / EVALUATION).read_text())["test_rows"]
    assert comment.count("```mermaid\nxychart-beta") == 2 and 'title "ROC curve of ' in comment
    assert "dvc metrics diff --md" in comment
    # Trained, never registered: no registration record, no model version.
    assert not (root / "artifacts/credit-risk-training/registration.json").exists()
