"""A baked bundle: one version's artifact, contract, profile and signature in a folder that
`shipyard serve --bundle DIR` serves with no metadata database.

STAND-IN: the bundle helper replaces this module; the signature below is the contract other
parts build on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.registry.registry import Registry

__all__ = ["write_bundle"]


def write_bundle(registry: Registry, ref: str, out: Path) -> dict[str, Any]:
    """Write the bundle of `ref` into the empty or new folder `out`; returns the manifest.

    Raises:
        NotFoundError: no such version.
    """
    raise NotImplementedError("stand-in: the bundle helper writes this")
