"""What the redesign removed stays removed: one lock, one session, one name for each registry alias."""
from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "specops"


def sources() -> dict[str, str]:
    return {path.relative_to(SRC).as_posix(): path.read_text() for path in SRC.rglob("*.py")}


def test_one_lock_implementation():
    """Locks come from specops.core.locks (filelock); no module takes flock by hand."""
    assert [name for name, text in sources().items() if re.search(r"^\s*import fcntl|^\s*from fcntl", text, re.M)] == []
    assert [name for name, text in sources().items() if "FileLock(" in text] == ["core/locks.py"]


def test_only_the_session_loads_specs():
    """An environment is never guessed: specs are loaded by Project, which was told which environment."""
    callers = [name for name, text in sources().items() if re.search(r"\bload_specs\(", text) and not name.startswith("spec/")]
    assert callers == ["project.py"]


def test_the_registry_aliases_are_named_once():
    definitions = [name for name, text in sources().items() if re.search(r"^(CHAMPION|CHALLENGER) = ", text, re.M)]
    assert definitions == ["registry.py"]


def test_state_is_written_only_through_the_store():
    """Nothing but the state store writes the state file (one commit path, with its serial)."""
    writers = [name for name, text in sources().items() if "state_file(" in text]
    assert sorted(writers) == ["core/paths.py", "state/store.py"]
