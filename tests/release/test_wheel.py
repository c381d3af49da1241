"""specops as a release ships it, in `make test`: the wheel and sdist that `python -m build` makes, `twine check`
on both, and the wheel installed into a fresh virtual environment running `specops --version`, `init` and
`validate` from there.

The fresh environment holds the wheel and nothing else of this repository. Its ~300 dependencies, minutes to
install, are borrowed from this repository's environment through a .pth line: that adds their folder to sys.path
without running the .pth files in it, so this checkout's editable install stays out and `import specops` finds
the wheel. tests/acceptance/test_release.py installs the dependencies for real, hash-pinned, and also tries the
`pipx` and `uv tool` routes.
"""
from __future__ import annotations

import hashlib
import sysconfig
import zipfile
from pathlib import Path

import pytest

from specops.init import TEMPLATE
from tests.conftest import REPO
from tests.release.build import BIN, build_dist, run, the_wheel

pytestmark = pytest.mark.xdist_group("release")  # one build, shared by this module's tests


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    return build_dist(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def fresh(dist, tmp_path_factory) -> Path:
    """A new virtual environment with the wheel installed, and this environment's packages borrowed (see above)."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    run([BIN / "python", "-m", "venv", "--without-pip", venv], REPO)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    run([BIN / "python", "-m", "pip", "--python", venv / "bin" / "python", "install", "--quiet", "--no-deps",
         "--no-compile", the_wheel(dist)], REPO)
    return venv


def test_the_wheel_and_sdist_pass_twine_check_and_carry_the_template(dist):
    (sdist,) = dist.glob("specops-*.tar.gz")
    wheel = the_wheel(dist)
    result = run([BIN / "twine", "check", "--strict", wheel, sdist], REPO)
    assert result.stdout.count("PASSED") == 2, result.stdout
    names = set(zipfile.ZipFile(wheel).namelist())
    template = {"specops/init/template/" + p.relative_to(TEMPLATE).as_posix()
                for p in TEMPLATE.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert template - names == set(), "template files missing from the wheel (pyproject package-data)"
    cards = {f"specops/lifecycle/templates/{p.name}" for p in (TEMPLATE.parents[1] / "lifecycle" / "templates").glob("*.j2")}
    assert cards and cards <= names
    print(f"\nwheel {wheel.name}: {wheel.stat().st_size / 1024:.0f} KiB; sdist {sdist.stat().st_size / 1024:.0f} KiB")


def test_the_wheel_in_a_fresh_environment_runs_version_init_and_validate(fresh, dist, tmp_path):
    python, specops = fresh / "bin" / "python", fresh / "bin" / "specops"
    imported = Path(run([python, "-c", "import specops; print(specops.__file__)"], tmp_path).stdout.strip())
    assert imported.is_relative_to(fresh), f"specops imported from {imported}, not from the wheel"
    wheel = the_wheel(dist)
    version = wheel.name.split("-")[1]
    assert run([specops, "--version"], tmp_path).stdout.strip() == f"specops, version {version}"

    made = run([specops, "init", "churn", "--target", "churned", "--no-interactive"], tmp_path)
    assert f"the wheel {wheel}" in " ".join(made.stdout.split() + made.stderr.split())
    project = tmp_path / "churn"
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert (project / "requirements-specops.txt").read_text().splitlines()[-1] == \
        f"./wheels/{wheel.name} --hash=sha256:{digest}"
    assert (project / "wheels" / wheel.name).read_bytes() == wheel.read_bytes()
    assert "valid" in run([specops, "validate"], project).stdout.lower()
