"""What a server asks of every request: who is it, may it, and does its rate allow it?

Transports hand over the credential they found (`Authorization: Bearer ...` or `X-API-Key` on
REST, the same keys in gRPC metadata) and the action the route means; `Guard` answers with the
principal or raises. API keys (`sy_...`) are checked against the metadata store, other bearer
tokens as JWTs. Each principal has a token bucket: its key's rate, or the server's default.

With authentication off every request is `anonymous` with every role, as before Shipyard had
keys; health and readiness are always open.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shipyard.errors import (
    AuthenticationError,
    PermissionDeniedError,
    RateLimitedError,
    SecurityError,
    ShipyardError,
)
from shipyard.security.access import Action, Principal, Role, authorize

if TYPE_CHECKING:  # the metadata store's modules import SQLAlchemy, which a bundle's server skips
    from shipyard.security.keys import KeyVerifier
    from shipyard.security.tokens import JwtVerifier
    from shipyard.store.metadata import MetadataStore

__all__ = ["ANONYMOUS", "DenialLog", "Guard", "credential", "is_api_key"]

log = logging.getLogger(__name__)
_THROTTLED = 10_000  # refusals remembered for throttling before the quiet ones are forgotten
_FAILED_RATE, _FAILED_BURST = 1.0, 10.0  # failed credentials a client may send: per second, at once

ANONYMOUS = Principal("anonymous", Role.ADMIN, via="none")
Denied = Callable[[str, str, str | None, str], None]  # actor, action, target, reason


def credential(authorization: str | None, api_key: str | None) -> str | None:
    """The credential of a request: `X-API-Key`, or the token of `Authorization: Bearer TOKEN`."""
    if api_key and api_key.strip():
        return api_key.strip()
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


def is_api_key(token: str) -> bool:
    """Whether the text has the shape of a Shipyard API key (`sy_...`), not whether it is valid."""
    return token.strip().startswith("sy_")


@dataclass
class _Bucket:
    tokens: float
    at: float


class Guard:
    """A server's authentication, authorization and rate limits.

    Args:
        required: refuse requests without valid credentials; off, everyone is `ANONYMOUS`.
        keys: the verifier of API keys (None: keys are not accepted); it reads keys without
            an acting principal, since it is what finds the principal.
        jwt: the JWT verifier (None: tokens are not accepted).
        rate: requests per second each principal may send, unless its key says otherwise.
        burst: requests a principal may send at once above its rate (twice the rate by default).
        on_denied: called with (actor, action, target, reason) for each refused request, to
            audit it.
    """

    def __init__(
        self,
        *,
        required: bool,
        keys: KeyVerifier | None = None,
        jwt: JwtVerifier | None = None,
        rate: float | None = None,
        burst: float | None = None,
        on_denied: Denied | None = None,
    ) -> None:
        self.required = required
        self.keys = keys
        self.jwt = jwt
        self.rate = rate
        self.burst = burst
        self.on_denied = on_denied
        self._buckets: dict[str, _Bucket] = {}
        self._failures: dict[str, _Bucket] = {}  # per client address: credentials that failed
        self._lock = threading.Lock()

    def quick(self, token: str | None) -> Principal | None:
        """The principal when it is known without I/O (off, or a key or token seen recently)."""
        if not self.required:
            return ANONYMOUS
        if token is None:
            return None
        if is_api_key(token):
            return None if self.keys is None else self.keys.cached(token)
        return None if self.jwt is None else self.jwt.cached(token)

    @property
    def active(self) -> bool:
        """Whether requests need looking at: authentication is on, or a rate limit is set."""
        return self.required or self.rate is not None

    def identify(
        self, token: str | None, *, action: Action, target: str | None, client: str | None = None
    ) -> Principal:
        """Who the credential stands for; may read the metadata store (run it off the event loop).

        A client whose credentials failed more than `_FAILED_BURST` times lately is refused
        before its next one is checked, so made-up keys cannot keep the server hashing.

        Raises:
            AuthenticationError: no credential, or one that does not verify.
            PermissionDeniedError: a valid token with no role.
            RateLimitedError: the client sent too many credentials that failed.
        """
        try:
            if not self.required:
                return ANONYMOUS
            if token is None:
                raise AuthenticationError(
                    "this server requires credentials: send 'Authorization: Bearer <API key or token>' "
                    "or 'X-API-Key: <API key>'"
                )
            wait = self._wait(self._failures, str(client), _FAILED_RATE, _FAILED_BURST, take=False)
            if wait is not None:
                raise RateLimitedError(
                    f"too many credentials from {client} failed; retry after {wait:.2f} s", retry_after=wait
                )
            try:
                if is_api_key(token):
                    if self.keys is None:
                        raise AuthenticationError(
                            "this server does not accept API keys: it has no metadata store to check "
                            "them against (a baked bundle served without SHIPYARD_DB_URL); send a JWT"
                        )
                    return self.keys.authenticate(token)
                if self.jwt is None:
                    raise AuthenticationError(
                        "the credential is not a Shipyard API key (sy_...), and this server accepts no JWTs"
                    )
                return self.jwt.verify(token)
            except AuthenticationError:
                self._wait(self._failures, str(client), _FAILED_RATE, _FAILED_BURST)
                raise
        except SecurityError as exc:
            self._denied(_shown(token), action, target, str(exc))
            raise

    def admit(
        self, principal: Principal, action: Action, target: str | None, *, client: str | None = None
    ) -> None:
        """Allow the request or raise: the principal's role and scope, then its rate (with
        authentication off, each client address has the server's rate).

        Raises:
            PermissionDeniedError: the role or the model scope does not allow the action.
            RateLimitedError: the principal is over its rate; `retry_after` says for how long.
        """
        try:
            authorize(principal, action, target)
            rate = principal.rate or self.rate
            if rate is not None:
                capacity = self.burst if self.burst is not None else max(2.0 * rate, 1.0)
                # Without authentication each address has a bucket, apart from any key's names.
                who, bucket = (
                    (client, f"client:{client}") if principal is ANONYMOUS else (principal.name,) * 2
                )
                wait = self._wait(self._buckets, bucket, rate, capacity)
                if wait is not None:
                    raise RateLimitedError(
                        f"{who} sent more than {rate:g} requests per second (burst {capacity:g}); "
                        f"retry after {wait:.2f} s",
                        retry_after=wait,
                    )
        except (PermissionDeniedError, RateLimitedError) as exc:
            if isinstance(exc, PermissionDeniedError):
                self._denied(principal.name, action, target, str(exc))
            raise

    def _wait(
        self, buckets: dict[str, _Bucket], who: str, rate: float, capacity: float, *, take: bool = True
    ) -> float | None:
        """Take a token from `who`'s bucket (with take=False, only look for one): None when there
        was one, else the seconds until there is."""
        now = time.monotonic()
        with self._lock:
            bucket = buckets.get(who)
            if bucket is None:
                if len(buckets) >= _THROTTLED:  # made-up callers must not grow this without end
                    buckets.clear()
                bucket = buckets[who] = _Bucket(capacity, now)
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0 if take else 0.0
                return None
            return (1.0 - bucket.tokens) / rate

    def _denied(self, actor: str, action: Action, target: str | None, reason: str) -> None:
        if self.on_denied is not None:
            self.on_denied(actor, str(action), target, reason)


def _shown(token: str | None) -> str:
    """Who a refused credential claimed to be, without the secret: a key's prefix, else anonymous."""
    if token and is_api_key(token):
        return f"key:{token.strip()[3:13]}"
    return "anonymous"


