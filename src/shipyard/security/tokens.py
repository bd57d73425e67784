"""JWT bearer tokens from an identity provider: verified against its public keys, mapped to roles.

The issuer's public keys come from a JWKS document, a file or an `https://` URL (plain http
only from this machine), fetched with a 10 s timeout and cached by PyJWT; a token naming an
unknown key id refetches them, for key rotation, at most every 30 s. Only
asymmetric algorithms are accepted (RS*, PS*, ES*, EdDSA): never `none`, never an HMAC that a
public key could be abused as the secret of. A token must carry `exp`, `iss` (the configured
issuer), `sub` (the principal's name) and, when an audience is configured, that `aud`.

Roles come from one claim (`roles` by default), a string or a list: values that are role names
(`deployer`) count as themselves, others through the mapping (`ml-admins=admin`). The highest
wins; a token with none is refused. An optional claim lists model patterns the token is limited to.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shipyard.errors import AuthenticationError, ConfigError, PermissionDeniedError
from shipyard.security.access import Principal, Role, check_patterns, parse_role

__all__ = ["ALGORITHMS", "JwtSettings", "JwtVerifier", "parse_role_map"]

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
_CACHE = 10_000  # verified tokens remembered, until they expire
_FETCH_TIMEOUT = 10.0  # seconds a JWKS fetch may take
_LOOPBACK = ("localhost", "127.0.0.1", "::1")  # a JWKS over plain http only from this machine


@dataclass(frozen=True, kw_only=True)
class JwtSettings:
    """Which tokens a server accepts.

    Args:
        issuer: the `iss` every token must carry.
        jwks: the issuer's public keys: a JWKS file path or an https URL.
        audience: the `aud` tokens must be for; None to not check it.
        role_claim: the claim that holds the roles.
        role_map: claim values to roles, beside the role names themselves.
        models_claim: a claim listing model patterns the token is limited to; None for none.
        leeway: seconds of clock skew allowed on `exp` and `nbf`.
        refetch_after: seconds after a fetch of a JWKS URL before a token naming an unknown key
            id may fetch it again (a flood of made-up key ids must not flood the issuer).
    """

    issuer: str
    jwks: str
    audience: str | None = None
    role_claim: str = "roles"
    role_map: Mapping[str, Role] = field(default_factory=dict)
    models_claim: str | None = None
    leeway: float = 30.0
    refetch_after: float = 30.0


class JwtVerifier:
    """Verify tokens by `settings`; verified tokens are remembered until they expire."""

    def __init__(self, settings: JwtSettings) -> None:
        import jwt

        self.settings = settings
        source = settings.jwks
        self._client: Any = None
        self._keys: Any = None
        if source.startswith("http://") and urlsplit(source).hostname not in _LOOPBACK:
            raise ConfigError(
                f"the JWKS URL {source} is plain http: anyone on the way could swap the issuer's "
                "keys for their own and mint tokens; use its https:// URL"
            )
        if source.startswith(("https://", "http://")):
            self._client = jwt.PyJWKClient(
                source,
                cache_keys=True,
                lifespan=300,
                timeout=_FETCH_TIMEOUT,
                cooldown_duration=settings.refetch_after,
            )
        else:
            path = Path(source).expanduser()
            try:
                self._keys = jwt.PyJWKSet.from_json(path.read_text(encoding="utf-8"))
            except OSError as exc:
                raise ConfigError(f"the JWKS file {path} cannot be read: {exc.strerror}") from None
            except jwt.PyJWTError as exc:
                raise ConfigError(f"{path} is not a JWKS document of public keys: {exc}") from None
        self._lock = threading.Lock()
        self._verified: dict[bytes, tuple[Principal, float]] = {}

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified before and not expired yet; else None."""
        digest = hashlib.sha256(token.encode()).digest()
        with self._lock:
            hit = self._verified.get(digest)
        if hit is None or hit[1] <= time.time():
            return None
        return hit[0]

    def verify(self, token: str) -> Principal:
        """The principal the token names.

        Raises:
            AuthenticationError: the token is malformed, expired, not yet valid, for another
                issuer or audience, or not signed by the issuer's keys.
            PermissionDeniedError: the token is valid but carries no role Shipyard knows.
        """
        import jwt

        settings = self.settings
        try:
            header = jwt.get_unverified_header(token)
            key = self._key(header)
            claims = jwt.decode(
                token,
                key,
                algorithms=list(ALGORITHMS),
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway,
                options={"require": ["exp", "iss", "sub"], "verify_aud": settings.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError(
                "the bearer token has expired; get a new one from your identity provider"
            ) from None
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"the bearer token was refused: {exc}") from None
        principal = self._principal(claims)
        digest = hashlib.sha256(token.encode()).digest()
        with self._lock:
            if len(self._verified) >= _CACHE:
                self._verified.clear()
            self._verified[digest] = (principal, float(claims["exp"]))
        return principal

    def _key(self, header: Mapping[str, Any]) -> Any:
        import jwt

        if header.get("alg") not in ALGORITHMS:
            raise jwt.InvalidAlgorithmError(
                f"algorithm {header.get('alg')!r} is not accepted; expected one of {', '.join(ALGORITHMS)}"
            )
        kid = header.get("kid")
        if self._client is not None:
            if not isinstance(kid, str):
                raise jwt.InvalidKeyError("the token names no key id (kid) of the issuer's keys")
            return self._client.get_signing_key(kid).key  # an unknown id refetches the keys
        candidates = [k for k in self._keys.keys if kid is None or k.key_id == kid]
        if not candidates:
            raise jwt.InvalidKeyError(f"the issuer's keys hold no key with id {kid!r}")
        return candidates[0].key

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        settings = self.settings
        raw = claims.get(settings.role_claim, [])
        values = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, list) else []
        roles = []
        for value in values:
            text = str(value)
            if text in settings.role_map:
                roles.append(settings.role_map[text])
            elif text.upper() in Role.__members__:
                roles.append(Role[text.upper()])
        subject = str(claims["sub"])
        if not roles:
            raise PermissionDeniedError(
                f"the token of {subject!r} carries no role Shipyard knows in claim "
                f"{settings.role_claim!r} (it has {values}); expected reader, predictor, deployer or "
                "admin, or a value mapped to one (--jwt-role-map)"
            )
        models: tuple[str, ...] = ()
        if settings.models_claim and settings.models_claim in claims:
            found = claims[settings.models_claim]
            models = check_patterns([found] if isinstance(found, str) else [str(m) for m in found])
        return Principal(subject, max(roles), models, via="jwt")


def parse_role_map(text: str | None) -> dict[str, Role]:
    """`group-a=admin,group-b=reader` as a mapping.

    Raises:
        ConfigError: an item is not VALUE=ROLE or names no role.
    """
    mapping: dict[str, Role] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        value, sep, role = item.partition("=")
        if not sep or not value.strip():
            raise ConfigError(f"role map item {item!r} is not VALUE=ROLE (e.g. 'ml-admins=admin')")
        mapping[value.strip()] = parse_role(role, where=f"the role of {value.strip()!r} in the role map")
    return mapping
