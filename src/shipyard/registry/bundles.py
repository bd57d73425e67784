"""A baked bundle: one version, whole, in a folder that needs no metadata store to serve.

The folder `shipyard.packaging.bundle.write_bundle` writes:

- `artifact.zip`: the version's artifact as the artifact store holds it (the packed SavedModel;
  its SHA-256 is the version's `artifact_digest`, which a signature covers);
- `version.json`: the version's record (contract, profile, explanation background and importance,
  lineage, metrics, tags);
- `signatures.json`: the version's signatures, when it has any;
- `model.pkl`: for scikit-learn, the model as a protocol-5 pickle that loads without skops
  (`flavors/baked.py`), the globals it references listed in the manifest;
- `manifest.json`: the format, the model's name, version and flavor, Shipyard's version, when it
  was written, and the SHA-256 and size of every other file.

`open_bundle` checks every file against the manifest before anything is read from it, and
`Bundle.load` checks the signature as `Registry.load` does. This module imports neither
SQLAlchemy nor skops (for a scikit-learn bundle), so a baked server starts in the time its
framework takes to import.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from shipyard.config import Settings
from shipyard.core.contract import Contract
from shipyard.core.profile import Profile
from shipyard.errors import ArtifactIntegrityError, InputError, SignatureError
from shipyard.flavors import flavor_named, unpack
from shipyard.registry.loaded import LoadedModel, load_artifact
from shipyard.registry.records import ModelVersion, version_manifest

__all__ = [
    "ARTIFACT",
    "BAKED",
    "FORMAT",
    "MANIFEST",
    "SIGNATURES",
    "VERSION",
    "Bundle",
    "file_entry",
    "open_bundle",
    "version_record",
]

FORMAT = "shipyard-bundle-v1"
MANIFEST = "manifest.json"
ARTIFACT = "artifact.zip"
VERSION = "version.json"
SIGNATURES = "signatures.json"
BAKED = "model.pkl"


def file_entry(data: bytes) -> dict[str, Any]:
    """What the manifest records of one file: its SHA-256 and size."""
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def version_record(version: ModelVersion) -> dict[str, Any]:
    """The version as `version.json` holds it: every field, the profile and explanation included."""
    return {
        "name": version.name,
        "version": version.version,
        "status": version.status,
        "flavor": version.flavor,
        "artifact_digest": version.artifact_digest,
        "artifact_size": version.artifact_size,
        "contract": version.contract.to_dict(),
        "profile": version.profile.to_dict() if version.profile is not None else None,
        "metrics": dict(version.metrics),
        "lineage": dict(version.lineage),
        "description": version.description,
        "created_at": version.created_at.isoformat(),
        "aliases": list(version.aliases),
        "tags": dict(version.tags),
        "explanation": dict(version.explanation) if version.explanation else None,
    }


def _read_version(data: Mapping[str, Any]) -> ModelVersion:
    profile = data.get("profile")
    return ModelVersion(
        name=data["name"],
        version=int(data["version"]),
        status=data["status"],
        flavor=data["flavor"],
        artifact_digest=data["artifact_digest"],
        artifact_size=int(data["artifact_size"]),
        contract=Contract.from_dict(data["contract"]),
        profile=Profile.from_dict(profile) if profile else None,
        metrics=data.get("metrics", {}),
        lineage=data.get("lineage", {}),
        description=data.get("description", ""),
        created_at=datetime.fromisoformat(data["created_at"]),
        aliases=tuple(data.get("aliases", ())),
        tags=data.get("tags", {}),
        explanation=data.get("explanation"),
    )


@dataclass(frozen=True)
class Bundle:
    """An opened bundle whose files matched their digests.

    Attributes:
        path: the folder.
        manifest: `manifest.json` as read.
        version: the version's record.
        files: every file the manifest lists, by name, as read (and checked).
    """

    path: Path
    manifest: Mapping[str, Any]
    version: ModelVersion
    files: Mapping[str, bytes]

    @property
    def signatures(self) -> list[tuple[str, str]]:
        """The version's signatures as (key id, signature) pairs."""
        if SIGNATURES not in self.files:
            return []
        return [(s["key_id"], s["signature"]) for s in json.loads(self.files[SIGNATURES])]

    def load(
        self,
        *,
        require_signature: bool | None = None,
        trust_pickle: bool = False,
        settings: Settings | None = None,
    ) -> LoadedModel:
        """Load the version to predict with, as `Registry.load` would from the registry.

        A scikit-learn version loads from its baked pickle (no skops) unless a signature is
        required: no signature covers the pickle, which is derived from the signed artifact,
        so then the artifact itself is loaded.

        Args:
            require_signature: refuse a version without a valid signature by a trusted key
                (`SHIPYARD_TRUSTED_KEYS`); by default `SHIPYARD_REQUIRE_SIGNATURE`.
            trust_pickle: allow a custom Python model (pyfunc); it is loaded only when signed by
                a trusted key.
            settings: where the trusted keys are named; `Settings.from_env()` when omitted.

        Raises:
            SignatureError: a signature is required and none by a trusted key verifies.
            UntrustedArtifactError: loading would run code or construct types not trusted.
        """
        settings = settings or Settings.from_env()
        required = settings.require_signature if require_signature is None else require_signature
        if required or (trust_pickle and flavor_named(self.version.flavor).unpickles):
            self._verify(settings)
            signed = True
        else:  # a valid signature also lets an artifact that declares extra skops types load
            signed = self._verifies(settings)
        baked = self.manifest.get("baked")
        if baked and not required:
            return self._load_baked(baked, signed=signed)
        return load_artifact(self.version, self.files[ARTIFACT], trust_pickle=trust_pickle, signed=signed)

    def _load_baked(self, baked: Mapping[str, Any], *, signed: bool) -> LoadedModel:
        from shipyard.flavors.baked import load_baked
        from shipyard.flavors.sklearn import SklearnPredictor

        saved = unpack(self.files[ARTIFACT])
        if saved.meta.get("trusted_types"):  # declared extra types load through skops, signed
            return load_artifact(self.version, self.files[ARTIFACT], signed=signed)
        data = self.files.get(str(baked.get("file")))
        if data is None:
            raise ArtifactIntegrityError(
                f"the manifest of {self.path} names baked model {baked.get('file')!r}, which is not "
                "among the files it lists; write the bundle again"
            )
        model = load_baked(data, list(baked.get("globals", ())))
        return LoadedModel(self.version, SklearnPredictor(model, dict(saved.meta)), signed=signed)

    def _verify(self, settings: Settings) -> str:
        from shipyard.security.signing import TrustedKeys

        keys = TrustedKeys.from_paths(settings.trusted_keys)
        return keys.check(
            version_manifest(self.version), self.signatures, what=f"{self.version.ref} (bundle {self.path})"
        )

    def _verifies(self, settings: Settings) -> bool:
        if not settings.trusted_keys or not self.signatures:
            return False
        try:
            self._verify(settings)
        except SignatureError:
            return False
        return True


