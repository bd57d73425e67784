"""The artifact store: immutable blobs addressed by their SHA-256, over any fsspec filesystem.

With a `Cipher` (encryption at rest, see `security/encryption.py`), blobs are stored sealed,
each with a small key file beside it (`<digest>.key`); the digest is still that of the plain
bytes, checked after opening. Blobs stored before encryption was turned on stay readable.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any, Protocol

from shipyard.errors import ArtifactIntegrityError, EncryptionError, StoreError

__all__ = ["SEALED", "ArtifactStore", "Cipher", "digest_of", "read_sealed", "write_sealed", "write_whole"]

SEALED = b"SHIPYARD-AES256GCM-1\n"  # the first bytes of a sealed object: the storage format


class Cipher(Protocol):
    """Encryption at rest: seals an object into (sealed bytes, key file) and opens it again."""

    def seal(self, name: str, plaintext: bytes) -> tuple[bytes, bytes]: ...

    def open(self, name: str, blob: bytes, sidecar: bytes | None) -> bytes: ...


_DIGEST = re.compile(r"[0-9a-f]{64}")


def digest_of(data: bytes) -> str:
    """The hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


class ArtifactStore:
    """Blobs under `<root>/sha256/<2 hex>/<digest>`, written to a temporary name then renamed.

    Args:
        url: a local folder or any fsspec URL (`s3://bucket/prefix`, `memory://x`).
        cipher: seal new blobs at rest; None to store them plain.
    """

    def __init__(self, url: str, *, cipher: Cipher | None = None) -> None:
        from fsspec.core import url_to_fs

        self.url = url
        self.cipher = cipher
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
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        write_sealed(self.fs, final, data, name=digest, cipher=self.cipher)
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
        data = read_sealed(
            self.fs, path, data, name=digest, cipher=self.cipher, what=f"artifact {digest[:12]}"
        )
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
        for file in (path, f"{path}.key"):
            if self.fs.exists(file):
                self.fs.rm(file)


def write_sealed(fs: Any, path: str, data: bytes, *, name: str, cipher: Cipher | None) -> None:
    """Write `data` whole at `path`; with a cipher, sealed as `name` with its key file beside it
    (written first, so an object never lacks its key)."""
    if cipher is not None:
        data, sidecar = cipher.seal(name, data)
        write_whole(fs, f"{path}.key", sidecar)
    write_whole(fs, path, data)


def read_sealed(fs: Any, path: str, blob: bytes, *, name: str, cipher: Cipher | None, what: str) -> bytes:
    """`blob` as read from `path`: opened with its key file when it is sealed, else as it is.

    Raises:
        EncryptionError: it is sealed and there is no cipher, or the cipher cannot open it.
    """
    if not blob.startswith(SEALED):
        return blob
    if cipher is None:
        raise EncryptionError(
            f"{what} is encrypted at rest; set SHIPYARD_ENCRYPTION_KEY (or SHIPYARD_ENCRYPTION_KEY_FILE) "
            "to the master key it was written with"
        )
    try:
        sidecar: bytes | None = fs.cat_file(f"{path}.key")
    except FileNotFoundError:
        sidecar = None
    return cipher.open(name, blob, sidecar)


def write_whole(fs: Any, path: str, data: bytes) -> None:
    """Write `data` to `path` on `fs` under a temporary name beside it, then rename it into place."""
    folder, name = path.rsplit("/", 1)
    tmp = f"{folder}/.{name}.{uuid.uuid4().hex}.part"
    try:
        fs.pipe_file(tmp, data)
        fs.mv(tmp, path)
    except Exception:
        if fs.exists(tmp):
            fs.rm(tmp)
        raise
