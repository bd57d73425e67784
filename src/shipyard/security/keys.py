"""API keys: random secrets shown once, kept only as a slow hash, found by a public prefix.

A key reads `sy_<prefix>_<secret>`. The prefix (10 random characters) is stored in clear to
find the key's row; the secret (32 random bytes) only as its scrypt hash with a per-key salt,
so a copy of the database does not give anyone a working key. A key has a name, a role, an
optional list of model patterns it is limited to, an optional request rate, an optional expiry,
and can be revoked; creating and revoking write audit entries.

`Keys` is the store an admin manages keys with: every action needs the manage-keys role of the
context's principal. `KeyVerifier` is the read path that finds a principal in the first place
(a server's `Guard`, `security.identity`, the scheduler's check of a schedule's key): it acts for
no one, so it has no principal to check, and it only reads.

Checking a key costs one scrypt (tens of milliseconds, on purpose), so `KeyVerifier` remembers
the keys it verified, by a SHA-256 of the whole key, and `cached` trusts each key's row
(revoked? expired?) for at most `REFRESH` seconds: a revoked key stops working on every server
within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from shipyard.errors import AuthenticationError, ConfigError, ConflictError, NotFoundError
from shipyard.security import audit
from shipyard.security.access import Action, Principal, Role, check_patterns, parse_role
from shipyard.security.context import Context, HasContext, context_of
from shipyard.store.metadata import MetadataStore, as_utc, utcnow
from shipyard.store.schema import api_keys

__all__ = ["REFRESH", "ApiKey", "KeyVerifier", "Keys", "NewKey"]

REFRESH = 5.0  # seconds a verified key's row is trusted before it is read again
_TOKEN = re.compile(r"sy_([a-z2-7]{10})_([A-Za-z0-9_-]{43})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
_DUMMY_SALT = "00" * 16
_TOUCH_EVERY = 60.0  # seconds between writes of a key's last use


@dataclass(frozen=True, kw_only=True)
class ApiKey:
    """An API key as stored: never its secret."""

    name: str
    prefix: str
    role: Role
    models: tuple[str, ...]
    rate: float | None
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def state(self) -> str:
        """'active', 'expired' or 'revoked'."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= utcnow():
            return "expired"
        return "active"

    def principal(self) -> Principal:
        """Who a request with this key is."""
        return Principal(self.name, self.role, self.models, via="api-key", rate=self.rate)

    def to_dict(self) -> dict[str, Any]:
        """The key's record as JSON-safe data (no secret, no hash)."""

        def when(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "name": self.name,
            "prefix": self.prefix,
            "role": str(self.role),
            "models": list(self.models),
            "rate": self.rate,
            "state": self.state,
            "created_at": when(self.created_at),
            "created_by": self.created_by,
            "expires_at": when(self.expires_at),
            "revoked_at": when(self.revoked_at),
            "last_used_at": when(self.last_used_at),
        }


@dataclass(frozen=True)
class NewKey:
    """A key just created: `secret` is the whole key, shown this once and never stored."""

    key: ApiKey
    secret: str


