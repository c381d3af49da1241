"""The release path's cheap checks: the release workflow's shape, its notes from CHANGELOG.md
(tools/release_notes.py), and the version setuptools-scm gives `specops --version`.
The build, twine check and fresh-venv install are minutes of work: tests/acceptance/test_release.py."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("release_notes", REPO / "tools" / "release_notes.py")
assert spec is not None and spec.loader is not None
release_notes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(release_notes)

CHANGELOG = """# Changelog

## [Unreleased]
- next thing

## [1.2.0] - 2026-12-01
### Added
- a feature

## [1.1.0] - 2026-11-01
- older

## [1.0.0]
"""


def test_release_notes_are_the_tags_changelog_section(tmp_path):
    assert release_notes.section(CHANGELOG, "1.2.0") == "### Added\n- a feature"
    assert release_notes.section(CHANGELOG, "1.1.0") == "- older"
    assert release_notes.section(CHANGELOG, "1.0.0") is None  # a heading with nothing under it
    assert release_notes.section(CHANGELOG, "1.2") is None  # no prefix matching
    assert release_notes.section((REPO / "CHANGELOG.md").read_text(), "Unreleased")
    path = tmp_path / "CHANGELOG.md"
    path.write_text(CHANGELOG)
    script = [sys.executable, str(REPO / "tools" / "release_notes.py")]
    done = subprocess.run([*script, "1.2.0", str(path)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "### Added\n- a feature\n"
    missing = subprocess.run([*script, "9.9.9", str(path)], capture_output=True, text=True)
    assert missing.returncode == 1 and f"error: {path} has no notes for 9.9.9" in missing.stderr


def test_the_release_workflow_builds_tests_and_publishes_without_a_token():
    workflow = YAML(typ="safe", pure=True).load((REPO / ".github" / "workflows" / "release.yml").read_text())
    assert workflow["on"]["push"]["tags"] == ["v[0-9]*"]
    build, publish, release = (workflow["jobs"][name] for name in ("build", "publish", "github-release"))
    assert build["steps"][0]["with"]["fetch-depth"] == 0  # setuptools-scm needs the tag and history
    runs = " ".join(step.get("run", "") for step in build["steps"])
    for needed in ("python -m build", "twine check --strict", "tests/acceptance/test_release.py", "cyclonedx-py environment",
                   "tools/release_notes.py"):
        assert needed in runs, needed
    assert publish["permissions"] == {"id-token": "write"} and publish["environment"]["name"] == "pypi"
    assert [s["uses"] for s in publish["steps"] if "uses" in s][-1].startswith("pypa/gh-action-pypi-publish@")
    assert not any("password" in s.get("with", {}) for s in publish["steps"])  # trusted publishing: no token
    assert release["needs"] == "publish" and "--notes-file dist/release-notes.md" in release["steps"][-1]["run"]


def test_the_version_comes_from_git():
    """setuptools-scm: no literal version in pyproject.toml; a tag's X.Y.Z, or X.Y.Z.devN+gCOMMIT between tags
    (with the date when the tree had changes), and `specops --version` shows it."""
    assert 'dynamic = ["version"]' in (REPO / "pyproject.toml").read_text()
    version = metadata.version("specops")
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+\+g[0-9a-f]{7,}(\.d\d{8})?)?", version), version
    done = subprocess.run([str(Path(sys.executable).parent / "specops"), "--version"], capture_output=True, text=True)
    assert done.stdout.strip() == f"specops, version {version}"
