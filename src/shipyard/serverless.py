"""AWS Lambda: a handler for a container-image Lambda that serves a baked bundle.

STAND-IN: the serverless helper writes this module.
"""

from __future__ import annotations

from typing import Any

__all__ = ["handler"]


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Answer an API Gateway (v1 or v2) or function URL event."""
    raise NotImplementedError("stand-in")
