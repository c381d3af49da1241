"""`${VAR}` references: kept verbatim in specs, plans and state; resolved only
when a backend needs the value, and never logged."""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from specops.errors import SpecopsError

REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def references(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(REF.findall(value))
    if isinstance(value, dict):
        return {name for v in value.values() for name in references(v)}
    if isinstance(value, list):
        return {name for v in value for name in references(v)}
    return set()


def resolve(value: Any, environ: Mapping[str, str] | None = None) -> Any:
    """Replace every ${VAR} with its value; a missing variable is an error naming it."""
    environ = os.environ if environ is None else environ
    missing = sorted(name for name in references(value) if name not in environ)
    if missing:
        raise SpecopsError(f"environment variable(s) not set: {', '.join(missing)}")
    return _substitute(value, environ)


def _substitute(value: Any, environ: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return REF.sub(lambda m: environ[m.group(1)], value)
    if isinstance(value, dict):
        return {k: _substitute(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, environ) for v in value]
    return value
