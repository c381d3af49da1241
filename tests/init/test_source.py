"""Where a generated project installs specops from (specops.init.source): the pin, from the running
distribution's PEP 610 record or from --specops-source. Cheap: fake records, no network, no wheel built."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from specops.cli import main as cli
from specops.init import source
from specops.init.source import SourceError, from_flag, from_record

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def no_index(version: str) -> list[str]:
    raise AssertionError("the index is asked only for an install from the index")


def fake_wheel(folder: Path, name: str = "specops-1.2.3-py3-none-any.whl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / name
    wheel.write_bytes(b"not really a zip, but hashed all the same")
    return wheel


def test_an_index_install_pins_the_version_with_the_index_hashes(tmp_path):
    pin = from_record("1.2.3", None, tmp_path, lambda version: ["a" * 64, "b" * 64] if version == "1.2.3" else [])
    assert pin.requirement == f"specops==1.2.3 --hash=sha256:{'a' * 64} --hash=sha256:{'b' * 64}"
    assert pin.wheel is None
    pin = from_record("1.2.3", None, tmp_path, lambda version: [])  # PyPI unreachable: still pinned, and said so
    assert pin.requirement == "specops==1.2.3" and "no hashes found" in pin.origin


def test_a_vcs_install_pins_the_exact_commit_without_credentials(tmp_path):
    record = {"url": "https://user:s3cret@github.com/org/specops.git",
              "vcs_info": {"vcs": "git", "requested_revision": "main", "commit_id": COMMIT}}
    pin = from_record("1.2.4.dev3", record, tmp_path, no_index)
    assert pin.requirement == f"specops @ git+https://github.com/org/specops.git@{COMMIT}"
    assert "s3cret" not in pin.requirement + pin.origin
    record = {"url": "ssh://git@github.com/org/mono.git", "subdirectory": "py",
              "vcs_info": {"vcs": "git", "commit_id": COMMIT}}
    assert from_record("1.0", record, tmp_path, no_index).requirement == \
        f"specops @ git+ssh://git@github.com/org/mono.git@{COMMIT}#subdirectory=py"


def test_a_remote_archive_keeps_its_recorded_hash(tmp_path):
    record = {"url": "https://files.example/specops-1.2.3-py3-none-any.whl",
              "archive_info": {"hashes": {"sha256": "c" * 64}}}
    assert from_record("1.2.3", record, tmp_path, no_index).requirement == \
        f"specops @ https://files.example/specops-1.2.3-py3-none-any.whl --hash=sha256:{'c' * 64}"


def test_a_local_wheel_is_copied_into_wheels_and_pinned_by_hash(tmp_path):
    wheel = fake_wheel(tmp_path / "dist")
    record = {"url": wheel.as_uri(), "archive_info": {"hashes": {"sha256": "ignored"}}}
    (tmp_path / "work").mkdir()
    pin = from_record("1.2.3", record, tmp_path / "work", no_index)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert pin.requirement == f"./wheels/{wheel.name} --hash=sha256:{digest}"
    project = tmp_path / "project"
    fake_wheel(project / "wheels", "specops-1.0.0-py3-none-any.whl")  # an older pin's wheel
    assert source.install(pin, project) == ["wheels/specops-1.0.0-py3-none-any.whl"]
    assert [p.name for p in (project / "wheels").iterdir()] == [wheel.name]
    assert hashlib.sha256((project / "wheels" / wheel.name).read_bytes()).hexdigest() == digest


def test_a_checkout_that_is_gone_is_a_clear_error(tmp_path):
    record = {"url": (tmp_path / "moved-away").as_uri(), "dir_info": {"editable": True}}
    with pytest.raises(SourceError, match="installed from the editable checkout .* which no longer exists: "
                                          "pass --specops-source"):
        from_record("1.0", record, tmp_path, no_index)
    record = {"url": (tmp_path / "gone.whl").as_uri(), "archive_info": {}}
    with pytest.raises(SourceError, match="gone.whl: no such file or folder; pass --specops-source"):
        from_record("1.0", record, tmp_path, no_index)


def test_a_checkout_is_built_into_a_wheel(tmp_path, monkeypatch):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    built: list[Path] = []

    def build(path: Path, workdir: Path) -> Path:
        built.append(path)
        return fake_wheel(workdir / "out", "specops-0.1.dev5+g0123456-py3-none-any.whl")

    monkeypatch.setattr(source, "build_wheel", build)
    pin = from_record("0.1.dev5", {"url": checkout.as_uri(), "dir_info": {"editable": True}}, tmp_path, no_index)
    assert built == [checkout]
    assert pin.requirement.startswith("./wheels/specops-0.1.dev5+g0123456-py3-none-any.whl --hash=sha256:")
    assert "editable checkout" in pin.origin


@pytest.mark.parametrize("value, requirement", [
    ("specops==0.2.0", "specops==0.2.0"),
    (f"specops @ git+https://github.com/org/specops@{COMMIT}", f"specops @ git+https://github.com/org/specops@{COMMIT}"),
    (f"specops==0.2.0 --hash=sha256:{'d' * 64}", f"specops==0.2.0 --hash=sha256:{'d' * 64}"),
])
def test_the_flag_takes_a_requirement(tmp_path, value, requirement):
    assert from_flag(value, tmp_path).requirement == requirement


def test_the_flag_takes_a_wheel_path(tmp_path):
    wheel = fake_wheel(tmp_path / "dist")
    pin = from_flag(str(wheel), tmp_path)
    assert pin.wheel is not None and pin.requirement.startswith(f"./wheels/{wheel.name} --hash=sha256:")


@pytest.mark.parametrize("value, message", [
    ("specops >>> 2", "--specops-source 'specops >>> 2': neither a pip requirement nor an existing path"),
    ("numpy==2.0", "--specops-source 'numpy==2.0': installs 'numpy', not specops"),
    ("./no/such/checkout", "--specops-source ./no/such/checkout: no such file or folder"),
])
def test_a_bad_flag_fails_clearly_and_writes_nothing(tmp_path, value, message):
    dest = tmp_path / "project"
    result = CliRunner().invoke(cli, ["init", str(dest), "--target", "y", "--no-interactive", "--specops-source", value],
                                catch_exceptions=False)
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output, result.output
    assert not dest.exists()


def test_the_running_specops_is_read_from_its_own_record(tmp_path, monkeypatch):
    """`running` reads the installed distribution's direct_url.json, whatever this environment's install is."""
    class Dist:
        version = "9.8.7"

        def read_text(self, name: str) -> str | None:
            assert name == "direct_url.json"
            return json.dumps({"url": "https://github.com/org/specops", "vcs_info": {"vcs": "git", "commit_id": COMMIT}})

    monkeypatch.setattr(source.importlib.metadata, "distribution", lambda name: Dist())
    assert source.running(tmp_path).requirement == f"specops @ git+https://github.com/org/specops@{COMMIT}"
