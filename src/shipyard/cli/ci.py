"""`shipyard ci init`: a CI/CD pipeline for GitHub Actions or GitLab CI (STAND-IN, the CI helper writes it)."""

from __future__ import annotations

import typer

__all__ = ["ci_app"]

ci_app = typer.Typer(help="CI/CD pipelines that test, evaluate, gate, package and roll out a version.")


@ci_app.command("init")
def ci_init() -> None:
    """Write a CI/CD pipeline (not written yet)."""
    raise typer.Exit(2)
