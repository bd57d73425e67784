"""The gRPC transport in process: a real gRPC server on 127.0.0.1 over a `ModelService`, called
with a real channel; its status table, its trailer of violations, and malformed messages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
import pandas as pd
import pytest

from servers import credit_row, free_port
from shipyard import Registry
from shipyard.core.refs import ModelRef
from shipyard.errors import (
    AuthenticationError,
    ContractViolationError,
    NotReadyError,
    PredictionError,
    RateLimitedError,
    RequestTooLargeError,
    ShipyardError,
    UnknownModelError,
)
from shipyard.serving import oip_v2_pb2 as pb
from shipyard.serving.grpc_server import code_of, start_grpc
from shipyard.serving.metrics import Metrics
from shipyard.serving.served import Limits
from shipyard.serving.service import ModelService
from shipyard.serving.wire import GRPC_SERVICE, VIOLATIONS_KEY

Scenario = Callable[[grpc.aio.Channel], Awaitable[Any]]


@pytest.fixture
def service(sqlite_registry: Registry, credit: pd.DataFrame, credit_pipeline: Any) -> ModelService:
    sqlite_registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    service = ModelService(limits=Limits(), metrics=Metrics())
    service.add(ModelRef.parse("credit:1"), sqlite_registry.load("credit:1"))
    service.warm_up()
    return service


def served(service: ModelService, scenario: Scenario) -> Any:
    """Run `scenario` with a channel to a real gRPC server over `service`, then stop the server."""

    async def run() -> Any:
        address = f"127.0.0.1:{free_port()}"
        server = await start_grpc(service, address, max_message_bytes=1 << 20)
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                return await scenario(channel)
        finally:
            await server.stop(0)

    return asyncio.run(run())


def rpc(channel: grpc.aio.Channel, method: str, response: Any, *, raw: bool = False) -> Any:
    return channel.unary_unary(
        f"/{GRPC_SERVICE}/{method}",
        request_serializer=None if raw else (lambda m: m.SerializeToString()),
        response_deserializer=response.FromString,
    )


def infer_request(rows: list[dict[str, Any]]) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="credit", id="req-1")
    for name in rows[0]:
        values = [r[name] for r in rows]
        if isinstance(values[0], str):
            tensor = request.inputs.add(name=name, datatype="BYTES", shape=[len(rows)])
            tensor.contents.bytes_contents.extend(v.encode() for v in values)
        elif isinstance(values[0], int):
            tensor = request.inputs.add(name=name, datatype="INT64", shape=[len(rows)])
            tensor.contents.int64_contents.extend(values)
        else:
            tensor = request.inputs.add(name=name, datatype="FP64", shape=[len(rows)])
            tensor.contents.fp64_contents.extend(values)
    return request


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (AuthenticationError("x"), grpc.StatusCode.UNAUTHENTICATED),
        (RateLimitedError("x", retry_after=1.0), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (ContractViolationError("x", []), grpc.StatusCode.INVALID_ARGUMENT),
        (RequestTooLargeError("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (UnknownModelError("x"), grpc.StatusCode.NOT_FOUND),
        (NotReadyError("x"), grpc.StatusCode.UNAVAILABLE),
        (PredictionError("x"), grpc.StatusCode.INTERNAL),
        (ShipyardError("x"), grpc.StatusCode.INTERNAL),
    ],
)
def test_each_error_has_its_status_code(error: ShipyardError, code: grpc.StatusCode) -> None:
    assert code_of(error) is code


def test_a_row_is_answered_with_the_callers_id_and_the_version(service: ModelService) -> None:
    async def scenario(channel: grpc.aio.Channel) -> pb.ModelInferResponse:
        return await rpc(channel, "ModelInfer", pb.ModelInferResponse)(infer_request([credit_row()]))

    answer = served(service, scenario)
    assert (answer.model_name, answer.model_version, answer.id) == ("credit", "1", "req-1")
    assert [o.name for o in answer.outputs] == ["prediction", "probabilities"]


def test_the_server_and_model_rpcs_answer(service: ModelService) -> None:
    async def scenario(channel: grpc.aio.Channel) -> tuple[Any, ...]:
        live = await rpc(channel, "ServerLive", pb.ServerLiveResponse)(pb.ServerLiveRequest())
        ready = await rpc(channel, "ServerReady", pb.ServerReadyResponse)(pb.ServerReadyRequest())
        model = await rpc(channel, "ModelReady", pb.ModelReadyResponse)(pb.ModelReadyRequest(name="credit"))
        other = await rpc(channel, "ModelReady", pb.ModelReadyResponse)(pb.ModelReadyRequest(name="other"))
        metadata = await rpc(channel, "ModelMetadata", pb.ModelMetadataResponse)(
            pb.ModelMetadataRequest(name="credit")
        )
        return live.live, ready.ready, model.ready, other.ready, metadata

    live, ready, model, other, metadata = served(service, scenario)
    assert (live, ready, model, other) == (True, True, True, False)  # an unknown model is not ready
    assert metadata.versions == ["1"]
    assert [i.name for i in metadata.inputs] == list(service.models["credit"].loaded.contract.names)


def test_an_unknown_model_is_not_found(service: ModelService) -> None:
    async def scenario(channel: grpc.aio.Channel) -> Any:
        return await rpc(channel, "ModelMetadata", pb.ModelMetadataResponse)(
            pb.ModelMetadataRequest(name="nope")
        )

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        served(service, scenario)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "does not serve a model named 'nope'" in (caught.value.details() or "")


def test_violations_travel_in_their_trailer(service: ModelService) -> None:
    async def scenario(channel: grpc.aio.Channel) -> Any:
        return await rpc(channel, "ModelInfer", pb.ModelInferResponse)(infer_request([credit_row(age="x")]))

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        served(service, scenario)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    trailer = dict(caught.value.trailing_metadata() or ())
    violations = json.loads(trailer[VIOLATIONS_KEY])
    assert [(v["row"], v["feature"], v["value"]) for v in violations] == [(0, "age", "x")]


def test_a_malformed_message_is_invalid_argument_naming_the_rpcs_message(service: ModelService) -> None:
    async def scenario(channel: grpc.aio.Channel) -> Any:
        return await rpc(channel, "ModelMetadata", pb.ModelMetadataResponse, raw=True)(b"\xff\xff\xff\xff")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        served(service, scenario)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid ModelMetadataRequest protobuf message" in (caught.value.details() or "")
