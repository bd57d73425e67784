"""Encryption at rest: AES-256-GCM envelopes for artifacts and prediction-log segments.

Each object gets its own random 256-bit data key. The object is encrypted with it (AES-GCM,
the object's name as associated data, so blobs cannot be swapped), and the data key is wrapped
by the master key (AES-GCM again). The wrapped key goes into a small sidecar beside the object
(`<object>.key`, JSON), so whoever holds the master key and the store can read an object, Spark
executors included, and rotating the master key rewrites only the sidecars: the encrypted
objects are never touched.

The master key is 32 bytes, given as 64 hex characters or base64 in `SHIPYARD_ENCRYPTION_KEY`,
or in a file named by `SHIPYARD_ENCRYPTION_KEY_FILE`; `shipyard encryption new-key` makes one.
Its id (the first 16 hex characters of its SHA-256) is recorded in each sidecar, so a wrong key
is named as such rather than failing as corrupt data.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field
from typing import Any

from shipyard.config import Settings
from shipyard.errors import ConfigError, EncryptionError
from shipyard.store.artifacts import SEALED

__all__ = ["Envelope", "MasterKey", "envelope_for", "new_master_key", "rotate", "seal_existing"]
_NONCE = 12


@dataclass(frozen=True)
class MasterKey:
    """A 256-bit key-encryption key and its public id."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) != 32:
            raise ConfigError(f"the encryption key has {len(self.secret)} bytes; expected 32 (AES-256)")

    @property
    def id(self) -> str:
        """The first 16 hex characters of the key's SHA-256: safe to show and store."""
        return hashlib.sha256(b"shipyard-kek\n" + self.secret).hexdigest()[:16]

    @classmethod
    def parse(cls, text: str, *, where: str) -> MasterKey:
        """A key from 64 hex characters or base64 of 32 bytes.

        Raises:
            ConfigError: neither form, or not 32 bytes; the message never shows the text.
        """
        raw = text.strip()
        try:
            secret = bytes.fromhex(raw) if len(raw) == 64 else base64.b64decode(raw, validate=True)
        except (ValueError, binascii.Error):
            raise ConfigError(
                f"{where} is not a key: expected 64 hex characters or base64 of 32 bytes "
                "('shipyard encryption new-key' makes one)"
            ) from None
        if len(secret) != 32:
            raise ConfigError(f"{where} holds {len(secret)} bytes; expected 32 (AES-256)")
        return cls(secret)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> MasterKey:
        """A key from a file holding its hex or base64 form.

        Raises:
            ConfigError: the file cannot be read or holds no key.
        """
        try:
            text = open(path, encoding="ascii").read()  # noqa: SIM115 -- a small file, read once
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"the encryption key file {path} cannot be read: {exc}") from None
        return cls.parse(text, where=f"the encryption key file {path}")


def envelope_for(settings: Settings) -> Envelope | None:
    """The envelope for the configured master key (and the previous keys it also opens with),
    or None when encryption at rest is off.

    Raises:
        ConfigError: a key or a key file is malformed.
    """
    if settings.encryption_key:
        master = MasterKey.parse(settings.encryption_key, where="SHIPYARD_ENCRYPTION_KEY")
    elif settings.encryption_key_file:
        master = MasterKey.from_file(settings.encryption_key_file)
    else:
        if settings.encryption_previous_keys:
            raise ConfigError(
                "SHIPYARD_ENCRYPTION_PREVIOUS_KEYS is set but no master key is: set "
                "SHIPYARD_ENCRYPTION_KEY or SHIPYARD_ENCRYPTION_KEY_FILE too"
            )
        return None
    previous = tuple(_previous(text, i) for i, text in enumerate(settings.encryption_previous_keys))
    return Envelope(master, previous=previous)


def _previous(text: str, index: int) -> MasterKey:
    """A key of SHIPYARD_ENCRYPTION_PREVIOUS_KEYS: a key itself, or the path of a key file."""
    where = f"entry {index + 1} of SHIPYARD_ENCRYPTION_PREVIOUS_KEYS"
    if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
        return MasterKey.parse(text, where=where)
    if os.path.isfile(os.path.expanduser(text)):
        return MasterKey.from_file(os.path.expanduser(text))
    return MasterKey.parse(text, where=where + " (neither a key nor a key file)")


def new_master_key() -> str:
    """A new random master key, as 64 hex characters."""
    return secrets.token_hex(32)