class Keys:
    """Create, list, read and revoke the API keys of a metadata store: an admin's store.

    Args:
        context: who acts (each action needs the manage-keys role), and the metadata store; or
            anything holding one, such as a `Registry`.
    """

    def __init__(self, context: Context | HasContext) -> None:
        self.context = context_of(context)
        self.meta = self.context.meta

    def create(
        self,
        name: str,
        *,
        role: Role | str,
        models: Sequence[str] = (),
        expires: timedelta | None = None,
        rate: float | None = None,
    ) -> NewKey:
        """Create a key and return it with its secret, which is not kept anywhere.

        Args:
            name: a unique name for whoever holds the key (`ci-bot`).
            role: reader, predictor, deployer or admin.
            models: model name patterns the key is limited to; empty for every model.
            expires: how long the key works; None for until revoked.
            rate: requests per second a server accepts with this key; None for its default.

        Raises:
            PermissionDeniedError: the principal may not manage keys.
            ConfigError: a malformed name, role, pattern, expiry or rate.
            ConflictError: a key of that name exists (revoked keys keep their names).
        """
        self.context.allow(Action.MANAGE_KEYS)
        actor = self.context.actor
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(
                f"key name {name!r} is not allowed; expected 1-128 letters, digits, '.', '_', '@' "
                "or '-', starting with a letter or digit (e.g. 'ci-bot')"
            )
        role = role if isinstance(role, Role) else parse_role(role, where="--role")
        patterns = check_patterns(models)
        if expires is not None and expires.total_seconds() <= 0:
            raise ConfigError(f"--expires is {expires}; expected a time span above 0 (e.g. 90d)")
        if rate is not None and not rate > 0:
            raise ConfigError(f"--rate is {rate}; expected requests per second above 0")
        prefix = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(10))
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        now = utcnow()
        expires_at = None if expires is None else now + expires
        row = {
            "name": name, "prefix": prefix, "salt": salt, "hash": _slow_hash(secret, salt),
            "role": str(role), "models": list(patterns), "rate": rate, "created_at": now,
            "created_by": actor, "expires_at": expires_at,
        }  # fmt: skip

        def change(conn: Any) -> None:
            if conn.execute(select(api_keys.c.id).where(api_keys.c.name == name)).first() is not None:
                raise ConflictError(
                    f"a key named {name!r} exists already; choose another name, or revoke it and "
                    "create one under a new name"
                )
            conn.execute(insert(api_keys).values(**row))
            audit.append(
                conn, "key-create", actor=actor, target=f"key:{name}",
                detail={"role": str(role), "models": list(patterns), "prefix": prefix,
                        "expires_at": None if expires_at is None else expires_at.isoformat()},
            )  # fmt: skip

        self.meta.write(change)
        return NewKey(self.get(name), f"sy_{prefix}_{secret}")

    def get(self, name: str) -> ApiKey:
        """The key named `name`.

        Raises:
            PermissionDeniedError: the principal may not manage keys.
            NotFoundError: there is no such key.
        """
        self.context.allow(Action.MANAGE_KEYS)
        return _named(self.meta, name)

    def list(self) -> list[ApiKey]:
        """Every key, oldest first, revoked and expired ones included.

        Raises:
            PermissionDeniedError: the principal may not manage keys.
        """
        self.context.allow(Action.MANAGE_KEYS)
        with self.meta.read() as conn:
            return [_key(row) for row in conn.execute(select(api_keys).order_by(api_keys.c.id))]

    def revoke(self, name: str, *, reason: str | None = None) -> ApiKey:
        """Revoke a key for good; it stops working everywhere within `REFRESH` seconds.

        Raises:
            PermissionDeniedError: the principal may not manage keys.
            NotFoundError: there is no such key.
            ConflictError: it was revoked already.
        """
        self.context.allow(Action.MANAGE_KEYS)
        actor = self.context.actor

        def change(conn: Any) -> None:
            row = conn.execute(select(api_keys).where(api_keys.c.name == name)).first()
            if row is None:
                raise NotFoundError(f"there is no API key named {name!r}; 'shipyard keys list' shows them")
            if row.revoked_at is not None:
                raise ConflictError(
                    f"key {name!r} was revoked already, at {as_utc(row.revoked_at).isoformat()}"
                )
            conn.execute(update(api_keys).where(api_keys.c.id == row.id).values(revoked_at=utcnow()))
            audit.append(
                conn, "key-revoke", actor=actor, target=f"key:{name}",
                detail={"prefix": row.prefix, "reason": reason},
            )  # fmt: skip

        self.meta.write(change)
        return _named(self.meta, name)


