"""The import contract in pyproject.toml ([tool.importlinter]): imports only go down the layers."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).parent / "lint-imports"


def lint(src: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--config", str(REPO / "pyproject.toml"), "--no-cache"], cwd=REPO,
                          capture_output=True, text=True, env={"PYTHONPATH": str(src), "PATH": str(LINT.parent)})


def test_the_package_keeps_its_layers():
    result = lint(REPO / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_import_up_the_layers_breaks_the_contract(tmp_path: Path):
    """The check proves it can fail: the bottom layer made to import the CLI is caught, and named."""
    shutil.copytree(REPO / "src" / "specops", tmp_path / "specops", ignore=shutil.ignore_patterns("__pycache__"))
    clock = tmp_path / "specops" / "core" / "clock.py"
    clock.write_text(clock.read_text() + "\n\ndef _up() -> None:\n    import specops.cli  # noqa: F401\n")
    result = lint(tmp_path)
    assert result.returncode == 1 and "0 kept, 1 broken" in result.stdout
    assert "specops.core.clock -> specops.cli" in result.stdout