class DenialLog:
    """Audit refused requests from a server without slowing it or letting a flood fill the log.

    Each (actor, action, target) is written at most once per `every` seconds, with how many
    were refused meanwhile; writes happen on a thread of their own, so a request never waits.

    Args:
        meta: the metadata store holding the audit log.
        every: seconds between entries for the same refusal.
    """

    def __init__(self, meta: MetadataStore, *, every: float = 60.0) -> None:
        self.meta = meta
        self.every = every
        self._last: dict[tuple[str, str, str | None], tuple[float, int, str]] = {}
        self._queue: queue.SimpleQueue[tuple[str, str, str | None, str, int] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="shipyard-denials", daemon=True)
        self._thread.start()

    def __call__(self, actor: str, action: str, target: str | None, reason: str) -> None:
        key = (actor, action, target)
        now = time.monotonic()
        if len(self._last) >= _THROTTLED and key not in self._last:
            # A flood of made-up keys or paths must not grow this table without end: forget the
            # refusals whose quiet period is over, writing the counts held back for them first.
            quiet = [k for k, v in self._last.items() if now - v[0] >= self.every]
            self._flush(quiet)
        last, held, _ = self._last.get(key, (-self.every, 0, reason))
        if now - last < self.every:
            self._last[key] = (last, held + 1, reason)
            return
        self._last[key] = (now, 0, reason)
        self._queue.put((actor, action, target, reason, held + 1))

    def close(self) -> None:
        """Write the refusals held back since their last entry, and what is queued; then stop."""
        self._flush(list(self._last))
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _flush(self, keys: list[tuple[str, str, str | None]]) -> None:
        """Queue an entry for each of `keys` that has refusals held back, and forget them."""
        for key in keys:
            _, held, reason = self._last.pop(key)
            if held:
                self._queue.put((*key, reason, held))

    def _write(self) -> None:
        from shipyard.security.audit import deny

        while (item := self._queue.get()) is not None:
            actor, action, target, reason, times = item
            try:
                deny(self.meta, actor, action, target, {"reason": reason, "refused": times, "via": "server"})
            except ShipyardError:  # the audit store is down: the refusal itself still stands
                log.warning("could not audit a refused request by %s", actor, exc_info=True)