class KeyVerifier:
    """The read path that finds who presents a key: verify it, or read a key's state by name.

    It acts for no one (it is what finds the acting principal), so it checks no role, and it
    writes nothing but a key's last use. A server's `Guard` and `security.identity` verify keys
    with it; the scheduler reads whether the key a schedule runs as is still active. It is not
    a store of the public API: managing keys is `Keys`.

    Args:
        meta: the metadata store holding the keys.
    """

    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta
        self._lock = threading.Lock()
        self._verified: dict[str, tuple[bytes, ApiKey, float]] = {}  # prefix -> (sha256, row, read at)
        self._touched: dict[str, float] = {}

    def get(self, name: str) -> ApiKey:
        """The key named `name`, to see whether it is still active.

        Raises:
            NotFoundError: there is no such key.
        """
        return _named(self.meta, name)

    def authenticate(self, token: str) -> Principal:
        """The principal a key stands for.

        Raises:
            AuthenticationError: the text is not a Shipyard key, or the key is unknown, wrong,
                expired or revoked. The message never repeats the secret.
        """
        prefix, secret = _parse(token)
        fingerprint = hashlib.sha256(token.strip().encode()).digest()
        with self._lock:
            cached = self._verified.get(prefix)
        if cached is not None and hmac.compare_digest(cached[0], fingerprint):
            key = self._row(prefix)  # verified before: only its state is read again
            if key is None:
                raise AuthenticationError(f"no API key has the prefix {prefix}")
        else:
            key = self._verify(prefix, secret)
        with self._lock:
            self._verified[prefix] = (fingerprint, key, time.monotonic())
        return self._usable(key)

    def cached(self, token: str) -> Principal | None:
        """The principal, when this key was verified less than `REFRESH` seconds ago; else None
        (then `authenticate`, which may read the database, decides). Never blocks on I/O."""
        match = _TOKEN.fullmatch(token.strip()) if isinstance(token, str) else None
        if match is None:
            return None
        with self._lock:
            cached = self._verified.get(match.group(1))
        if cached is None or time.monotonic() - cached[2] >= REFRESH:
            return None
        if not hmac.compare_digest(cached[0], hashlib.sha256(token.strip().encode()).digest()):
            return None
        try:
            return self._usable(cached[1], touch=False)
        except AuthenticationError:
            return None

    def _usable(self, key: ApiKey, *, touch: bool = True) -> Principal:
        if key.revoked_at is not None:
            raise AuthenticationError(f"API key {key.name!r} ({key.prefix}) was revoked")
        if key.expires_at is not None and key.expires_at <= utcnow():
            raise AuthenticationError(
                f"API key {key.name!r} ({key.prefix}) expired at {key.expires_at.isoformat()}; ask an "
                "admin for a new one"
            )
        if touch:
            self._touch(key, time.monotonic())
        return key.principal()

    def _select(self, prefix: str) -> Any:
        with self.meta.read() as conn:
            return conn.execute(select(api_keys).where(api_keys.c.prefix == prefix)).first()

    def _row(self, prefix: str) -> ApiKey | None:
        row = self._select(prefix)
        return None if row is None else _key(row)

    def _verify(self, prefix: str, secret: str) -> ApiKey:
        row = self._select(prefix)
        # An unknown prefix costs the same hash and gets the same words as a wrong secret, so
        # neither the time nor the message tells which prefixes exist.
        refused = AuthenticationError(
            f"API key {prefix} is not valid: no key has that prefix or its secret is wrong; check "
            "the key 'shipyard keys create' printed"
        )
        if row is None:
            _slow_hash(secret, _DUMMY_SALT)
            raise refused
        if not hmac.compare_digest(_slow_hash(secret, row.salt), row.hash):
            raise refused
        return _key(row)

    def _touch(self, key: ApiKey, now: float) -> None:
        """Record the key's last use, at most once a minute per key and process."""
        if now - self._touched.get(key.prefix, -_TOUCH_EVERY) < _TOUCH_EVERY:
            return
        self._touched[key.prefix] = now

        def change(conn: Any) -> None:
            conn.execute(
                update(api_keys).where(api_keys.c.prefix == key.prefix).values(last_used_at=utcnow())
            )

        self.meta.write(change)


def _named(meta: MetadataStore, name: str) -> ApiKey:
    with meta.read() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.name == name)).first()
    if row is None:
        raise NotFoundError(f"there is no API key named {name!r}; 'shipyard keys list' shows them")
    return _key(row)


def _parse(token: str) -> tuple[str, str]:
    match = _TOKEN.fullmatch(token.strip()) if isinstance(token, str) else None
    if match is None:
        raise AuthenticationError(
            "the credential is not a Shipyard API key (expected 'sy_' followed by its prefix and "
            "secret, as 'shipyard keys create' printed it)"
        )
    return match.group(1), match.group(2)


def _slow_hash(secret: str, salt: str) -> str:
    return hashlib.scrypt(secret.encode(), salt=bytes.fromhex(salt), **_SCRYPT).hex()


def _key(row: Any) -> ApiKey:
    def when(value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    return ApiKey(
        name=row.name, prefix=row.prefix, role=parse_role(row.role), models=tuple(row.models or ()),
        rate=row.rate, created_at=as_utc(row.created_at), created_by=row.created_by,
        expires_at=when(row.expires_at), revoked_at=when(row.revoked_at),
        last_used_at=when(row.last_used_at),
    )  # fmt: skip
