"""What attackers try against a real server with `--auth required` over TLS, and what they get.

One server (REST and gRPC over TLS, keys required, a default rate) serves the credit model.
Every endpoint is called with no key and with a key of every role; expired, revoked, forged and
wrong-scope keys, floods and oversized bodies are refused with the right status, and the
refusals are in the audit log.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import text

from homes import copy_home
from servers import ServerProcess, credit_row
from shipyard import Registry, Settings
from shipyard.security.audit import AuditLog
from shipyard.security.keys import REFRESH, Keys
from shipyard.serving import oip_v2_pb2 as pb

ROLES = ("reader", "predictor", "deployer", "admin")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, production_home: Path) -> Path:
    return copy_home(production_home, tmp_path_factory.mktemp("secure-home") / "home")


@pytest.fixture(scope="module")
def keys(home: Path) -> dict[str, str]:
    """A key per role, one scoped to other models, a slow one, one to expire and one to revoke."""
    with Registry(Settings.for_home(home), actor="admin") as registry:
        store = Keys(registry)
        made = {role: store.create(f"{role}-key", role=role).secret for role in ROLES}
        made["scoped"] = store.create("scoped-key", role="predictor", models=["other*"]).secret
        made["slow"] = store.create("slow-key", role="predictor", rate=2).secret
        made["expiring"] = store.create("expiring-key", role="predictor", expires=timedelta(days=1)).secret
        made["revoked"] = store.create("revoked-key", role="predictor").secret
    return made


@pytest.fixture(scope="module")
def server(home: Path, keys: dict[str, str], pki: Any) -> Iterator[ServerProcess]:
    args = ["--auth", "required", "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    process = ServerProcess(home, ["credit@production"], *args, "--max-body-bytes", "20000", ca=pki.ca)
    try:
        yield process.wait_ready()
    finally:
        process.terminate()


def call(server: ServerProcess, method: str, path: str, key: str | None, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return server.http.request(method, path, json=body, headers=headers)


ENDPOINTS: list[tuple[str, str, Any, str | None]] = [
    ("GET", "/healthz", None, None),
    ("GET", "/readyz", None, None),
    ("GET", "/v2/health/ready", None, None),
    ("GET", "/v1/models", None, "reader"),
    ("GET", "/v1/models/credit", None, "reader"),
    ("GET", "/v2/models/credit", None, "reader"),
    ("GET", "/metrics", None, "reader"),
    ("GET", "/docs", None, "reader"),
    ("POST", "/v1/models/credit/predict", {"instances": [credit_row()]}, "predictor"),
    ("POST", "/invocations", {"dataframe_records": [credit_row()]}, "predictor"),
    ("POST", "/v2/models/credit/infer", {"inputs": []}, "predictor"),
    ("POST", "/v1/feedback", {"request_id": "r-1", "row": 0, "label": 1}, "predictor"),
]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
def test_every_endpoint_by_every_role(
    server: ServerProcess, keys: dict[str, str], endpoint: tuple[str, str, Any, str | None]
) -> None:
    method, path, body, least = endpoint
    anonymous = call(server, method, path, None, body)
    if least is None:
        assert anonymous.status_code == 200, anonymous.text
    else:
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
    for role in ROLES:
        response = call(server, method, path, keys[role], body)
        allowed = least is None or ROLES.index(role) >= ROLES.index(least)
        if allowed:
            assert response.status_code not in (401, 403), (role, path, response.text)
        else:
            assert response.status_code == 403, (role, path, response.text)
            assert f"needs the {least} role" in response.json()["message"]


def test_a_key_limited_to_other_models_cannot_touch_this_one(
    server: ServerProcess, keys: dict[str, str]
) -> None:
    response = call(
        server, "POST", "/v1/models/credit/predict", keys["scoped"], {"instances": [credit_row()]}
    )
    assert response.status_code == 403
    assert "limited to models other*" in response.json()["message"]
    listing = call(server, "GET", "/v1/models", keys["scoped"])
    assert listing.status_code == 200
    assert listing.json()["models"] == []  # it is not shown the models outside its scope
    assert [m["name"] for m in call(server, "GET", "/v1/models", keys["reader"]).json()["models"]] == [
        "credit"
    ]


def test_refused_calls_change_nothing(server: ServerProcess, keys: dict[str, str], home: Path) -> None:
    from shipyard.store.schema import feedback

    def labels() -> int:
        with Registry(Settings.for_home(home), actor="admin") as registry, registry.meta.read() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {feedback.name}")).scalar_one())

    before = labels()
    # Labels are checked against the prediction log: label a request the server answered.
    answer = call(
        server, "POST", "/v1/models/credit/predict", keys["predictor"], {"instances": [credit_row()]}
    )
    request_id = answer.json()["request_id"]
    label = {"request_id": request_id, "label": 1}
    assert call(server, "POST", "/v1/feedback", None, label).status_code == 401
    assert call(server, "POST", "/v1/feedback", keys["reader"], label).status_code == 403
    assert call(server, "POST", "/v1/feedback", keys["revoked"] + "x", label).status_code == 401
    assert labels() == before
    assert call(server, "POST", "/v1/feedback", keys["predictor"], label).status_code == 202
    assert labels() == before + 1
    with Registry(Settings.for_home(home), actor="admin") as registry, registry.meta.read() as conn:
        actor = conn.execute(
            text(f"SELECT actor FROM {feedback.name} WHERE request_id = :id"), {"id": request_id}
        ).scalar_one()
    assert actor == "predictor-key"  # the principal, not a header anyone can set


def test_a_chunked_body_over_the_limit_is_refused(server: ServerProcess, keys: dict[str, str]) -> None:
    import json

    body = json.dumps({"instances": [credit_row()] * 400}).encode()  # about 60 KB; the limit is 20 KB

    def chunks() -> Iterator[bytes]:
        yield body  # no Content-Length: the server can only count what arrives

    response = server.http.post(
        "/v1/models/credit/predict",
        content=chunks(),
        headers={"Authorization": f"Bearer {keys['predictor']}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413, response.text


def test_forged_unknown_and_malformed_keys_are_refused(server: ServerProcess, keys: dict[str, str]) -> None:
    real = keys["admin"]
    forged = real[:-5] + ("xxxxx" if not real.endswith("xxxxx") else "yyyyy")
    for bad in (forged, "sy_aaaaaaaaaa_" + "A" * 43, "not-a-key", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0."):
        response = call(server, "POST", "/v1/models/credit/predict", bad, {"instances": [credit_row()]})
        assert response.status_code == 401, bad
        assert forged[14:] not in response.text  # the secret is never echoed


def test_an_expired_key_and_a_revoked_key_are_refused(
    server: ServerProcess, keys: dict[str, str], home: Path
) -> None:
    body = {"instances": [credit_row()]}
    assert call(server, "POST", "/v1/models/credit/predict", keys["revoked"], body).status_code == 200
    with Registry(Settings.for_home(home), actor="admin") as registry:
        Keys(registry).revoke("revoked-key", reason="test")
        with registry.meta.engine.begin() as conn:
            conn.execute(
                text("UPDATE api_keys SET expires_at = '2020-01-01 00:00:00' WHERE name = 'expiring-key'")
            )
    time.sleep(REFRESH + 0.5)
    revoked = call(server, "POST", "/v1/models/credit/predict", keys["revoked"], body)
    assert revoked.status_code == 401 and "revoked" in revoked.json()["message"]
    expired = call(server, "POST", "/v1/models/credit/predict", keys["expiring"], body)
    assert expired.status_code == 401 and "expired" in expired.json()["message"]


def test_a_flood_from_one_key_gets_429_with_retry_after_and_others_are_served(
    server: ServerProcess, keys: dict[str, str]
) -> None:
    body = {"instances": [credit_row()]}
    statuses = [call(server, "POST", "/v1/models/credit/predict", keys["slow"], body) for _ in range(12)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    assert int(limited[0].headers["retry-after"]) >= 1
    assert "more than 2 requests per second" in limited[0].json()["message"]
    assert call(server, "POST", "/v1/models/credit/predict", keys["predictor"], body).status_code == 200


def test_an_oversized_body_is_refused_even_with_a_valid_key(
    server: ServerProcess, keys: dict[str, str]
) -> None:
    body = {"instances": [credit_row()] * 400}
    assert call(server, "POST", "/v1/models/credit/predict", keys["predictor"], body).status_code == 413


def test_grpc_over_tls_needs_a_key_with_the_role(
    server: ServerProcess, keys: dict[str, str], pki: Any
) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    with grpc.secure_channel(server.grpc_target, credentials) as channel:
        infer = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelMetadata",
            request_serializer=pb.ModelMetadataRequest.SerializeToString,
            response_deserializer=pb.ModelMetadataResponse.FromString,
        )
        live = channel.unary_unary(
            "/inference.GRPCInferenceService/ServerLive",
            request_serializer=pb.ServerLiveRequest.SerializeToString,
            response_deserializer=pb.ServerLiveResponse.FromString,
        )
        assert live(pb.ServerLiveRequest()).live
        with pytest.raises(grpc.RpcError) as caught:
            infer(pb.ModelMetadataRequest(name="credit"))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as caught:
            infer(pb.ModelMetadataRequest(name="credit"), metadata=[("x-api-key", keys["scoped"])])
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        meta = infer(
            pb.ModelMetadataRequest(name="credit"), metadata=[("authorization", f"Bearer {keys['reader']}")]
        )
        assert meta.name == "credit"


def test_plain_http_is_not_served_on_the_tls_port(server: ServerProcess) -> None:
    import httpx

    with pytest.raises(httpx.HTTPError):
        httpx.get(server.url.replace("https", "http") + "/healthz", timeout=5)


def test_refusals_are_in_the_audit_log(server: ServerProcess, keys: dict[str, str], home: Path) -> None:
    call(server, "POST", "/v1/models/credit/predict", keys["reader"], {"instances": [credit_row()]})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with Registry(Settings.for_home(home), actor="admin") as registry:
            denied = AuditLog(registry).list(action="denied", limit=500)
        if any(e.actor == "reader-key" and e.target == "credit" for e in denied):
            break
        time.sleep(0.2)
    assert any(e.actor == "reader-key" and e.detail["action"] == "predict" for e in denied)
    assert any(e.actor == "anonymous" for e in denied)
    with Registry(Settings.for_home(home), actor="admin") as registry:
        assert AuditLog(registry).verify().ok


def test_the_python_client_sends_the_key_over_https_and_grpcs(
    server: ServerProcess, keys: dict[str, str], pki: Any
) -> None:
    from shipyard import Client
    from shipyard.errors import AuthenticationError, PermissionDeniedError

    for url in (server.url, f"grpcs://{server.grpc_target}"):  # gRPC: ModelInfer by every role
        for role in ROLES:
            with Client(url, api_key=keys[role], ca=pki.ca) as client:
                if role == "reader":
                    with pytest.raises(PermissionDeniedError, match="needs the predictor role"):
                        client.predict("credit", [credit_row()])
                else:
                    assert client.predict("credit", [credit_row()]).model == "credit"
        with Client(url, ca=pki.ca) as client, pytest.raises(AuthenticationError):
            client.predict("credit", [credit_row()])


def test_no_secret_reaches_the_server_log(server: ServerProcess, keys: dict[str, str]) -> None:
    call(server, "POST", "/v1/models/credit/predict", keys["revoked"] + "x", {"instances": [credit_row()]})
    output = server.output()
    for secret in keys.values():
        assert secret.split("_", 2)[2] not in output


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/..%2F..%2Fetc%2Fpasswd/predict",
        "/v1/models/../../etc/passwd/predict",
        "/v2/models/%2e%2e/versions/1/infer",
        "/v1/models/credit%00/predict",
    ],
)
def test_path_traversal_in_urls_reaches_no_file(
    server: ServerProcess, keys: dict[str, str], path: str
) -> None:
    body = {"instances": [credit_row()]}
    assert call(server, "POST", path, None, body).status_code in (401, 404)
    answer = call(server, "POST", path, keys["admin"], body)
    assert answer.status_code == 404, answer.text
    assert "root:" not in answer.text


def test_a_client_sending_made_up_keys_is_slowed_before_any_is_checked(
    server: ServerProcess, keys: dict[str, str]
) -> None:
    statuses = []
    for i in range(16):
        made_up = f"sy_{'b' * 10}_{str(i) * 43}"[:57]
        statuses.append(call(server, "GET", "/v1/models/credit", made_up))
    throttled = [r for r in statuses if r.status_code == 429]
    assert throttled, [r.status_code for r in statuses]  # 10 at once, then one a second
    assert "too many credentials" in throttled[0].json()["message"]
    time.sleep(float(throttled[-1].headers["retry-after"]) + 0.5)
    with Registry(Settings.for_home(server.home), actor="admin") as registry:
        fresh = Keys(registry).create("after-the-flood", role="reader").secret
    assert call(server, "GET", "/v1/models/credit", fresh).status_code == 200


def test_a_rate_limit_without_authentication_holds_each_client_to_it(home: Path) -> None:
    process = ServerProcess(home, ["credit@production"], "--rate-limit", "1", "--burst", "3", "--no-log")
    try:
        process.wait_ready()
        body = {"instances": [credit_row()]}
        statuses = [process.http.post("/v1/models/credit/predict", json=body) for _ in range(8)]
        assert [r.status_code for r in statuses].count(200) <= 4, [r.status_code for r in statuses]
        limited = next(r for r in statuses if r.status_code == 429)
        assert "127.0.0.1 sent more than 1 requests per second" in limited.json()["message"]
        assert int(limited.headers["retry-after"]) >= 1
    finally:
        process.terminate()


def test_readiness_names_the_models_only_to_a_caller_with_a_credential(
    server: ServerProcess, keys: dict[str, str]
) -> None:
    assert call(server, "GET", "/readyz", None).json() == {"status": "ready"}  # a probe: the status
    assert call(server, "GET", "/ping", None).json() == {"status": "ready"}
    assert call(server, "GET", "/readyz", "sy_made_up_key").json() == {"status": "ready"}
    named = {"status": "ready", "models": {"credit": 1}}
    assert call(server, "GET", "/readyz", keys["reader"]).json() == named
    assert call(server, "GET", "/readyz", keys["scoped"]).json() == {"status": "ready", "models": {}}
    assert call(server, "GET", "/v2/health/ready", None).json() == {"ready": True}


@pytest.mark.parametrize(
    ("path", "served"),
    [
        ("/v2/models/credit/ready", True),
        ("/v2/models/nope/ready", False),
        ("/v2/models/credit/versions/1/ready", True),
        ("/v2/models/credit/versions/9/ready", False),
    ],
)
def test_a_models_readiness_needs_a_credential_so_served_names_do_not_leak(
    server: ServerProcess, keys: dict[str, str], path: str, served: bool
) -> None:
    anonymous = call(server, "GET", path, None)
    assert anonymous.status_code == 401  # the same for a served model and an unknown one
    assert call(server, "GET", path, keys["reader"]).status_code == (200 if served else 404)


def test_grpc_model_readiness_needs_a_credential(
    server: ServerProcess, keys: dict[str, str], pki: Any
) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    with grpc.secure_channel(server.grpc_target, credentials) as channel:
        server_ready = channel.unary_unary(
            "/inference.GRPCInferenceService/ServerReady",
            request_serializer=pb.ServerReadyRequest.SerializeToString,
            response_deserializer=pb.ServerReadyResponse.FromString,
        )
        model_ready = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelReady",
            request_serializer=pb.ModelReadyRequest.SerializeToString,
            response_deserializer=pb.ModelReadyResponse.FromString,
        )
        assert server_ready(pb.ServerReadyRequest()).ready  # a bare yes or no: open
        for name in ("credit", "nope"):
            with pytest.raises(grpc.RpcError) as caught:
                model_ready(pb.ModelReadyRequest(name=name))
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        reader = [("authorization", f"Bearer {keys['reader']}")]
        assert model_ready(pb.ModelReadyRequest(name="credit"), metadata=reader).ready
        assert not model_ready(pb.ModelReadyRequest(name="nope"), metadata=reader).ready
