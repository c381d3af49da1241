"""Where a generated project installs specops from: the pin in its requirements-specops.txt.

By default, the specops that runs `specops init` (or `--update`): its installed
distribution records where it came from (PEP 610, `direct_url.json`), and the
pin follows that record so the project gets the same specops on any machine:

- no record: installed from an index -> `specops==X.Y.Z`, with the release
  files' hashes when PyPI lists them;
- a VCS URL -> that URL at the exact commit the record names;
- a remote archive -> that URL with its recorded hash;
- a local checkout (editable or not) or a local wheel/sdist -> a wheel of it,
  copied into the project's `wheels/` and pinned by hash, because the local
  path does not exist in the project's CI or on a colleague's laptop.

`--specops-source` overrides the record: a pip requirement naming specops, or
a path to a checkout, wheel or sdist (handled as above).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specops.errors import SpecopsError

WHEELS = "wheels"  # the generated project's folder of pinned wheels
PYPI_JSON = "https://pypi.org/pypi/specops/{version}/json"
EXAMPLES = "e.g. specops==0.2.0, 'specops @ git+https://github.com/ORG/specops@v0.2.0', or a path to a checkout or wheel"


class SourceError(SpecopsError):
    """specops' own source cannot be pinned: printed without a traceback, exit 1."""


@dataclass(frozen=True)
class Pin:
    """One requirement line for requirements-specops.txt, and the wheel it points at (if any)."""

    requirement: str
    origin: str  # said to the user: where this specops came from
    wheel: Path | None = None  # a built or copied wheel to put into the project's wheels/ folder


# --- resolving -------------------------------------------------------------------

def resolve(source: str | None, workdir: Path, index_hashes: Callable[[str], list[str]] | None = None) -> Pin:
    """The pin for `source` (the --specops-source value), or for the running specops when it is None.

    Wheels are built or copied into `workdir` (a scratch folder the caller owns).
    """
    if source is not None and source.strip():
        return from_flag(source.strip(), workdir)
    return running(workdir, index_hashes)


def running(workdir: Path, index_hashes: Callable[[str], list[str]] | None = None) -> Pin:
    """The pin for the specops distribution this interpreter runs."""
    try:
        dist = importlib.metadata.distribution("specops")
    except importlib.metadata.PackageNotFoundError:
        raise SourceError("specops is not installed as a package here (run from a source tree?), so there is no "
                          f"record of where it came from: pass --specops-source ({EXAMPLES})") from None
    text = dist.read_text("direct_url.json")
    record = json.loads(text) if text else None
    return from_record(dist.version, record, workdir, index_hashes or pypi_hashes)


def from_record(version: str, record: dict[str, Any] | None, workdir: Path,
                index_hashes: Callable[[str], list[str]]) -> Pin:
    """The pin for an installed specops `version` whose PEP 610 record is `record` (None: from an index)."""
    if record is None:
        hashes = index_hashes(version)
        line = " ".join([f"specops=={version}", *(f"--hash=sha256:{h}" for h in hashes)])
        return Pin(line, f"specops {version} from the package index" + ("" if hashes else " (no hashes found on PyPI)"))
    url = str(record.get("url", ""))
    subdirectory = record.get("subdirectory")
    fragment = f"#subdirectory={subdirectory}" if subdirectory else ""
    if "vcs_info" in record:
        vcs = record["vcs_info"]
        clean = _without_credentials(url)
        return Pin(f"specops @ {vcs['vcs']}+{clean}@{vcs['commit_id']}{fragment}",
                   f"specops {version} from {clean} at commit {vcs['commit_id']}")
    parsed = urllib.parse.urlparse(url)
    local = Path(urllib.request.url2pathname(parsed.path)) if parsed.scheme == "file" else None
    if local is not None and subdirectory:
        local = local / subdirectory
    if "dir_info" in record:
        kind = "editable checkout" if record["dir_info"].get("editable") else "local checkout"
        if local is None or not local.is_dir():
            raise SourceError(f"specops {version} was installed from the {kind} {url}, which no longer exists: "
                              f"pass --specops-source ({EXAMPLES})")
        return _wheel_pin(build_wheel(local, workdir), f"a wheel built from the {kind} {local}")
    if "archive_info" in record:
        if local is None:  # a remote archive: pip records its hash
            recorded: dict[str, str] = record["archive_info"].get("hashes") or {}
            legacy = str(record["archive_info"].get("hash", ""))
            digest = recorded.get("sha256") or (legacy.split("=", 1)[1] if legacy.startswith("sha256=") else "")
            line = f"specops @ {_without_credentials(url)}" + (f" --hash=sha256:{digest}" if digest else "")
            return Pin(line, f"specops {version} from {_without_credentials(url)}")
        return _archive_pin(local, workdir, f"specops {version} was installed from {local}")
    raise SourceError(f"specops' install record (direct_url.json) is not one pip writes: {record}: "
                      f"pass --specops-source ({EXAMPLES})")


