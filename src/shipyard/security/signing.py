"""Signed versions: an Ed25519 signature over a version's manifest, checked against trusted keys.

The manifest names everything that decides what a version does: the model's name and version
number, its flavor, the artifact's SHA-256 and size, and the contract, as canonical JSON. The
artifact's bytes are checked against the digest on every load, so a valid signature over the
manifest vouches for the bytes too.

A signing key is an Ed25519 private key in a PEM file (`shipyard sign --new-key` writes one,
with its public half beside it). Trust is a set of public keys (PEM files, or folders of them)
named by `SHIPYARD_TRUSTED_KEYS`; a key's id is the first 16 hex characters of the SHA-256 of
its raw public bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import ConfigError, SignatureError

__all__ = ["SigningKey", "TrustedKeys", "key_id", "manifest", "new_signing_key"]


def manifest(
    *,
    name: str,
    version: int,
    flavor: str,
    artifact_digest: str,
    artifact_size: int,
    contract: Mapping[str, Any],
) -> bytes:
    """The bytes a signature covers: the version's identity, flavor, artifact and contract."""
    body = {
        "kind": "shipyard-model-version-v1",
        "name": name,
        "version": version,
        "flavor": flavor,
        "artifact": {"sha256": artifact_digest, "size": artifact_size},
        "contract": contract,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def key_id(public: Any) -> str:
    """The id of an Ed25519 public key: 16 hex characters of the SHA-256 of its raw bytes."""
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key to sign versions with."""

    private: Any

    @property
    def id(self) -> str:
        return key_id(self.private.public_key())

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> SigningKey:
        """Read a PEM private key.

        Raises:
            ConfigError: the file cannot be read, or is not an unencrypted Ed25519 private key.
        """
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        try:
            key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        except OSError as exc:
            raise ConfigError(f"the signing key {path} cannot be read: {exc.strerror}") from None
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{path} is not an unencrypted PEM private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{path} holds a {type(key).__name__}; Shipyard signs with Ed25519 keys")
        return cls(key)

    def sign(self, data: bytes) -> str:
        """The signature of `data`, base64."""
        return base64.b64encode(self.private.sign(data)).decode()


class TrustedKeys:
    """The public keys whose signatures a loader accepts.

    Args:
        keys: Ed25519 public keys.
    """

    def __init__(self, keys: Iterable[Any]) -> None:
        self.keys = {key_id(k): k for k in keys}

    @classmethod
    def from_paths(cls, paths: Sequence[str | os.PathLike[str]]) -> TrustedKeys:
        """Public keys from PEM files and folders of `*.pub`/`*.pem` files.

        Raises:
            ConfigError: a path is missing, or a file is not an Ed25519 public key.
        """
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        files: list[Path] = []
        for entry in map(Path, paths):
            if entry.is_dir():
                files += sorted(p for p in entry.iterdir() if p.suffix in (".pub", ".pem"))
            elif entry.is_file():
                files.append(entry)
            else:
                raise ConfigError(f"trusted key {entry} does not exist (SHIPYARD_TRUSTED_KEYS)")
        keys = []
        for file in files:
            try:
                key = serialization.load_pem_public_key(file.read_bytes())
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"trusted key {file} is not a PEM public key: {exc}") from None
            if not isinstance(key, Ed25519PublicKey):
                raise ConfigError(f"trusted key {file} is a {type(key).__name__}; expected Ed25519")
            keys.append(key)
        return cls(keys)

    def check(self, data: bytes, signatures: Iterable[tuple[str, str]], *, what: str) -> str:
        """The id of a trusted key that signed `data`, from (key id, signature) pairs.

        Raises:
            SignatureError: no signature, none by a trusted key, or one that does not verify
                (the version was changed after it was signed).
        """
        from cryptography.exceptions import InvalidSignature

        pairs = list(signatures)
        if not pairs:
            raise SignatureError(
                f"{what} is not signed; sign it with 'shipyard sign {what} --key KEY.pem' by a key the "
                "loader trusts (SHIPYARD_TRUSTED_KEYS)"
            )
        if not self.keys:
            raise SignatureError(
                f"{what} must be signed by a trusted key, and no key is trusted: set SHIPYARD_TRUSTED_KEYS"
            )
        for kid, signature in pairs:
            key = self.keys.get(kid)
            if key is None:
                continue
            try:
                key.verify(base64.b64decode(signature), data)
            except (InvalidSignature, binascii.Error, ValueError):
                raise SignatureError(
                    f"the signature of {what} by key {kid} does not verify: the version's artifact, "
                    "flavor or contract is not what was signed"
                ) from None
            return kid
        signers = ", ".join(sorted({kid for kid, _ in pairs}))
        raise SignatureError(
            f"{what} is signed only by untrusted key(s) {signers}; trusted are "
            f"{', '.join(sorted(self.keys)) or 'none'} (SHIPYARD_TRUSTED_KEYS)"
        )


def new_signing_key(private_path: Path) -> tuple[str, Path]:
    """Write a new Ed25519 key to `private_path` (mode 600) and its public half beside it (`.pub`).

    Returns:
        The key's id and the public key's path.

    Raises:
        ConfigError: either file exists already.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public_path = private_path.with_name(private_path.name.removesuffix(".pem") + ".pub")
    for path in (private_path, public_path):
        if path.exists():
            raise ConfigError(f"{path} exists; a key file is never overwritten (choose another path)")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key_id(key.public_key()), public_path
