"""The registry: models, versions, aliases, tags and lineage over the stores and flavors.

The names are imported on first use (PEP 562): `shipyard.registry.registry` imports SQLAlchemy,
which a server of a baked bundle (`shipyard serve --bundle`) never needs, while
`shipyard.registry.loaded` and `shipyard.registry.bundles`, which it does need, live here too.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.registry.loaded import LoadedModel
    from shipyard.registry.records import Change, ModelVersion, RegisteredModel
    from shipyard.registry.registry import Registry

__all__ = ["Change", "LoadedModel", "ModelVersion", "RegisteredModel", "Registry"]

_HOMES = {
    "Change": "shipyard.registry.records",
    "LoadedModel": "shipyard.registry.loaded",
    "ModelVersion": "shipyard.registry.records",
    "RegisteredModel": "shipyard.registry.records",
    "Registry": "shipyard.registry.registry",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'shipyard.registry' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
