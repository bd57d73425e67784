"""The Lambda handler, called in process with real API Gateway and function URL event documents,
answers as the REST server does: the same statuses, headers that matter and bodies, byte for byte,
compared with a real `shipyard serve` of the same version."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from homes import copy_home
from servers import CREDIT_DATATYPES, ServerProcess, credit_row
from shipyard import Registry, Settings
from shipyard.errors import InputError
from shipyard.monitoring.events import read_events
from shipyard.packaging.bundle import write_bundle
from shipyard.serverless import DEFAULT_BUNDLE, LambdaSettings, handler

EVENTS = Path(__file__).parent / "data" / "lambda"
FORMATS = ("api_gateway_v1", "http_api_v2", "function_url")
GOOD = {"instances": [credit_row(), credit_row(age=23, employment="unemployed", debt_ratio=0.9)]}
OIP = {
    "inputs": [
        {"name": name, "shape": [1], "datatype": kind, "data": [credit_row()[name]]}
        for name, kind in CREDIT_DATATYPES.items()
    ]
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, production_home: Path) -> Path:
    """A Shipyard home with the credit model registered as `credit@production` (version 1)."""
    return copy_home(production_home, tmp_path_factory.mktemp("lambda-home") / "home")


@pytest.fixture(scope="module")
def lambda_env(home: Path) -> Iterator[None]:
    """The function's environment: serve `credit@production` from the registry in `home`."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("SHIPYARD_BUNDLE", "SHIPYARD_STORE_URL", "SHIPYARD_DB_URL", "SHIPYARD_API_KEY"):
            patch.delenv(name, raising=False)
        patch.setenv("SHIPYARD_HOME", str(home))
        patch.setenv("SHIPYARD_SERVE_REF", "credit@production")
        yield


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[ServerProcess]:
    """`shipyard serve credit@production` of the same home: what every answer is compared with."""
    process = ServerProcess(home, ["credit@production"])
    try:
        yield process.wait_ready()
    finally:
        process.terminate()


