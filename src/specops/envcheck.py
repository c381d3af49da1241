"""Compare the installed packages with the pins in requirements.lock."""
from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(lock_file: Path) -> dict[str, str]:
    pins = {}
    for line in lock_file.read_text().splitlines():
        if match := PIN.match(line):
            pins[normalise(match.group(1))] = match.group(2)
    return pins


def drift(lock_file: Path) -> list[str]:
    """One line per package that is missing or at another version than the lock says."""
    installed = {normalise(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}
    problems = []
    for name, version in sorted(locked(lock_file).items()):
        have = installed.get(name)
        if have is None:
            problems.append(f"{name}: locked {version}, not installed")
        elif have != version:
            problems.append(f"{name}: locked {version}, installed {have}")
    return problems
