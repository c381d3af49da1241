"""Errors a user can cause. Each names where in which file it happened.

The CLI prints these without a traceback; anything else is a bug in specops.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class SpecError:
    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class SpecopsError(Exception):
    """A user-facing failure: printed as is, exit code 1."""


@dataclass
class SpecErrors(SpecopsError):
    errors: list[SpecError] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        noun = "error" if len(self.errors) == 1 else "errors"
        return "\n".join([*(str(e) for e in sorted(self.errors)), f"{len(self.errors)} {noun}"])


class LockHeld(SpecopsError):
    """Another apply holds the state lock."""


class StageFailed(SpecopsError):
    """A lifecycle stage refused its input (failed expectations, failed gate)."""
