"""specops as users get it: the built wheel and sdist, the wheel in a fresh virtual environment, and a project
generated from that install with no source flag, moved to another folder, installing itself from what it
committed and running its own `make demo` and `make test`.

Minutes of work (two fresh environments): `make acceptance` and CI run it, `make test` does not.
SPECOPS_DIST=<folder> tests a wheel and sdist built already (the release workflow's) instead of building here.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from specops.init import TEMPLATE
from tests.conftest import REPO

BIN = Path(sys.executable).parent  # this repository's environment: build, twine


def run(args: list[str | Path], cwd: Path, timeout: int = 1800, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env=env or clean_env())
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def clean_env() -> dict[str, str]:
    """No trace of this repository's environment: the fresh one and the project's own must stand alone."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "VENV")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if Path(p) != BIN)
    return env


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    if os.environ.get("SPECOPS_DIST"):
        return Path(os.environ["SPECOPS_DIST"])
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the build backend (setuptools, setuptools-scm) comes hash-pinned from the lock.
    run([BIN / "python", "-m", "build", "--no-isolation", "--outdir", out, REPO], REPO, env=dict(os.environ))
    return out


def the_wheel(dist: Path) -> Path:
    (wheel,) = dist.glob("specops-*.whl")
    return wheel


def test_the_wheel_and_sdist_pass_twine_check_and_carry_the_template(dist):
    (sdist,) = dist.glob("specops-*.tar.gz")
    wheel = the_wheel(dist)
    result = run([BIN / "twine", "check", "--strict", wheel, sdist], REPO, env=dict(os.environ))
    assert result.stdout.count("PASSED") == 2, result.stdout
    names = set(zipfile.ZipFile(wheel).namelist())
    template = {"specops/init/template/" + p.relative_to(TEMPLATE).as_posix()
                for p in TEMPLATE.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert template - names == set(), "template files missing from the wheel (pyproject package-data)"
    cards = {f"specops/lifecycle/templates/{p.name}" for p in (TEMPLATE.parents[1] / "lifecycle" / "templates").glob("*.j2")}
    assert cards and cards <= names
    print(f"\nwheel {wheel.name}: {wheel.stat().st_size / 1024:.0f} KiB; sdist {sdist.stat().st_size / 1024:.0f} KiB")


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory) -> Path:
    """The wheel in a fresh virtual environment, its dependencies hash-pinned from the lock (the template route)."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    python3 = shutil.which("python3", path=clean_env()["PATH"]) or sys.executable
    run([python3, "-m", "venv", venv], REPO)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-compile"]  # no .pyc: it only runs init
    started = time.monotonic()
    run([*pip, "--require-hashes", "--no-deps", "-r", REPO / "requirements.lock"], REPO)
    run([*pip, "--no-deps", the_wheel(dist)], REPO)
    print(f"\nthe wheel's fresh environment (lock, then the wheel, no .pyc): {time.monotonic() - started:.0f} s", flush=True)
    return venv


@pytest.mark.timeout(3600)  # two fresh environments of ~300 packages each, and the project's demo
def test_the_installed_wheel_generates_a_project_that_installs_itself_elsewhere(installed, dist, tmp_path):
    specops = installed / "bin" / "specops"
    wheel = the_wheel(dist)
    version = wheel.name.split("-")[1]
    assert run([specops, "--version"], tmp_path).stdout.strip() == f"specops, version {version}"

    made = run([specops, "init", "churn", "--target", "churned", "--no-interactive"], tmp_path)
    assert f"the wheel {wheel}" in " ".join(made.stdout.split() + made.stderr.split())
    project = tmp_path / "churn"
    run([specops, "validate"], project)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert (project / "requirements-specops.txt").read_text().splitlines()[-1] == \
        f"./wheels/{wheel.name} --hash=sha256:{digest}"

    # Somewhere else, as a clone on another machine would be: its own .venv from what it committed.
    moved = tmp_path / "elsewhere" / "churn"
    moved.parent.mkdir()
    shutil.move(project, moved)
    assert not project.exists()
    started = time.monotonic()
    run(["make", "--no-print-directory", "venv"], moved)
    seconds = time.monotonic() - started
    print(f"\nthe generated project's own install (make venv): {seconds:.0f} s", flush=True)
    own = moved / ".venv" / "bin" / "specops"
    assert run([own, "--version"], moved).stdout.strip() == f"specops, version {version}"

    demo = run(["make", "--no-print-directory", "demo"], moved)
    assert "No changes. local matches the specs." in demo.stdout
    tests = run(["make", "--no-print-directory", "test"], moved)
    summary = tests.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "skipped" not in summary and "failed" not in summary, summary
