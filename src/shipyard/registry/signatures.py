"""Signatures of versions in the metadata store: sign, list, verify (`registry.signatures`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from shipyard.core.refs import ModelRef
from shipyard.errors import SignatureError
from shipyard.registry.queries import as_ref, read_version, record_change, resolve
from shipyard.registry.records import ModelVersion, version_manifest
from shipyard.security.access import Action
from shipyard.security.context import Context
from shipyard.security.signing import SigningKey, TrustedKeys
from shipyard.store.metadata import as_utc, utcnow
from shipyard.store.schema import signatures

__all__ = ["SignatureRecord", "Signatures", "version_manifest"]


@dataclass(frozen=True)
class SignatureRecord:
    """One signature of a version."""

    key_id: str
    signature: str
    signed_at: datetime
    actor: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "signature": self.signature,
            "signed_at": self.signed_at.isoformat(),
            "actor": self.actor,
        }


class Signatures:
    """Sign versions and check their signatures against trusted keys.

    Args:
        context: who signs, the settings (the trusted keys) and the metadata store.
    """

    def __init__(self, context: Context) -> None:
        self.context = context

    def sign(self, ref: str | ModelRef, key: SigningKey) -> SignatureRecord:
        """Sign the version `ref` names with `key` (again: the new signature replaces the old).

        Raises:
            PermissionDeniedError: the principal may not sign (deployer and up).
            NotFoundError: no such version.
        """
        parsed = as_ref(ref)
        context = self.context
        context.allow(Action.SIGN, parsed.name)
        actor = context.actor

        def change(conn: Connection) -> SignatureRecord:
            version = read_version(conn, resolve(conn, parsed))
            body = version_manifest(version)
            record = SignatureRecord(key.id, key.sign(body), utcnow(), actor)
            conn.execute(
                delete(signatures).where(
                    signatures.c.model == version.name,
                    signatures.c.version == version.version,
                    signatures.c.key_id == key.id,
                )
            )
            digest = hashlib.sha256(body).hexdigest()
            row = {
                "model": version.name, "version": version.version, "key_id": record.key_id,
                "signature": record.signature, "manifest_sha256": digest,
                "signed_at": record.signed_at, "actor": actor,
            }  # fmt: skip
            conn.execute(insert(signatures).values(**row))
            record_change(
                conn, "sign", actor=actor, model=version.name, version=version.version,
                detail={"key_id": key.id, "manifest_sha256": digest},
            )  # fmt: skip
            return record

        return context.meta.write(change)

    def list(self, version: ModelVersion) -> list[SignatureRecord]:
        """The signatures of `version`, oldest first.

        Raises:
            PermissionDeniedError: the principal may not read the model.
        """
        self.context.allow(Action.READ, version.name)
        with self.context.meta.read() as conn:
            rows = conn.execute(
                select(signatures)
                .where(signatures.c.model == version.name, signatures.c.version == version.version)
                .order_by(signatures.c.id)
            ).all()
        return [SignatureRecord(r.key_id, r.signature, as_utc(r.signed_at), r.actor) for r in rows]

    def verify(self, version: ModelVersion, trusted: TrustedKeys | None = None) -> str:
        """The id of the trusted key whose signature of `version` verifies.

        Args:
            version: the version.
            trusted: the keys to accept; by default those of `SHIPYARD_TRUSTED_KEYS`.

        Raises:
            SignatureError: unsigned, signed by no trusted key, or changed since it was signed.
        """
        keys = trusted or TrustedKeys.from_paths(self.context.settings.trusted_keys)
        pairs = [(s.key_id, s.signature) for s in self.list(version)]
        return keys.check(version_manifest(version), pairs, what=str(version.ref))

    def verifies(self, version: ModelVersion) -> bool:
        """Whether a trusted key's signature of `version` verifies (False when no key is trusted,
        or the version is unsigned), without raising."""
        if not self.context.settings.trusted_keys or not self.list(version):
            return False
        try:
            self.verify(version)
        except SignatureError:
            return False
        return True
