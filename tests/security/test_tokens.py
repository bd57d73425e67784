"""The JWT verifier with its issuer's keys at a URL: fetched, cached, refetched on rotation."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shipyard.errors import AuthenticationError, ConfigError
from shipyard.security.access import Role
from shipyard.security.tokens import JwtSettings, JwtVerifier

ISSUER = "https://id.example.test"


class _Issuer:
    """An identity provider's JWKS endpoint on 127.0.0.1 whose keys a test can rotate."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.fetches = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.fetches += 1
                jwks = {
                    "keys": [
                        json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(k.public_key())) | {"kid": kid}
                        for kid, k in issuer.keys.items()
                    ]
                }
                body = json.dumps(jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/jwks.json"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def rotate(self, kid: str) -> rsa.RSAPrivateKey:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return self.keys[kid]


@pytest.fixture
def issuer() -> Iterator[_Issuer]:
    served = _Issuer()
    yield served
    served.http.shutdown()


def _token(key: Any, kid: str, *, algorithm: str = "RS256", **claims: Any) -> str:
    body = {"iss": ISSUER, "sub": "ana", "exp": int(time.time()) + 600, "roles": ["deployer"]} | claims
    return jwt.encode(body, key, algorithm=algorithm, headers={"kid": kid})


def test_keys_at_a_url_are_fetched_once_and_refetched_for_a_new_key_id(issuer: _Issuer) -> None:
    first = issuer.rotate("k1")
    verifier = JwtVerifier(JwtSettings(issuer=ISSUER, jwks=issuer.url, refetch_after=0))
    assert verifier.verify(_token(first, "k1")).role == Role.DEPLOYER
    assert verifier.verify(_token(first, "k1", sub="bo")).name == "bo"
    assert issuer.fetches == 1  # cached
    second = issuer.rotate("k2")  # the provider rotates its keys
    assert verifier.verify(_token(second, "k2")).name == "ana"
    assert issuer.fetches == 2
    with pytest.raises(AuthenticationError, match="k3"):
        verifier.verify(_token(second, "k3"))  # a key id the issuer does not have


def test_forged_tokens_are_refused_against_keys_at_a_url(issuer: _Issuer) -> None:
    key = issuer.rotate("k1")
    verifier = JwtVerifier(JwtSettings(issuer=ISSUER, jwks=issuer.url))
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(AuthenticationError):
        verifier.verify(_token(stranger, "k1"))  # signed by someone else under the issuer's key id
    with pytest.raises(AuthenticationError):
        verifier.verify(_token(key, "k1", iss="https://evil.example.test"))
    unsigned = jwt.encode({"iss": ISSUER, "sub": "ana", "exp": int(time.time()) + 60}, None, algorithm="none")
    with pytest.raises(AuthenticationError):
        verifier.verify(unsigned)


def test_a_jwks_url_over_plain_http_to_another_host_is_refused() -> None:
    with pytest.raises(ConfigError, match="plain http"):
        JwtVerifier(JwtSettings(issuer=ISSUER, jwks="http://login.example.test/jwks.json"))
