"""Hostile inputs: every JSON type in every feature position of every route is answered at once,
with a 4xx when it is bad input and never a 5xx, and leaves nothing held behind.

One server answers the whole sweep (REST: ours, MLflow's `/invocations` in each payload form,
OIP v2; gRPC: OIP ModelInfer); after it, a good request still gets the right answer, nothing is
in flight, and SIGTERM stops the server at once. The model has a feature of each type.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pandas as pd
import pytest

from servers import ServerProcess
from shipyard import ContractViolationError, Registry, Settings, ShipyardError
from shipyard.core.refs import ModelRef
from shipyard.serving import oip_v2_pb2 as pb
from shipyard.serving.merging import one_value_per_row
from shipyard.serving.metrics import Metrics
from shipyard.serving.served import Limits, Pending
from shipyard.serving.service import ModelService

# A hang shows as no answer within this; a bad value costs the server microseconds, not a second.
ANSWER_WITHIN = 1.0

GOOD = {"age": 41, "income": 5200.0, "country": "DE", "member": True}
DTYPES = {"age": "int", "income": "float", "country": "string", "member": "bool"}
NAMES = json.dumps(list(GOOD))
OIP_DATATYPES = {"age": "INT64", "income": "FP64", "country": "BYTES", "member": "BOOL"}

# Values as JSON text, so that the literals JSON has no room for (NaN, Infinity) and integers
# past 64 bits go out exactly as written.
HOSTILE = {
    "empty array": "[]",
    "array": "[1, 2]",
    "array of one": "[41]",
    "nested array": "[[1]]",
    "empty object": "{}",
    "object": '{"a": 1}',
    "true": "true",
    "false": "false",
    "null": "null",
    "string": '"x"',
    "empty string": '""',
    "numeric string": '"41"',
    "text inf": '"inf"',
    "text -Infinity": '"-Infinity"',
    "text NaN": '"NaN"',
    "1e308": "1e308",
    "-1e308": "-1e308",
    "1e400": "1e400",
    "2**63": "9223372036854775808",
    "-2**63-1": "-9223372036854775809",
    "2**64": "18446744073709551616",
    "10**24": "1000000000000000000000000",
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
}
NOT_A_VALUE = {"empty array", "array", "array of one", "nested array", "empty object", "object"}
NOT_JSON = {"NaN", "Infinity", "-Infinity"}
HUGE = {"1e308", "-1e308", "1e400", "2**63", "-2**63-1", "2**64", "10**24"}


def bad_input(value: str, feature: str) -> bool | None:
    """Whether `value` in `feature` is bad input on our and MLflow's routes (None: 200 or a 4xx
    may both be right, as for a huge number in a numeric feature)."""
    dtype = DTYPES[feature]
    if value in NOT_A_VALUE or value in NOT_JSON or value == "null":
        return True
    if value in ("true", "false"):
        return dtype != "bool"
    if value in ("string", "empty string"):
        return dtype != "string"
    if value == "numeric string":
        return None if dtype in ("int", "float") else dtype == "bool"
    if value.startswith("text "):  # numeric text that is no finite number
        return None if dtype == "int" else dtype != "string"
    assert value in HUGE
    return None if dtype in ("int", "float") else True


def row_text(feature: str, value: str) -> str:
    """One row as a JSON object with `value` (JSON text) as `feature`."""
    items = [f'"{k}": {value if k == feature else json.dumps(v)}' for k, v in GOOD.items()]
    return "{" + ", ".join(items) + "}"


def list_text(feature: str, value: str) -> str:
    """One row as a JSON list in the contract's order."""
    return "[" + ", ".join(value if k == feature else json.dumps(v) for k, v in GOOD.items()) + "]"


def columns_text(feature: str, value: str) -> str:
    """One row as a JSON object of columns."""
    items = [f'"{k}": [{value if k == feature else json.dumps(v)}]' for k, v in GOOD.items()]
    return "{" + ", ".join(items) + "}"


def oip_text(feature: str, value: str) -> str:
    """An OIP v2 REST request with one [1] tensor per feature."""
    tensors = [
        f'{{"name": "{k}", "datatype": "{OIP_DATATYPES[k]}", "shape": [1], '
        f'"data": [{value if k == feature else json.dumps(v)}]}}'
        for k, v in GOOD.items()
    ]
    return '{"inputs": [' + ", ".join(tensors) + "]}"


