"""`shipyard k8s`: Kubernetes, Knative and KServe manifests (STAND-IN, the k8s helper writes it)."""

from __future__ import annotations

import typer

__all__ = ["k8s"]


def k8s() -> None:
    """Render Kubernetes manifests (not written yet)."""
    raise typer.Exit(2)
