"""The artifact store: immutable blobs addressed by their SHA-256, over any fsspec filesystem."""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

from shipyard.errors import ArtifactIntegrityError, StoreError

__all__ = ["ArtifactStore", "digest_of"]

_DIGEST = re.compile(r"[0-9a-f]{64}")


def digest_of(data: bytes) -> str:
    """The hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


class ArtifactStore:
    """Blobs under `<root>/sha256/<2 hex>/<digest>`, written to a temporary name then renamed.

    Args:
        url: a local folder or any fsspec URL (`s3://bucket/prefix`, `memory://x`).
    """

    def __init__(self, url: str) -> None:
        from fsspec.core import url_to_fs

        self.url = url
        self.fs: Any
        self.fs, self.root = url_to_fs(url)
        self.root = self.root.rstrip("/")

    def path_of(self, digest: str) -> str:
        """Where the blob with `digest` lives.

        Raises:
            StoreError: the digest is not 64 lowercase hex characters.
        """
        if not _DIGEST.fullmatch(digest):
            raise StoreError(f"artifact digest {digest!r} is malformed; expected 64 hex characters")
        return f"{self.root}/sha256/{digest[:2]}/{digest}"

    def put(self, data: bytes) -> str:
        """Store `data` once and return its digest; storing the same bytes again is a no-op."""
        digest = digest_of(data)
        final = self.path_of(digest)
        if self.fs.exists(final):
            return digest
        tmp = f"{self.root}/tmp/{uuid.uuid4().hex}.part"
        self.fs.makedirs(f"{self.root}/tmp", exist_ok=True)
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        try:
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, final)
        except Exception:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            raise
        return digest

    def get(self, digest: str) -> bytes:
        """The bytes stored under `digest`, checked against it.

        Raises:
            StoreError: no blob has that digest.
            ArtifactIntegrityError: the bytes on storage no longer hash to `digest`.
        """
        path = self.path_of(digest)
        try:
            data: bytes = self.fs.cat_file(path)
        except FileNotFoundError:
            raise StoreError(
                f"artifact {digest[:12]} is missing from the store at {self.url}; it was deleted "
                "or the store URL (SHIPYARD_STORE_URL) points elsewhere"
            ) from None
        actual = digest_of(data)
        if actual != digest:
            raise ArtifactIntegrityError(
                f"artifact {digest[:12]} at {path} was modified on storage: its SHA-256 is now "
                f"{actual[:12]}; refusing to load it. Restore it from a backup or register the "
                "model again"
            )
        return data

    def exists(self, digest: str) -> bool:
        """True when a blob with `digest` is stored."""
        return bool(self.fs.exists(self.path_of(digest)))

    def delete(self, digest: str) -> None:
        """Remove the blob with `digest` if it is there."""
        path = self.path_of(digest)
        if self.fs.exists(path):
            self.fs.rm(path)
