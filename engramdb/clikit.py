"""Pieces every command-line group shares: consoles, one error mapping, progress bars.

Kept apart from :mod:`engramdb.cli` so command groups in other packages (``bench``) can use
them without importing the main command group, which imports them.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any, Callable, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .errors import EngramError, InputError, NotFoundError

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True)


def handle_errors(fn: F) -> F:
    """Map engramdb errors to a one-line message and an exit code (2: bad input, 3: not found, 1: other)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            err_console.print(f"[red]error:[/] {escape(exc.message)}")
            sys.exit(2)
        except NotFoundError as exc:
            err_console.print(f"[red]not found:[/] {escape(exc.message)}")
            sys.exit(3)
        except EngramError as exc:
            err_console.print(f"[red]error:[/] {escape(exc.message)}")
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


class SafePath(click.Path):
    """``click.Path`` that answers a path the OS cannot take (a NUL, an unencodable character)
    with a usage error instead of a traceback."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except ValueError as exc:  # os.stat: "embedded null byte", UnicodeEncodeError
            self.fail(f"{value!r} is not a usable path: {exc}", param, ctx)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not err_console.is_terminal and os.environ.get("ENGRAMDB_PROGRESS") != "1",
    )