# Route -> (path, body builder); each puts the value in one feature's place of one payload form.
FORMS: dict[str, tuple[str, Callable[[str, str], str]]] = {
    "ours rows": ("/v1/models/mixed/predict", lambda f, v: f'{{"instances": [{row_text(f, v)}]}}'),
    "ours second row": (
        "/v1/models/mixed/predict",
        lambda f, v: f'{{"instances": [{row_text("", "")}, {row_text(f, v)}]}}',
    ),
    "ours lists": ("/v1/models/mixed/predict", lambda f, v: f'{{"instances": [{list_text(f, v)}]}}'),
    "ours columns": ("/v1/models/mixed/predict", lambda f, v: f'{{"inputs": {columns_text(f, v)}}}'),
    "mlflow dataframe_records": ("/invocations", lambda f, v: f'{{"dataframe_records": [{row_text(f, v)}]}}'),
    "mlflow dataframe_split": (
        "/invocations",
        lambda f, v: f'{{"dataframe_split": {{"columns": {NAMES}, "data": [{list_text(f, v)}]}}}}',
    ),
    "mlflow instances": ("/invocations", lambda f, v: f'{{"instances": [{row_text(f, v)}]}}'),
    "mlflow inputs columns": ("/invocations", lambda f, v: f'{{"inputs": {columns_text(f, v)}}}'),
    "mlflow inputs rows": ("/invocations", lambda f, v: f'{{"inputs": [{row_text(f, v)}]}}'),
    "oip rest": ("/v2/models/mixed/infer", oip_text),
}


def mixed_model() -> tuple[Any, pd.DataFrame]:
    """A small classifier with an integer, a float, a string and a boolean feature."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(3)
    n = 300
    data = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "income": rng.uniform(500, 9000, n).round(2),
            "country": rng.choice(["DE", "ES", "FR"], n),
            "member": rng.random(n) < 0.5,
        }
    )
    data["default"] = ((data["age"] < 30) ^ data["member"]).astype(int)
    encode = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["country"]), remainder="passthrough"
    )
    model = make_pipeline(encode, LogisticRegression(max_iter=500))
    return model.fit(data.drop(columns=["default"]), data["default"]), data


@pytest.fixture(scope="module")
def mixed_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with `mixed:1` registered."""
    home = tmp_path_factory.mktemp("hostile-home")
    model, data = mixed_model()
    settings = replace(Settings.for_home(home), protected_aliases=())
    with Registry(settings, actor="tester") as registry:
        registry.register(model, name="mixed", train_data=data, target="default")
    return home


@pytest.fixture(scope="module")
def server(mixed_home: Path) -> Iterator[ServerProcess]:
    """`shipyard serve mixed:1`, REST and gRPC, for the whole sweep."""
    process = ServerProcess(mixed_home, ["mixed:1"])
    try:
        yield process.wait_ready()
    finally:
        process.terminate()


@pytest.fixture(scope="module")
def expected(mixed_home: Path) -> list[int]:
    """What the model says of the good row and its opposite, predicted in this process."""
    with Registry(Settings.for_home(mixed_home), actor="tester") as registry:
        loaded = registry.load("mixed:1")
    rows = [GOOD, {**GOOD, "age": 25, "member": False}]
    return [int(v) for v in loaded.predict(rows).values.tolist()]


def post(server: ServerProcess, path: str, body: str) -> httpx.Response | str:
    """The answer, or what went wrong instead of one (a hang shows as a timeout).

    A timeout is tried once more: a hang hangs again, while a test machine busy with other
    suites may stall a process for a moment.
    """
    error: httpx.HTTPError | None = None
    for _ in range(2):
        try:
            return server.http.post(
                path,
                content=body.encode(),
                headers={"content-type": "application/json"},
                timeout=ANSWER_WITHIN,
            )
        except httpx.TimeoutException as exc:
            error = exc
        except httpx.HTTPError as exc:
            return f"no answer ({type(exc).__name__})"
    return f"no answer within {ANSWER_WITHIN}s, twice ({type(error).__name__})"


