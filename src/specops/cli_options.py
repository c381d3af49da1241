"""What every command-line module shares: the consoles, the common options, friendly errors.

Its own module so that the command groups of other packages (monitoring,
rollout) and `specops.cli` import it without importing each other.
"""
from __future__ import annotations

import sys
from functools import wraps
from pathlib import Path

import click
from rich.console import Console

from specops.errors import SpecopsError

console = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ENV = click.option("--env", "-e", default=None, help="environment from the Project spec (default: its default_environment)")
ROOT = click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
                    help="project root (the folder holding specs/)")


def friendly(fn):
    """Turn user-facing errors into a message and exit code 1."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SpecopsError as exc:
            err.print(f"[red]error:[/red] {exc}", markup=True)
            sys.exit(1)

    return wrapper
