"""`shipyard package`: a container build context for a version (STAND-IN, the packaging helper writes it)."""

from __future__ import annotations

import typer

__all__ = ["package"]


def package() -> None:
    """Write a container build context for a version (not written yet)."""
    raise typer.Exit(2)