def inflight(server: ServerProcess) -> float:
    """The requests in flight, summed over the served models (the scrape is not one of them)."""
    text = server.http.get("/metrics", timeout=ANSWER_WITHIN).text
    lines = [x for x in text.splitlines() if x.startswith("shipyard_inflight_requests{")]
    assert lines, "no shipyard_inflight_requests series"
    return sum(float(x.rsplit(" ", 1)[1]) for x in lines)


@pytest.mark.parametrize("form", list(FORMS))
def test_every_json_type_in_every_feature_is_answered_and_never_5xx(server: ServerProcess, form: str) -> None:
    path, build = FORMS[form]
    wrong = []
    for feature in GOOD:
        for name, value in HOSTILE.items():
            answer = post(server, path, build(feature, value))
            where = f"{form}: {name} in {feature!r}"
            if isinstance(answer, str):
                wrong.append(f"{where}: {answer}")
                continue
            status = answer.status_code
            bad = bad_input(name, feature)
            if form == "oip rest" and name not in NOT_JSON | {"empty object", "object", "null"}:
                bad = None  # typed tensors: nested lists are rows, true is 1 (the OIP's own rules)
            if status >= 500 or (bad is True and not 400 <= status < 500) or (bad is False and status != 200):
                wrong.append(f"{where}: {status} {answer.text[:200]}")
    assert not wrong, "\n".join(wrong)


def grpc_request(feature: str, datatype: str, fill: Callable[[Any], None]) -> pb.ModelInferRequest:
    """A ModelInfer request for `mixed` with good tensors, but `feature` sent as `datatype`."""
    request = pb.ModelInferRequest(model_name="mixed")
    for name, value in GOOD.items():
        if name == feature:
            fill(request.inputs.add(name=name, datatype=datatype, shape=[1]))
            continue
        tensor = request.inputs.add(name=name, datatype=OIP_DATATYPES[name], shape=[1])
        if isinstance(value, bool):
            tensor.contents.bool_contents.append(value)
        elif isinstance(value, int):
            tensor.contents.int64_contents.append(value)
        elif isinstance(value, float):
            tensor.contents.fp64_contents.append(value)
        else:
            tensor.contents.bytes_contents.append(value.encode())
    return request


# gRPC values are typed, so hostile ones are the extremes of each type and the wrong types.
GRPC_VALUES: dict[str, tuple[str, Callable[[Any], None], bool | None]] = {
    "text": ("BYTES", lambda t: t.contents.bytes_contents.append(b"x"), None),
    "a JSON array as text": ("BYTES", lambda t: t.contents.bytes_contents.append(b"[]"), None),
    "not UTF-8": ("BYTES", lambda t: t.contents.bytes_contents.append(b"\xff\xfe"), True),
    "NaN": ("FP64", lambda t: t.contents.fp64_contents.append(float("nan")), True),
    "Infinity": ("FP64", lambda t: t.contents.fp64_contents.append(float("inf")), None),
    "1e308": ("FP64", lambda t: t.contents.fp64_contents.append(1e308), None),
    "2**63 - 1": ("INT64", lambda t: t.contents.int64_contents.append(2**63 - 1), None),
    "-2**63": ("INT64", lambda t: t.contents.int64_contents.append(-(2**63)), None),
    "2**64 - 1": ("UINT64", lambda t: t.contents.uint64_contents.append(2**64 - 1), None),
    "INT8 1000": ("INT8", lambda t: t.contents.int_contents.append(1000), None),
    "true": ("BOOL", lambda t: t.contents.bool_contents.append(True), None),
    "no values": ("INT64", lambda t: None, True),
    "3 raw bytes": ("INT64", lambda t: None, True),
    "unknown datatype": ("COMPLEX", lambda t: None, True),
}


def test_every_grpc_type_in_every_feature_is_answered_and_never_internal(server: ServerProcess) -> None:
    wrong = []
    with grpc.insecure_channel(server.grpc_target) as channel:
        infer = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        for feature in GOOD:
            for name, (datatype, fill, bad) in GRPC_VALUES.items():
                request = grpc_request(feature, datatype, fill)
                if name == "3 raw bytes":
                    request.raw_input_contents.extend([b"\x00\x00\x00"] * len(request.inputs))
                where = f"gRPC {name} ({datatype}) in {feature!r}"
                for _ in range(2):  # a deadline is tried once more, as `post` does
                    try:
                        infer(request, timeout=ANSWER_WITHIN)
                        code = grpc.StatusCode.OK
                    except grpc.RpcError as exc:
                        code = exc.code()
                    if code != grpc.StatusCode.DEADLINE_EXCEEDED:
                        break
                ok = code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT)
                if not ok or (bad and code != grpc.StatusCode.INVALID_ARGUMENT):
                    wrong.append(f"{where}: {code.name}")
    assert not wrong, "\n".join(wrong)