def open_bundle(path: str | Path) -> Bundle:
    """Open the bundle in folder `path`, checking every file against the manifest's digests.

    Raises:
        InputError: the folder is not a bundle (no manifest, or one of another format).
        ArtifactIntegrityError: a file is missing, or its size or SHA-256 differs from the
            manifest's, or the artifact is not the one the version record names.
    """
    folder = Path(path)
    manifest = _read_manifest(folder)
    files: dict[str, bytes] = {}
    for name, entry in manifest["files"].items():
        files[name] = _checked(folder, name, entry)
    for needed in (ARTIFACT, VERSION):
        if needed not in files:
            raise ArtifactIntegrityError(f"the bundle at {folder} lists no {needed}; write it again")
    version = _read_version(json.loads(files[VERSION]))
    actual = hashlib.sha256(files[ARTIFACT]).hexdigest()
    if actual != version.artifact_digest:
        raise ArtifactIntegrityError(
            f"{folder / ARTIFACT} has SHA-256 {actual[:12]}, but the version record names artifact "
            f"{version.artifact_digest[:12]}; the bundle was assembled from different versions"
        )
    return Bundle(folder, manifest, version, files)


def _read_manifest(folder: Path) -> dict[str, Any]:
    file = folder / MANIFEST
    if not file.is_file():
        what = "does not exist" if not folder.exists() else f"holds no {MANIFEST}"
        raise InputError(
            f"{folder} {what}; expected a bundle folder written by 'shipyard package' or "
            "shipyard.packaging.bundle.write_bundle"
        )
    try:
        manifest = json.loads(file.read_bytes())
    except ValueError as exc:
        raise ArtifactIntegrityError(f"{file} is not JSON ({exc}); write the bundle again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise InputError(f"{file} has format {found!r}; expected {FORMAT!r}")
    return manifest


def _checked(folder: Path, name: str, entry: Mapping[str, Any]) -> bytes:
    file = folder / name
    if Path(name).name != name:
        raise ArtifactIntegrityError(
            f"the bundle's manifest lists {name!r}, which is not a file name in {folder}"
        )
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise ArtifactIntegrityError(f"{file} is missing; the bundle's manifest lists it") from None
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != entry.get("size") or digest != entry.get("sha256"):
        raise ArtifactIntegrityError(
            f"{file} was changed after the bundle was written: SHA-256 {digest[:12]} and "
            f"{len(data)} bytes, but the manifest says {str(entry.get('sha256'))[:12]} and "
            f"{entry.get('size')} bytes; refusing to load it. Write the bundle again"
        )
    return data
