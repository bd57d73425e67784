"""A baked bundle: one version's artifact, contract, profile and signature in a folder that
`shipyard serve --bundle DIR` serves with no metadata database.

The files and their checks are described in `shipyard.registry.bundles`, which reads them. The
bundle is written whole or not at all: into a temporary folder beside `out`, renamed onto it at
the end. A scikit-learn version also gets its baked pickle (`flavors/baked.py`), made from the
model as skops loads it under the trust policy; a model whose pickle would reference a name the
policy refuses keeps its skops artifact only, and loads through skops.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import ConflictError, InputError, UntrustedArtifactError
from shipyard.registry.bundles import (
    ARTIFACT,
    BAKED,
    FORMAT,
    MANIFEST,
    SIGNATURES,
    VERSION,
    file_entry,
    version_record,
)
from shipyard.registry.records import ARCHIVED
from shipyard.store.permissions import folder_mode

if TYPE_CHECKING:
    from shipyard.registry.loaded import LoadedModel
    from shipyard.registry.registry import Registry

__all__ = ["write_bundle"]

log = logging.getLogger(__name__)


def write_bundle(registry: Registry, ref: str, out: Path) -> dict[str, Any]:
    """Write the bundle of `ref` into the empty or new folder `out`; returns the manifest.

    Raises:
        NotFoundError: no such version.
        ConflictError: the version is archived.
        InputError: `out` is a file, or a folder that holds other files.
        SignatureError: signatures are required (SHIPYARD_REQUIRE_SIGNATURE) and none by a
            trusted key verifies.
        ArtifactIntegrityError: the artifact was changed on storage.
    """
    out = Path(out)
    _check_out(out)
    version = registry.get(ref)
    if version.status == ARCHIVED:
        raise ConflictError(
            f"{version.ref} is archived; restore it first ('shipyard models restore {version.ref}') "
            "or package a live version"
        )
    files: dict[str, bytes] = {
        ARTIFACT: registry.artifacts.get(version.artifact_digest),
        VERSION: _json(version_record(version)),
    }
    signatures = registry.signatures.list(version)
    if signatures:
        files[SIGNATURES] = _json([s.to_dict() for s in signatures])
    baked = None
    if version.flavor == "sklearn":  # loading checks the signature when one is required
        baked = _bake(registry.load(version.ref), files)
    elif registry.settings.require_signature:
        registry.signatures.verify(version)
    from shipyard import __version__

    manifest: dict[str, Any] = {
        "format": FORMAT,
        "model": {"name": version.name, "version": version.version, "flavor": version.flavor},
        "shipyard_version": __version__,
        "created_at": datetime.now(UTC).isoformat(),
        "files": {name: file_entry(data) for name, data in sorted(files.items())},
        "baked": baked,
    }
    _write_whole(out, {**files, MANIFEST: _json(manifest)}, registry.settings.file_mode)
    return manifest


def _bake(loaded: LoadedModel, files: dict[str, bytes]) -> dict[str, Any] | None:
    """Add the baked pickle of a scikit-learn model to `files`; its manifest entry, or None when
    the pickle would reference a name the trust policy refuses."""
    from shipyard.flavors.baked import PROTOCOL, bake
    from shipyard.flavors.sklearn import SklearnPredictor

    if not isinstance(loaded.predictor, SklearnPredictor):
        return None
    try:
        data, names = bake(loaded.predictor.model)
    except UntrustedArtifactError as exc:
        log.warning("%s: no baked pickle, the bundle loads through skops (%s)", loaded.version.ref, exc)
        return None
    files[BAKED] = data
    return {"file": BAKED, "protocol": PROTOCOL, "globals": names}


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False).encode()


def _check_out(out: Path) -> None:
    if out.is_dir():
        others = sorted(p.name for p in out.iterdir())
        if others:
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            raise InputError(
                f"{out} holds other files ({shown}); a bundle is written into an empty or new "
                "folder: choose another --out or empty it"
            )
    elif out.exists():
        raise InputError(f"{out} is a file; a bundle is a folder: choose another --out")


def _write_whole(out: Path, files: dict[str, bytes], file_mode: int | None) -> None:
    """Write `files` into a temporary folder beside `out`, then rename it onto `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    try:
        for name, data in files.items():
            file = tmp / name
            file.write_bytes(data)
            if file_mode is not None:
                os.chmod(file, file_mode)
        if file_mode is not None:
            os.chmod(tmp, folder_mode(file_mode))
        _check_out(out)  # still empty, or still absent
        if out.is_dir():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
