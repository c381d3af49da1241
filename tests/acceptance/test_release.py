"""specops as users get it: the built wheel in a fresh virtual environment, a project generated from that install
with no source flag, moved to another folder, installing itself from what it committed and running its own
`make demo` and `make test`; and the CLI-alone routes of the README, `pipx install` and `uv tool install`.

Minutes of work (fresh environments of ~300 packages): `make acceptance` and CI run it, `make test` does not
(tests/release/test_wheel.py builds, twine-checks and runs the wheel there, in seconds).
SPECOPS_DIST=<folder> tests a wheel and sdist built already (the release workflow's) instead of building here.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.release.build import BIN, build_dist, clean_env, pinned_versions, run, system_python, the_wheel


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    return build_dist(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory) -> Path:
    """The wheel in a fresh virtual environment, its dependencies hash-pinned from the lock (the template route)."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    run([system_python(), "-m", "venv", venv], REPO)
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


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("route", ["uv", "pipx"])
def test_the_cli_alone_installs_from_the_wheel_with_uv_tool_and_pipx(route, dist, tmp_path):
    """README: `pipx install specops` / `uv tool install specops`; here from the built wheel, at the lock's versions."""
    wheel, home = the_wheel(dist), tmp_path / "home"
    constraints = pinned_versions(REPO / "requirements.lock", tmp_path / "constraints.txt")
    env = {**clean_env(), "HOME": str(home), "UV_TOOL_DIR": str(home / "tools"), "UV_TOOL_BIN_DIR": str(home / "bin"),
           "PIPX_HOME": str(home / "pipx"), "PIPX_BIN_DIR": str(home / "bin")}
    started = time.monotonic()
    if route == "uv":
        run([BIN / "uv", "tool", "install", "--python", system_python(), "--constraints", constraints, wheel], tmp_path, env=env)
    else:
        run([BIN / "pipx", "install", "--python", system_python(), "--pip-args", f"--constraint {constraints} --no-compile",
             wheel], tmp_path, env=env)
    print(f"\n{route}: the CLI alone installed from the wheel in {time.monotonic() - started:.0f} s", flush=True)
    specops = home / "bin" / "specops"
    version = wheel.name.split("-")[1]
    assert run([specops, "--version"], tmp_path, env=env).stdout.strip() == f"specops, version {version}"
    run([specops, "init", "churn", "--target", "churned", "--no-interactive"], tmp_path, env=env)
    run([specops, "validate"], tmp_path / "churn", env=env)