def event(
    kind: str,
    method: str = "POST",
    path: str = "/v1/models/credit/predict",
    body: bytes | None = None,
    *,
    encode: bool = False,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The fixture event of `kind` (a file of tests/data/lambda) sent as `method path` with `body`
    (the fixture's own when None), base64-encoded when `encode`, with `headers` added."""
    document: dict[str, Any] = json.loads((EVENTS / f"{kind}.json").read_text())
    found = copy.deepcopy(document)
    if body is not None:
        found["body"] = base64.b64encode(body).decode() if encode else body.decode()
        found["isBase64Encoded"] = encode
    extra = {k.lower(): v for k, v in (headers or {}).items()}
    if kind == "api_gateway_v1":
        found["httpMethod"], found["path"] = method, path
        found["requestContext"]["httpMethod"] = method
        for key in [k for k in found["headers"] if k.lower() in extra]:
            del found["headers"][key], found["multiValueHeaders"][key]
        found["headers"].update(extra)
        found["multiValueHeaders"].update({k: [v] for k, v in extra.items()})
    else:
        stage = found["requestContext"]["stage"]
        prefix = "" if stage == "$default" else f"/{stage}"
        found["rawPath"] = found["requestContext"]["http"]["path"] = prefix + path
        found["requestContext"]["http"]["method"] = method
        found["headers"].update(extra)
        if body is not None:
            found["headers"]["content-length"] = str(len(body))
    return found


def answered_body(answer: dict[str, Any]) -> bytes:
    """The body of a Lambda answer, decoded from base64 when it says so."""
    body: str = answer["body"]
    return base64.b64decode(body) if answer["isBase64Encoded"] else body.encode()


def header_of(answer: dict[str, Any], name: str) -> str | None:
    """A header of a Lambda answer in either payload format."""
    if name in answer["headers"]:
        return str(answer["headers"][name])
    values = answer.get("multiValueHeaders", {}).get(name)
    return ", ".join(values) if values else None


# -- good requests, each format's own event ------------------------------------------------------


def test_an_api_gateway_rest_event_is_predicted_with_its_request_id(lambda_env: None, home: Path) -> None:
    answer = handler(event("api_gateway_v1", body=orjson.dumps(GOOD)), None)
    assert answer["statusCode"] == 200
    assert answer["isBase64Encoded"] is False
    assert answer["headers"]["content-type"] == "application/json"
    assert answer["headers"]["x-shipyard-version"] == "1"
    assert answer["multiValueHeaders"] == {}
    body = json.loads(answer["body"])
    assert body["request_id"] == "5b0f1c2e-8d3a-4f6b-9e7c-1a2b3c4d5e6f"  # requestContext.requestId
    assert (body["model"], body["version"]) == ("credit", 1)
    with Registry(Settings.for_home(home)) as registry:
        local = registry.load("credit@production").predict(GOOD["instances"])
    assert body["predictions"] == local.values.tolist()
    assert [p["1"] for p in body["probabilities"]] == pytest.approx(local.probabilities[:, 1].tolist())


def test_an_http_api_event_on_a_named_stage_is_predicted(lambda_env: None) -> None:
    answer = handler(event("http_api_v2"), None)  # rawPath /live/v1/models/credit/predict
    assert answer["statusCode"] == 200, answer["body"]
    assert "multiValueHeaders" not in answer and "cookies" not in answer
    assert answer["headers"]["x-request-id"] == "CjT8Ci2mliAEMsw="
    assert json.loads(answer["body"])["predictions"] in ([0], [1])


def test_a_function_url_event_with_a_base64_body_is_predicted(lambda_env: None) -> None:
    answer = handler(event("function_url"), None)  # the fixture's body is base64
    assert answer["statusCode"] == 200, answer["body"]
    assert json.loads(answer["body"])["request_id"] == "0e3f6a2b-7c1d-4e9a-b5f8-3d2c1b0a9f8e"


def test_the_callers_request_id_wins_over_api_gateways(lambda_env: None) -> None:
    answer = handler(event("function_url", headers={"X-Request-Id": "mine-7"}), None)
    assert json.loads(answer["body"])["request_id"] == "mine-7"


def test_one_container_loads_once_and_serves_every_event(lambda_env: None) -> None:
    def counted() -> float:
        text = handler(event("http_api_v2", "GET", "/metrics"), None)["body"]
        lines = [line for line in text.splitlines() if line.startswith("shipyard_requests_total{")]
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines if 'model="credit"' in line)

    before = counted()
    for kind in FORMATS:
        assert handler(event(kind), None)["statusCode"] == 200
    assert counted() == before + 3  # one service, kept across events, counted all three


# -- the same answers as the REST server -----------------------------------------------------------

CASES = {
    "good rows": ("POST", "/v1/models/credit/predict", orjson.dumps(GOOD)),
    "not JSON": ("POST", "/v1/models/credit/predict", b"age=41&income=5200"),
    "a JSON list": ("POST", "/v1/models/credit/predict", orjson.dumps(GOOD["instances"])),
    "a JSON number": ("POST", "/v1/models/credit/predict", b"42"),
    "JSON null": ("POST", "/v1/models/credit/predict", b"null"),
    "a JSON string": ("POST", "/v1/models/credit/predict", b'"rows"'),
    "a rejected row": (
        "POST",
        "/v1/models/credit/predict",
        orjson.dumps({"instances": [credit_row(), credit_row(age="old", country=None)]}),
    ),
    "an unknown model": ("POST", "/v1/models/nobody/predict", orjson.dumps(GOOD)),
    "an unknown route": ("POST", "/v1/nothing/here", orjson.dumps(GOOD)),
    "a wrong method": ("GET", "/v1/models/credit/predict", None),
    "MLflow": ("POST", "/invocations", orjson.dumps({"dataframe_records": GOOD["instances"]})),
    "MLflow, a rejected row": (
        "POST",
        "/invocations",
        orjson.dumps({"dataframe_records": [credit_row(income="lots")]}),
    ),
    "OIP infer": ("POST", "/v2/models/credit/infer", orjson.dumps(OIP)),
    "OIP infer, binary outputs": (
        "POST",
        "/v2/models/credit/infer",
        orjson.dumps({**OIP, "parameters": {"binary_data_output": True}}),
    ),
    "OIP infer, an unknown version": ("POST", "/v2/models/credit/versions/9/infer", orjson.dumps(OIP)),
    "OIP ready": ("GET", "/v2/health/ready", None),
    "ready": ("GET", "/readyz", None),
    "alive": ("GET", "/healthz", None),
    "explain": ("POST", "/v1/models/credit/explain", orjson.dumps({**GOOD, "top": 2})),
}


COMPARED_HEADERS = (
    "content-type",
    "allow",
    "x-request-id",
    "x-shipyard-version",
    "inference-header-content-length",
)

# Each case through one payload format in turn (each format's own reading is tested above); the
# rejected row through all three.
COMPARED = [(case, FORMATS[i % len(FORMATS)]) for i, case in enumerate(CASES)]
COMPARED += [("a rejected row", kind) for kind in FORMATS if ("a rejected row", kind) not in COMPARED]


@pytest.mark.parametrize(("case", "kind"), COMPARED, ids=[f"{c}-{k}" for c, k in COMPARED])
def test_every_answer_equals_the_rest_servers(
    lambda_env: None, server: ServerProcess, case: str, kind: str
) -> None:
    method, path, body = CASES[case]
    headers = {"content-type": "application/json", "x-request-id": f"same-{kind}"}
    expected = server.http.request(method, path, content=body, headers=headers)
    answer = handler(event(kind, method, path, body or b"", headers=headers), None)
    assert answer["statusCode"] == expected.status_code, answer["body"]
    assert answered_body(answer) == expected.content
    for name in (
        "content-type",
        "allow",
        "x-request-id",
        "x-shipyard-version",
        "inference-header-content-length",
    ):
        assert header_of(answer, name) == expected.headers.get(name), name
    binary = expected.headers["content-type"] == "application/octet-stream"
    assert answer["isBase64Encoded"] is binary


def test_a_rejected_row_is_422_with_every_violation(lambda_env: None) -> None:
    body = orjson.dumps({"instances": [credit_row(), credit_row(age="old")]})
    answer = handler(event("http_api_v2", body=body), None)
    assert answer["statusCode"] == 422
    error = json.loads(answer["body"])["error"]
    assert error["type"] == "contract_violation"
    assert [(v["row"], v["feature"]) for v in error["violations"]] == [(1, "age")]
    assert error["request_id"] == "CjT8Ci2mliAEMsw="


def test_a_wrong_method_is_405_naming_the_allowed_one(lambda_env: None) -> None:
    answer = handler(event("api_gateway_v1", "GET"), None)
    assert answer["statusCode"] == 405
    assert answer["headers"]["allow"] == "POST"


def test_feedback_is_refused_for_want_of_a_metadata_store(lambda_env: None) -> None:
    answer = handler(event("function_url", "POST", "/v1/feedback", b'{"labels": []}'), None)
    assert answer["statusCode"] == 400
    assert "takes no feedback" in json.loads(answer["body"])["error"]["message"]


def test_a_binary_request_body_is_read_from_base64(lambda_env: None) -> None:
    answer = handler(event("api_gateway_v1", body=orjson.dumps(GOOD), encode=True), None)
    assert answer["statusCode"] == 200, answer["body"]
    assert len(json.loads(answer["body"])["predictions"]) == 2


# -- events that are not HTTP requests -------------------------------------------------------------


def test_an_event_that_is_no_http_request_is_refused_naming_both_formats(lambda_env: None) -> None:
    with pytest.raises(InputError, match=r"keys \['instances'\]; expected an API Gateway REST event"):
        handler(GOOD, None)


def test_a_body_marked_base64_that_is_not_is_refused(lambda_env: None) -> None:
    broken = event("function_url")
    broken["body"] = "{not base64}"
    with pytest.raises(InputError, match="marked base64"):
        handler(broken, None)


# -- settings --------------------------------------------------------------------------------------


def test_the_bundle_is_the_default_and_wins_over_a_registry_ref() -> None:
    assert LambdaSettings.from_env({}).bundle == Path(DEFAULT_BUNDLE)
    both = LambdaSettings.from_env({"SHIPYARD_BUNDLE": "/opt/b", "SHIPYARD_SERVE_REF": "credit@production"})
    assert (both.bundle, both.ref) == (Path("/opt/b"), None)
    ref = LambdaSettings.from_env({"SHIPYARD_SERVE_REF": "credit@production"})
    assert (ref.bundle, ref.ref, ref.log_events) == (None, "credit@production", False)


def test_predictions_are_logged_before_the_answer_when_a_store_is_named(
    lambda_env: None, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = str(home / "artifacts")  # the registry's own store, named: the log goes there too
    monkeypatch.setenv("SHIPYARD_STORE_URL", store)
    answer = handler(event("http_api_v2", headers={"x-request-id": "logged-1"}), None)
    assert answer["statusCode"] == 200
    now = datetime.now(UTC)
    logged = read_events(store, "credit", since=now - timedelta(hours=1), until=now)
    assert logged["request_id"].to_pylist().count("logged-1") == 1


# -- a baked bundle --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle of `credit@production`, as `shipyard package` bakes it into the image."""
    out = tmp_path_factory.mktemp("lambda-bundle") / "bundle"
    with Registry(Settings.for_home(home)) as registry:
        write_bundle(registry, "credit@production", out)
    return out


def test_a_baked_bundle_answers_as_the_registrys_version_with_no_registry(
    lambda_env: None, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_registry = handler(event("function_url"), None)
    nowhere = tmp_path / "no-home"
    monkeypatch.setenv("SHIPYARD_HOME", str(nowhere))  # no metadata store to read
    monkeypatch.setenv("SHIPYARD_BUNDLE", str(bundle))
    baked = handler(event("function_url"), None)
    assert baked == from_registry
    ready = json.loads(handler(event("http_api_v2", "GET", "/readyz"), None)["body"])
    assert ready == {"status": "ready", "models": {"credit": 1}}
    assert not nowhere.exists()
