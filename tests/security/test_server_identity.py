"""JWTs from an identity provider and mutual TLS, against a real server.

The server trusts one issuer's JWKS file and requires client certificates from the test CA.
Tokens are made here with PyJWT: valid ones by role, and the forgeries attackers try.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import jwt
import pandas as pd
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from servers import ServerProcess, credit_row
from shipyard import Registry, Settings

ISSUER = "https://id.example.test"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    credit: pd.DataFrame,
    credit_pipeline: Any,
    signing_key: rsa.RSAPrivateKey,
    pki: Any,
) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("jwt-home")
    with Registry(replace(Settings.for_home(home), protected_aliases=()), actor="tester") as registry:
        registry.register(
            credit_pipeline, name="credit", train_data=credit, target="default", alias="production"
        )
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    jwks = home / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public | {"kid": "k1", "use": "sig", "alg": "RS256"}]}))
    args = [
        "--auth", "required", "--jwt-issuer", ISSUER, "--jwt-jwks", str(jwks), "--jwt-audience", "shipyard",
        "--jwt-role-map", "ml-platform=deployer", "--tls-cert", str(pki.server_cert),
        "--tls-key", str(pki.server_key), "--tls-client-ca", str(pki.ca),
    ]  # fmt: skip
    process = ServerProcess(
        home, ["credit@production"], *args, ca=pki.ca, client_cert=(pki.client_cert, pki.client_key)
    )
    try:
        yield process.wait_ready()
    finally:
        process.terminate()


def token(key: Any, *, algorithm: str = "RS256", kid: str = "k1", **claims: Any) -> str:
    body = {
        "iss": ISSUER,
        "aud": "shipyard",
        "sub": "ana@example.test",
        "exp": int(time.time()) + 600,
    } | claims
    return jwt.encode(body, key, algorithm=algorithm, headers={"kid": kid})


def predict(server: ServerProcess, bearer: str) -> httpx.Response:
    return server.http.post(
        "/v1/models/credit/predict",
        json={"instances": [credit_row()]},
        headers={"Authorization": f"Bearer {bearer}"},
    )


def test_a_valid_token_with_a_role_is_served(server: ServerProcess, signing_key: rsa.RSAPrivateKey) -> None:
    assert predict(server, token(signing_key, roles=["predictor"])).status_code == 200
    assert predict(server, token(signing_key, roles="ml-platform")).status_code == 200  # mapped to deployer
    reader = predict(server, token(signing_key, roles=["reader"]))
    assert reader.status_code == 403 and "ana@example.test (reader)" in reader.json()["message"]


def test_forged_and_stale_tokens_are_refused(server: ServerProcess, signing_key: rsa.RSAPrivateKey) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    unsigned = jwt.api_jws.base64url_encode(json.dumps({"alg": "none", "kid": "k1"}).encode()).decode()
    claims = {"iss": ISSUER, "aud": "shipyard", "sub": "x", "exp": int(time.time()) + 600, "roles": ["admin"]}
    payload = jwt.api_jws.base64url_encode(json.dumps(claims).encode()).decode()
    # PyJWT refuses to sign HS256 with a PEM key, so the classic confusion attack is built by hand.
    header = jwt.api_jws.base64url_encode(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    signing_input = header + b"." + payload.encode()
    mac = base64.urlsafe_b64encode(hmac.new(public_pem, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    forgeries = {
        "signed by another key": token(stranger, roles=["admin"]),
        "alg none": f"{unsigned}.{payload}.",
        "HS256 with the public key as secret": (signing_input + b"." + mac).decode(),
        "expired": token(signing_key, roles=["admin"], exp=int(time.time()) - 3600),
        "another issuer": token(signing_key, roles=["admin"], iss="https://evil.test"),
        "another audience": token(signing_key, roles=["admin"], aud="someone-else"),
        "unknown key id": token(signing_key, roles=["admin"], kid="k9"),
    }
    for what, bad in forgeries.items():
        response = predict(server, bad)
        assert response.status_code == 401, (what, response.text)
    no_role = predict(server, token(signing_key, roles=["intern"]))
    assert no_role.status_code == 403 and "carries no role" in no_role.json()["message"]


def test_mutual_tls_refuses_clients_without_a_certificate_from_the_ca(
    server: ServerProcess, pki: Any
) -> None:
    bare = ssl.create_default_context(cafile=str(pki.ca))
    stranger = ssl.create_default_context(cafile=str(pki.ca))
    stranger.load_cert_chain(str(pki.stranger_cert), str(pki.stranger_key))
    for context in (bare, stranger):
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{server.url}/healthz", verify=context, timeout=5).raise_for_status()
    assert server.http.get("/healthz").status_code == 200  # the fixture's client has the CA's certificate