def from_flag(value: str, workdir: Path) -> Pin:
    """The pin for a --specops-source value: a requirement naming specops, or a path."""
    path = Path(value).expanduser()
    if path.exists() or _looks_like_path(value):
        if path.is_dir():
            return _wheel_pin(build_wheel(path.resolve(), workdir), f"a wheel built from {path.resolve()}")
        return _archive_pin(path.resolve(), workdir, f"--specops-source {value}")
    from packaging.requirements import InvalidRequirement, Requirement

    words = shlex.split(value)
    hashes = [w for w in words if w.startswith("--hash=")]
    spec = " ".join(w for w in words if not w.startswith("--hash="))
    try:
        requirement = Requirement(spec)
    except InvalidRequirement as exc:
        raise SourceError(f"--specops-source {value!r}: neither a pip requirement nor an existing path ({exc}); "
                          f"{EXAMPLES}") from None
    if requirement.name.lower() != "specops":
        raise SourceError(f"--specops-source {value!r}: installs {requirement.name!r}, not specops; {EXAMPLES}")
    return Pin(" ".join([spec, *hashes]), f"--specops-source {value}")


def _looks_like_path(value: str) -> bool:
    return value.startswith((".", "/", "~")) or value.endswith((".whl", ".tar.gz", ".zip"))


def _archive_pin(path: Path, workdir: Path, what: str) -> Pin:
    if not path.is_file():
        raise SourceError(f"{what}: no such file or folder; pass --specops-source ({EXAMPLES})")
    if path.suffix == ".whl":
        copied = workdir / path.name
        shutil.copyfile(path, copied)
        return _wheel_pin(copied, f"the wheel {path}")
    if path.name.endswith((".tar.gz", ".zip")):
        return _wheel_pin(build_wheel(path, workdir), f"a wheel built from {path}")
    raise SourceError(f"{what}: not a folder, wheel (.whl) or sdist (.tar.gz); {EXAMPLES}")


def _wheel_pin(wheel: Path, origin: str) -> Pin:
    return Pin(f"./{WHEELS}/{wheel.name} --hash=sha256:{sha256(wheel)}", origin, wheel)


def _without_credentials(url: str) -> str:
    """The URL without a user:password (never into a project's files); `git@host` (ssh) stays."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None and not (parts.username and parts.scheme.startswith("http")):
        return url
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- building and fetching ------------------------------------------------------------

def build_wheel(source: Path, workdir: Path) -> Path:
    """A wheel of the specops checkout or sdist at `source`, written into `workdir`.

    With the build backend (setuptools, setuptools-scm) already in this environment, as `make venv`
    installs it, nothing is downloaded; otherwise pip fetches the backend from PyPI.
    """
    out = Path(tempfile.mkdtemp(prefix="wheel-", dir=workdir))
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out)]
    if all(importlib.util.find_spec(m) for m in ("setuptools", "setuptools_scm")):
        command.append("--no-build-isolation")
    # setuptools builds in the source tree's build/ by default, where a stale build/lib from an earlier
    # build would go into this wheel and the user's checkout would be written to; a scratch folder instead.
    config = out / "setup.cfg"
    config.write_text(f"[build]\nbuild_base = {out / 'build'}\n")
    # The zip's timestamps fixed to today's start (setuptools-scm dates a dirty tree's version by it too):
    # the same source gives the same wheel and hash, so `--update` sees no change.
    today = str(int(time.time()) // 86400 * 86400)
    environment = {"SOURCE_DATE_EPOCH": today, **os.environ, "DIST_EXTRA_CONFIG": str(config)}
    result = subprocess.run([*command, str(source)], capture_output=True, text=True, env=environment)
    wheels = sorted(out.glob("specops-*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        detail = (result.stderr.strip() or result.stdout.strip())[-2000:] or f"no specops wheel in {out}"
        raise SourceError(f"building a wheel of specops from {source} failed (pass --specops-source to pin "
                          f"another source):\n{detail}")
    return wheels[0]


def pypi_hashes(version: str, timeout: float = 10.0) -> list[str]:
    """The sha256 of each file PyPI has for specops `version`; none when PyPI cannot be reached or lacks it."""
    try:
        with urllib.request.urlopen(PYPI_JSON.format(version=version), timeout=timeout) as response:  # nosec B310: a fixed https URL
            files = json.load(response).get("urls", [])
    except (OSError, ValueError):
        return []
    return sorted(f["digests"]["sha256"] for f in files if f.get("digests", {}).get("sha256"))


# --- writing into a project -------------------------------------------------------------

def install(pin: Pin, project: Path) -> list[str]:
    """Put the pin's wheel into `project`/wheels/, dropping specops wheels the pin no longer names.

    Returns the project-relative paths removed."""
    folder = project / WHEELS
    removed = []
    for old in sorted(folder.glob("specops-*.whl")):
        if pin.wheel is None or old.name != pin.wheel.name:
            old.unlink()
            removed.append(f"{WHEELS}/{old.name}")
    if pin.wheel is not None:
        folder.mkdir(exist_ok=True)
        shutil.copyfile(pin.wheel, folder / pin.wheel.name)
    return removed
