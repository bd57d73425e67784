"""A version's artifact given back in its framework's own format, beside its contract."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.core.refs import ModelRef
from shipyard.errors import RegistryError
from shipyard.flavors import unpack
from shipyard.security.access import Action
from shipyard.store.files import atomic_folder

if TYPE_CHECKING:
    from shipyard.registry.registry import Registry

__all__ = ["CONTRACT_FILE", "download"]

CONTRACT_FILE = "contract.json"


def download(registry: Registry, ref: str | ModelRef, *, out: str | os.PathLike[str]) -> list[Path]:
    """Write the version's model files (`model.skops`, `model.ubj`, `model.txt`, `model.onnx`, a
    pyfunc's `model.cloudpickle`) and `contract.json` into the new folder `out`.

    The artifact's digest is checked as it is read; the files are written in a folder beside
    `out`, then renamed into place.

    Args:
        registry: where the version is.
        ref: the version.
        out: a folder that does not exist yet, or is empty.

    Returns:
        The files written, the model's first.

    Raises:
        NotFoundError: no such version.
        ArtifactIntegrityError: the artifact was changed on storage.
        RegistryError: `out` exists and is not an empty folder.
    """
    folder = Path(out)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise RegistryError(
            f"{folder} already exists and is not an empty folder; name a new folder with --out"
        )
    version = registry.get(ref)
    registry.allow(Action.PREDICT, version.name)  # the artifact is the model: who may load it may have it
    saved = unpack(registry.artifacts.get(version.artifact_digest))
    with atomic_folder(folder) as staging:
        for name, data in saved.files.items():
            (staging / name).write_bytes(data)
        (staging / CONTRACT_FILE).write_text(json.dumps(version.contract.to_dict(), indent=2) + "\n")
    return [folder / name for name in saved.files] + [folder / CONTRACT_FILE]
