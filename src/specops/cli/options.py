"""What every command shares: the consoles, the project options, friendly errors, tables.

`--root` and `--env` are parsed here, once, into the command's `Project`
(`with_project`); a command body then calls the library and prints.
"""
from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from specops.errors import SpecopsError
from specops.project import Project

# Markup off: what is printed is data (names, messages, paths), which may hold brackets; styled output asks for markup.
# Piped or in a CI log, a table is laid out wide rather than wrapped at 80 columns.
_WIDTH = None if sys.stdout.isatty() else 240
console = Console(highlight=False, soft_wrap=True, markup=False, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, width=None if sys.stderr.isatty() else 240)


def with_project(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --env and --root, and hand the command a `project` built from them."""
    @click.option("--env", "-e", default=None, envvar="SPECOPS_ENV", show_envvar=True,
                  help="environment from the Project spec (default: its default_environment)")
    @click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
                  help="project root (the folder holding specs/)")
    @functools.wraps(fn)
    def command(*args: Any, env: str | None, root: Path, **kwargs: Any) -> Any:
        return fn(*args, project=Project(root, env), **kwargs)

    return command


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn user-facing errors into a message and exit code 1 (the message is text, never rich markup)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SpecopsError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}", markup=True)
            sys.exit(1)

    return wrapper


def reporter(prefix: str) -> Callable[[str], None]:
    """Progress lines on stderr, dimmed prefix, the line itself as plain text."""
    return lambda line: err.print(f"[dim]{prefix}[/dim] {escape(line)}", markup=True)


def table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> Table:
    """A plain table for the terminal: a header, aligned columns, no box (copy-paste friendly); cells as str() gives them."""
    out = Table(*columns, box=None, show_edge=False, pad_edge=False, header_style="bold")
    for row in rows:
        out.add_row(*(escape(str(cell)) for cell in row))
    return out


def version(value: str | None) -> str:
    """`v3`, or what None means where a model version is printed: none served yet (never `vNone`)."""
    return "no version yet" if value is None else f"v{value}"
