"""The artifact store: immutable blobs addressed by their SHA-256, over any fsspec filesystem.

With a `Cipher` (encryption at rest, see `security/encryption.py`), blobs are stored sealed,
each with a small key file beside it (`<digest>.key`); the digest is still that of the plain
bytes, checked after opening. Blobs stored before encryption was turned on stay readable.

On a local disk, blobs, key files and the folders made for them get `file_mode` (owner-only by
default; see `shipyard.store.permissions`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from typing import Any, Protocol

from shipyard.errors import ArtifactIntegrityError, EncryptionError, StoreError
from shipyard.store.objects import WholeFile, open_url
from shipyard.store.permissions import DEFAULT_FILE_MODE, is_local, make_folders

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
    """Blobs under `<root>/sha256/<2 hex>/<digest>`, each written whole or not at all (`write_whole`).

    Args:
        url: a local folder or any fsspec URL (`s3://bucket/prefix`, `memory://x`).
        cipher: seal new blobs at rest; None to store them plain.
        file_mode: the mode of new files on a local disk (folders get the matching folder
            mode); None to leave it to the umask.
    """

    def __init__(
        self, url: str, *, cipher: Cipher | None = None, file_mode: int | None = DEFAULT_FILE_MODE
    ) -> None:
        self.url = url
        self.cipher = cipher
        self.file_mode = file_mode
        self.fs: Any
        self.fs, self.root = open_url(url)
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
        make_folders(self.fs, final.rsplit("/", 1)[0], file_mode=self.file_mode)
        try:
            write_sealed(self.fs, final, data, name=digest, cipher=self.cipher, file_mode=self.file_mode)
        except FileNotFoundError as exc:  # on S3: the bucket does not exist
            raise StoreError(
                f"cannot store artifact {digest[:12]} in the store at {self.url}: {exc}; expected an "
                "existing bucket (create it first) or folder (SHIPYARD_STORE_URL)"
            ) from None
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


def write_sealed(
    fs: Any, path: str, data: bytes, *, name: str, cipher: Cipher | None, file_mode: int | None = None
) -> None:
    """Write `data` whole at `path`; with a cipher, sealed as `name` with its key file beside it
    (written first, so an object never lacks its key). `file_mode` as in `write_whole`."""
    if cipher is not None:
        data, sidecar = cipher.seal(name, data)
        write_whole(fs, f"{path}.key", sidecar, file_mode=file_mode)
    write_whole(fs, path, data, file_mode=file_mode)


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


def write_whole(fs: Any, path: str, data: bytes, *, file_mode: int | None = None) -> None:
    """Write `data` to `path` on `fs` whole or not at all.

    On a local disk: under a temporary name beside it, then renamed into place; the file gets
    `file_mode` from its creation on (never readable by others even while it is written); with
    None, the mode of the file it replaces, or the umask's. On an object store: uploaded to
    `path` itself, which appears only when the upload completes (see `shipyard.store.objects`).
    """
    if not is_local(fs):
        with WholeFile(fs, path) as handle:
            handle.write(data)
        return
    folder, name = path.rsplit("/", 1)
    tmp = f"{folder}/.{name}.{uuid.uuid4().hex}.part"
    try:
        _write_local(tmp, data, file_mode=file_mode, like=path)
        fs.mv(tmp, path)
    except Exception:
        if fs.exists(tmp):
            fs.rm(tmp)
        raise


def _write_local(tmp: str, data: bytes, *, file_mode: int | None, like: str) -> None:
    if file_mode is None:
        with contextlib.suppress(FileNotFoundError):  # a new file: the umask decides, as with open()
            file_mode = os.stat(like).st_mode & 0o777
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if file_mode is None else file_mode)
    with open(fd, "wb") as file:
        if file_mode is not None:
            os.fchmod(fd, file_mode)  # the umask may have taken bits a shared mode asked for
        file.write(data)