class Envelope:
    """Seal and open objects under a master key.

    Args:
        master: the key that wraps new data keys.
        previous: older keys still accepted for opening (during a rotation).
    """

    def __init__(self, master: MasterKey, *, previous: tuple[MasterKey, ...] = ()) -> None:
        self.master = master
        self._keys = {k.id: k for k in (*previous, master)}

    @property
    def keys(self) -> tuple[MasterKey, ...]:
        """Every key this envelope opens with, the master key last."""
        return tuple(self._keys.values())

    def seal(self, name: str, plaintext: bytes) -> tuple[bytes, bytes]:
        """The encrypted object and its sidecar (the wrapped data key), for object `name`."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        data_key = AESGCM.generate_key(bit_length=256)
        nonce = secrets.token_bytes(_NONCE)
        blob = SEALED + nonce + AESGCM(data_key).encrypt(nonce, plaintext, _aad(name))
        return blob, self._wrap(name, data_key, self.master)

    def open(self, name: str, blob: bytes, sidecar: bytes | None) -> bytes:
        """The plaintext of an object `seal` made.

        Raises:
            EncryptionError: the sidecar is missing or names a key this envelope lacks, or the
                bytes were changed.
        """
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if sidecar is None:
            raise EncryptionError(
                f"{name} is encrypted but its key file ({name}.key) is missing from the store"
            )
        data_key = self._unwrap(name, sidecar)
        body = blob[len(SEALED) :]
        try:
            return AESGCM(data_key).decrypt(body[:_NONCE], body[_NONCE:], _aad(name))
        except InvalidTag:
            raise EncryptionError(
                f"{name} does not decrypt: its bytes were changed on storage; restore it from a backup"
            ) from None

    def rewrap(self, name: str, sidecar: bytes) -> bytes | None:
        """The sidecar wrapped by the current master key, or None when it already is."""
        if json.loads(sidecar).get("kek") == self.master.id:
            return None
        return self._wrap(name, self._unwrap(name, sidecar), self.master)

    def _wrap(self, name: str, data_key: bytes, master: MasterKey) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = secrets.token_bytes(_NONCE)
        wrapped = AESGCM(master.secret).encrypt(nonce, data_key, b"shipyard-dek\n" + _aad(name))
        record = {
            "v": 1,
            "alg": "AES-256-GCM",
            "kek": master.id,
            "nonce": base64.b64encode(nonce).decode(),
            "wrapped": base64.b64encode(wrapped).decode(),
        }
        return json.dumps(record, sort_keys=True).encode()

    def _unwrap(self, name: str, sidecar: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            record = json.loads(sidecar)
            kek, nonce, wrapped = (
                record["kek"],
                base64.b64decode(record["nonce"]),
                base64.b64decode(record["wrapped"]),
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise EncryptionError(f"the key file of {name} is damaged; restore it from a backup") from None
        master = self._keys.get(kek)
        if master is None:
            given = ", ".join(self._keys)
            raise EncryptionError(
                f"{name} was encrypted under master key {kek}, but the keys given are {given}; set "
                "SHIPYARD_ENCRYPTION_KEY (or SHIPYARD_ENCRYPTION_KEY_FILE) to the key it was written "
                "with, or add that key to SHIPYARD_ENCRYPTION_PREVIOUS_KEYS during a rotation"
            )
        try:
            return AESGCM(master.secret).decrypt(nonce, wrapped, b"shipyard-dek\n" + _aad(name))
        except InvalidTag:
            raise EncryptionError(f"the key file of {name} was changed; restore it from a backup") from None


def _aad(name: str) -> bytes:
    return name.encode()


def rotate(store_url: str, old: Envelope, new: MasterKey) -> tuple[int, int]:
    """Wrap every data key in the store under `new` instead of `old`'s keys; the objects stay as
    they are.

    Each key file is replaced whole (a temporary name, then a rename), so a rotation stopped
    half-way leaves every object readable with one key or the other; run it again to finish.

    Returns:
        How many key files were re-wrapped, and how many were under `new` already.

    Raises:
        EncryptionError: a key file is under a third key, or damaged.
    """
    from shipyard.store.artifacts import write_whole

    fs, objects = _stored_objects(store_url)
    envelope = Envelope(new, previous=old.keys)
    done = already = 0
    for path, name, has_key in objects:
        if not has_key:
            continue
        rewrapped = envelope.rewrap(name, fs.cat_file(f"{path}.key"))
        if rewrapped is None:
            already += 1
            continue
        write_whole(fs, f"{path}.key", rewrapped)
        done += 1
    return done, already


def seal_existing(store_url: str, master: MasterKey) -> tuple[int, int]:
    """Encrypt every object stored plain (before encryption was turned on) under `master`.

    An artifact is checked against its digest before it is sealed, so damaged bytes are never
    sealed as if they were good. Each object is sealed like a new one (its key file first, then
    the object, each under a temporary name, then renamed): readers see either the plain object
    or the sealed one, and a run stopped half-way is finished by running it again.

    Returns:
        How many objects were sealed, and how many were sealed already.

    Raises:
        ArtifactIntegrityError: a plain artifact no longer matches its digest.
    """
    from shipyard.errors import ArtifactIntegrityError
    from shipyard.store.artifacts import digest_of, write_sealed

    fs, objects = _stored_objects(store_url)
    envelope = Envelope(master)
    done = already = 0
    for path, name, _ in objects:
        with fs.open(path, "rb") as handle:  # the header says; a sealed object is not read whole
            if handle.read(len(SEALED)) == SEALED:
                already += 1
                continue
        blob: bytes = fs.cat_file(path)
        if not name.startswith("events/") and digest_of(blob) != name:
            raise ArtifactIntegrityError(
                f"artifact {name[:12]} at {path} no longer matches its digest; it was not sealed. "
                "Restore it from a backup, then run 'shipyard encryption seal' again"
            )
        write_sealed(fs, path, blob, name=name, cipher=envelope)
        done += 1
    return done, already


def _stored_objects(store_url: str) -> tuple[Any, list[tuple[str, str, bool]]]:
    """The store's filesystem and its objects, artifacts and prediction-log segments: each one's
    path, its name as sealed (an artifact's digest, a segment's path in the store), and whether
    it has a key file. Key files and temporaries are not objects."""
    from shipyard.store.objects import open_url

    fs, root = open_url(store_url)
    root = root.rstrip("/")
    objects = []
    for top in ("sha256", "events"):
        if not fs.exists(f"{root}/{top}"):
            continue
        files = set(fs.find(f"{root}/{top}"))
        for path in sorted(files):
            if path.endswith(".key") or path.rsplit("/", 1)[-1].startswith("."):
                continue
            relative = path[len(root) + 1 :]
            name = relative.rsplit("/", 1)[-1] if top == "sha256" else relative
            objects.append((path, name, f"{path}.key" in files))
    return fs, objects