def test_after_the_sweep_good_requests_are_answered_and_nothing_is_in_flight(
    server: ServerProcess, expected: list[int]
) -> None:
    rows = [GOOD, {**GOOD, "age": 25, "member": False}]
    ours = server.http.post("/v1/models/mixed/predict", json={"instances": rows}, timeout=ANSWER_WITHIN)
    assert ours.status_code == 200, ours.text
    assert ours.json()["predictions"] == expected
    mlflow = server.http.post("/invocations", json={"dataframe_records": rows}, timeout=ANSWER_WITHIN)
    assert mlflow.json()["predictions"] == expected
    with grpc.insecure_channel(server.grpc_target) as channel:
        infer = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        response = infer(grpc_request("", "", lambda t: None), timeout=ANSWER_WITHIN)
    assert np.frombuffer(response.raw_output_contents[0], dtype="<i8").tolist() == expected[:1]
    assert inflight(server) == 0


def test_sigterm_stops_the_server_at_once(server: ServerProcess) -> None:
    server.http.close()
    server.process.send_signal(signal.SIGTERM)
    try:
        code = server.process.wait(timeout=15)  # a stop waits only for requests being answered
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server did not stop on SIGTERM:\n{server.output()[-2000:]}")
    assert code == 0, server.output()[-2000:]


# -- in process: one request's bad values never fail the requests batched with it ---------------
@pytest.fixture
def service(mixed_home: Path) -> ModelService:
    with Registry(Settings.for_home(mixed_home), actor="tester") as registry:
        loaded = registry.load("mixed:1")
    service = ModelService(limits=Limits(), metrics=Metrics())
    service.add(ModelRef.parse("mixed:1"), loaded)
    service.warm_up()
    return service


def columns(row: dict[str, Any]) -> dict[str, list[Any]]:
    return {k: [v] for k, v in row.items()}


def test_a_bad_request_fails_alone_in_a_shared_model_call(service: ModelService, expected: list[int]) -> None:
    served = service.route("mixed")
    hostile = [{**GOOD, "age": []}, {**GOOD, "member": {}}, {**GOOD, "country": [[1]]}]
    good = [GOOD] * 3

    async def run() -> list[Any]:
        calls = [
            service.predict(
                served, columns(row), 1, protocol="test", request_id=f"r{i}", arrived=time.perf_counter()
            )
            for i, row in enumerate([good[0], hostile[0], good[1], hostile[1], good[2], hostile[2]])
        ]
        return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), ANSWER_WITHIN)

    results = asyncio.run(run())
    for i in (0, 2, 4):
        assert results[i].predictions.values.tolist() == expected[:1]
    for i, feature in ((1, "age"), (3, "member"), (5, "country")):
        assert isinstance(results[i], ContractViolationError), results[i]
        assert [(v.row, v.feature) for v in results[i].violations] == [(0, feature)]


def test_a_call_that_fails_unforeseen_is_retried_request_by_request(
    service: ModelService, expected: list[int]
) -> None:
    served = service.route("mixed")
    # Past the checks made before queueing (as a future transport might be): an object in a
    # boolean column, on which the contract's own check may raise.
    crafted = one_value_per_row(served.loaded, columns(GOOD), 1)
    crafted["member"] = np.empty(1, dtype=object)
    crafted["member"][0] = {}
    good = one_value_per_row(served.loaded, columns(GOOD), 1)

    async def run() -> list[Any]:
        loop = asyncio.get_running_loop()
        jobs = [
            Pending(cols, 1, f"r{i}", "test", time.perf_counter(), False, loop.create_future())
            for i, cols in enumerate([good, crafted, good])
        ]
        service.run_batch(served, served.loaded, jobs)
        return await asyncio.gather(*(j.future for j in jobs), return_exceptions=True)

    results = asyncio.run(run())
    assert results[0].predictions.values.tolist() == expected[:1]
    assert results[2].predictions.values.tolist() == expected[:1]
    assert isinstance(results[1], ShipyardError), results[1]
