"""Masking of pii values: a keyed hash (equal values still match, so joins work) or nothing.

The key is `SHIPYARD_MASKING_KEY` when set (set the same one on every machine whose logs are
joined); otherwise a random key kept in `<SHIPYARD_HOME>/masking.key` (mode 600), made on first
use. Without the key nobody can test a guess (`is this the hash of 'Ana Lima'?`) against a
masked value, which a plain hash of a name or an id would allow.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import ConfigError

__all__ = ["Masker"]

_PREFIX = "hmac:"


class Masker:
    """Hash or redact values.

    Args:
        key: the secret of the keyed hash (at least 16 bytes).
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ConfigError(f"the masking key has {len(key)} bytes; expected 16 or more")
        self._key = key

    @classmethod
    def for_home(cls, home: Path, key: str | None = None) -> Masker:
        """The masker of a Shipyard home: `key` when given, else the home's key file (made once).

        Raises:
            ConfigError: the key is shorter than 16 characters, or the key file cannot be read or made.
        """
        if key:
            return cls(key.encode())
        path = home / "masking.key"
        try:
            if not path.exists():
                home.mkdir(parents=True, exist_ok=True)
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                    handle.write(secrets.token_hex(32))
            return cls(path.read_text(encoding="ascii").strip().encode())
        except FileExistsError:  # another process made it first: read theirs
            return cls(path.read_text(encoding="ascii").strip().encode())
        except OSError as exc:
            raise ConfigError(
                f"the masking key file {path} cannot be used: {exc}; set SHIPYARD_MASKING_KEY"
            ) from None

    def value(self, value: Any) -> str | None:
        """The keyed hash of one value (None stays None)."""
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        digest = hmac.new(self._key, str(value).encode(), hashlib.sha256).hexdigest()
        return _PREFIX + digest[:32]

    def column(self, values: Any, mode: str) -> np.ndarray[Any, Any]:
        """A column masked by `mode`: 'hash' (keyed) or 'redact' (every value None)."""
        array = np.asarray(values, dtype=object)
        if mode == "redact":
            return np.full(len(array), None, dtype=object)
        return np.fromiter((self.value(v) for v in array.tolist()), dtype=object, count=len(array))

    def columns(self, columns: Mapping[str, Any], masks: Mapping[str, str]) -> dict[str, Any]:
        """`columns` with the ones named in `masks` masked; the others as they are."""
        return {n: self.column(c, masks[n]) if n in masks else c for n, c in columns.items()}
