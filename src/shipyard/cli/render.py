"""Rendering for the CLI: rich tables on a terminal, JSON with `--json`, one-line errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["console", "emit_json", "error", "key_values", "table"]


class _Console(Console):
    """rich's console, leaving a reader that went away (`| head`) to `cli.app.main`: rich itself
    would exit 1 without a word, which reads as a failure."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


console = _Console(highlight=False)


def emit_json(data: Any) -> None:
    """Print `data` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def error(message: str) -> None:
    """Print an error on stderr, verbatim (no markup: messages hold brackets)."""
    typer.echo(f"error: {message}", err=True)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print a table."""
    out = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*("" if v is None else str(v) for v in row))
    console.print(out)


def key_values(title: str, pairs: Iterable[tuple[str, Any]]) -> None:
    """Print a two-column table of facts."""
    out = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    out.add_column(style="bold")
    out.add_column(overflow="fold")
    for key, value in pairs:
        out.add_row(key, "" if value is None else str(value))
    console.print(out)
