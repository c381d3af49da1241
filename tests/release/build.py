"""Building specops as a release does, and running commands cleanly outside this repository's environment."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

BIN = Path(sys.executable).parent  # this repository's environment: build, twine, uv, pipx


def run(args: list[str | Path], cwd: Path, timeout: int = 1800, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env=env or clean_env())
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def clean_env() -> dict[str, str]:
    """No trace of this repository's environment: a fresh one and a generated project's own must stand alone."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "VENV")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if Path(p) != BIN)
    return env


def system_python() -> str:
    """The machine's python3, not this repository's environment: what a user's fresh install starts from."""
    return shutil.which("python3", path=clean_env()["PATH"]) or sys.executable


def build_dist(out: Path) -> Path:
    """The wheel and sdist in `out`, or those of SPECOPS_DIST (the release workflow's, built already)."""
    if os.environ.get("SPECOPS_DIST"):
        return Path(os.environ["SPECOPS_DIST"])
    # --no-isolation: the build backend (setuptools, setuptools-scm) comes hash-pinned from the lock.
    run([BIN / "python", "-m", "build", "--no-isolation", "--outdir", out, REPO], REPO, env=dict(os.environ))
    return out


def the_wheel(dist: Path) -> Path:
    (wheel,) = dist.glob("specops-*.whl")
    return wheel


def pinned_versions(lock: Path, into: Path) -> Path:
    """The lock's `name==version` lines without hashes: a constraints file for installers that re-resolve (uv, pipx)."""
    pins = [line.split()[0] for line in lock.read_text().splitlines() if "==" in line and not line.lstrip().startswith("#")]
    into.write_text("\n".join(pins) + "\n")
    return into
