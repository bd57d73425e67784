"""The gRPC transport: the Open Inference Protocol's `inference.GRPCInferenceService`, all six RPCs.

It runs on the worker's event loop beside the REST app and calls the same `ModelService`; it only
decodes and encodes. Status codes live in the table below, never on the exceptions.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from importlib.metadata import version as package_version
from typing import Any

import grpc
import grpc.aio
import orjson
from google.protobuf.message import DecodeError

from shipyard.errors import (
    ConfigError,
    ContractViolationError,
    InputError,
    RateLimitedError,
    SecurityError,
    ShipyardError,
)
from shipyard.security.access import Action
from shipyard.security.guard import credential
from shipyard.serving import oip, oip_answers
from shipyard.serving import oip_v2_pb2 as pb
from shipyard.serving.auth import admit
from shipyard.serving.explain_payloads import explanation_parameters, explanation_tensors
from shipyard.serving.explaining import explain_request, read_ask
from shipyard.serving.served import ServedModel
from shipyard.serving.service import ModelService
from shipyard.serving.tls import TlsFiles
from shipyard.serving.wire import GRPC_CODES, GRPC_SERVICE, RETRY_AFTER_KEY, VIOLATIONS_KEY

__all__ = ["code_of", "grpc_server", "start_grpc"]

# Bytes of violations in the trailer: base64 makes them 4/3 larger, and the message (up to ten
# violations of its own) shares the clients' 8 KiB budget for metadata.
_TRAILER_BYTES = 3500

_CODES = tuple((kind, grpc.StatusCode[name]) for kind, name in GRPC_CODES)


def code_of(error: ShipyardError) -> grpc.StatusCode:
    """The gRPC status code for an error (`wire.GRPC_CODES`)."""
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


class _Inference:
    def __init__(self, service: ModelService) -> None:
        self.service = service
        self.metrics = service.metrics
        self.version = package_version("shipyard")

    async def _admit(self, context: grpc.aio.ServicerContext, action: Action, target: str | None) -> None:
        if not self.service.guard.active:
            return
        try:
            await admit(self.service, _credential(context), action, target, client=_peer(context))
        except SecurityError as exc:
            trailing: tuple[tuple[str, str], ...] = ()
            if isinstance(exc, RateLimitedError):
                trailing = ((RETRY_AFTER_KEY, str(max(1, math.ceil(exc.retry_after)))),)
            await context.abort(code_of(exc), str(exc), trailing_metadata=trailing)

    async def server_live(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.service.ready)

    async def model_ready(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        await self._admit(context, Action.READ, request.name)  # which models are served is not open
        try:
            served = self.service.find(request.name, request.version or None)
        except ShipyardError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=served.ready)

    async def server_metadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        await self._admit(context, Action.READ, None)
        return pb.ServerMetadataResponse(name="shipyard", version=self.version, extensions=[])

    async def model_metadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        await self._admit(context, Action.READ, request.name)
        try:
            served = self.service.route(request.name, request.version or None)
        except ShipyardError as exc:
            await context.abort(code_of(exc), str(exc))
        version = served.version
        meta = oip_answers.model_metadata(version.contract, served.name, version.version, version.flavor)
        response = pb.ModelMetadataResponse(
            name=meta["name"], versions=meta["versions"], platform=meta["platform"]
        )
        for tensor in meta["inputs"]:
            response.inputs.add(**tensor)
        for tensor in meta["outputs"]:
            response.outputs.add(**tensor)
        return response

    async def model_infer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        arrived = time.perf_counter()
        metrics = self.metrics
        metrics.inflight += 1
        name, version, code = request.model_name, "", grpc.StatusCode.OK
        running = metrics.begin(name)
        try:
            if self.service.guard.active:
                await admit(self.service, _credential(context), Action.PREDICT, name, client=_peer(context))
            served = self.service.route(name, request.model_version or None)
            version = str(served.version.version)
            decoded = oip.decode_grpc(request, served.loaded.contract)
            request_id = decoded.id or self.service.new_request_id()
            if _explains(decoded.parameters):
                response = await self._explain(
                    served, decoded, request_id=request_id, arrived=arrived, context=context, request=request
                )
                version = response.model_version
                return response
            answer = await self.service.predict(
                served,
                decoded.columns,
                decoded.n_rows,
                protocol="oip-grpc",
                request_id=request_id,
                arrived=arrived,
                trickles=True,
                key=_routing_key(served, context, decoded.columns),
                version=request.model_version or None,
            )
            version = str(answer.version.version)
            return oip_answers.encode_grpc(
                answer.predictions,
                model=name,
                version=answer.version.version,
                request_id=request_id,  # the id the prediction log keeps, made here if none came
                wanted=decoded.outputs,
            )
        except ShipyardError as exc:
            code = code_of(exc)
            trailing: tuple[tuple[str, Any], ...] = ()
            if isinstance(exc, RateLimitedError):
                trailing = ((RETRY_AFTER_KEY, str(max(1, math.ceil(exc.retry_after)))),)
            if isinstance(exc, ContractViolationError):
                trailing = ((VIOLATIONS_KEY, _violations_trailer(exc)),)
            await context.abort(code, str(exc), trailing_metadata=trailing)
            raise  # abort raises; this line only tells the type checker
        except asyncio.CancelledError:  # the client cancelled the call, or its deadline passed
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception:  # nobody foresaw it: gRPC answers UNKNOWN
            code = grpc.StatusCode.UNKNOWN
            raise
        finally:
            metrics.inflight -= 1
            metrics.end(running)
            metrics.request(name, version, "oip-grpc", code.name, time.perf_counter() - arrived)

    async def _explain(
        self,
        served: ServedModel,
        decoded: oip.OipRequest,
        *,
        request_id: str,
        arrived: float,
        context: grpc.aio.ServicerContext,
        request: pb.ModelInferRequest,
    ) -> pb.ModelInferResponse:
        """`ModelInfer` with parameter `explain: true`: infer's tensors plus the explanation's."""
        ask = read_ask(decoded.parameters, where="the request's parameters")
        explained = await explain_request(
            self.service,
            served,
            decoded.columns,
            decoded.n_rows,
            ask=ask,
            protocol="oip-grpc",
            request_id=request_id,
            arrived=arrived,
            key=_routing_key(served, context, decoded.columns),
            version=request.model_version or None,
        )
        return oip_answers.encode_grpc(
            explained.answer.predictions,
            model=request.model_name,
            version=explained.answer.version.version,
            request_id=request_id,
            wanted=decoded.outputs,
            extra=explanation_tensors(explained),
            parameters=explanation_parameters(explained),
        )


def _explains(parameters: Mapping[str, Any]) -> bool:
    """Whether an infer request asks for an explanation (`explain`: true, or "true").

    Raises:
        InputError: `explain` is neither a boolean nor "true"/"false".
    """
    value = parameters.get("explain")
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InputError(
        f"parameter 'explain' is {value!r}; expected a boolean (bool_param), true to explain the rows"
    )


def _violations_trailer(error: ContractViolationError) -> bytes:
    """The violations as JSON for the trailer, as many as fit: gRPC clients refuse metadata over
    8 KiB (16 KiB at most), and a 50-row request can break 300 rules; the message counts them all."""
    parts: list[bytes] = []
    size = 2
    for violation in error.violations:
        part = orjson.dumps(violation.to_dict())
        size += len(part) + 1
        if size > _TRAILER_BYTES and parts:
            break
        parts.append(part)
    return b"[" + b",".join(parts) + b"]"


def _credential(context: grpc.aio.ServicerContext) -> str | None:
    """The request's credential, from the `authorization` or `x-api-key` metadata."""
    found: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if key in ("authorization", "x-api-key"):
            found[key] = value if isinstance(value, str) else value.decode("latin-1")
    return credential(found.get("authorization"), found.get("x-api-key"))


def _peer(context: grpc.aio.ServicerContext) -> str | None:
    """The caller's address without its port (`ipv4:10.0.0.7:5123` -> `10.0.0.7`)."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        host = rest.rsplit(":", 1)[0]
        return host.strip("[]") or None
    return peer or None


def _routing_key(served: ServedModel, context: grpc.aio.ServicerContext, columns: Any) -> str | None:
    """The key that keeps a caller on one arm of a deployment, from the metadata or a feature."""
    if served.router is None:
        return None
    header = None
    if served.key_header is not None:
        wanted = served.key_header.decode()
        for key, value in context.invocation_metadata() or ():
            if key == wanted:
                header = value if isinstance(value, str) else value.decode("latin-1")
                break
    return served.routing_key(header, columns)


class _Malformed:
    """A request whose bytes are not the RPC's protobuf message (the handler refuses it)."""

    def __init__(self, kind: str, size: int, error: str) -> None:
        self.message = (
            f"the request is not a valid {kind} protobuf message ({size} bytes): {error}; "
            "expected the message of inference.GRPCInferenceService's grpc_service.proto"
        )


def _unary(
    fn: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]], request: Any, response: Any
) -> grpc.RpcMethodHandler:
    # grpc answers a request its deserializer raised on with UNKNOWN; the caller's bytes are at
    # fault, so they reach the handler as `_Malformed` and are refused as INVALID_ARGUMENT.
    def read(data: bytes) -> Any:
        try:
            return request.FromString(data)
        except DecodeError as exc:
            return _Malformed(request.DESCRIPTOR.name, len(data), str(exc) or "cannot be parsed")

    async def handle(message: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(message, _Malformed):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message.message)
        return await fn(message, context)

    return grpc.unary_unary_rpc_method_handler(
        handle, request_deserializer=read, response_serializer=response.SerializeToString
    )


def grpc_server(service: ModelService, *, max_message_bytes: int) -> grpc.aio.Server:
    """A gRPC server (not yet bound or started) that answers the OIP's six RPCs.

    Args:
        service: the data plane.
        max_message_bytes: the largest request accepted (RESOURCE_EXHAUSTED above it).
    """
    impl = _Inference(service)
    handlers = {
        "ServerLive": _unary(impl.server_live, pb.ServerLiveRequest, pb.ServerLiveResponse),
        "ServerReady": _unary(impl.server_ready, pb.ServerReadyRequest, pb.ServerReadyResponse),
        "ModelReady": _unary(impl.model_ready, pb.ModelReadyRequest, pb.ModelReadyResponse),
        "ServerMetadata": _unary(impl.server_metadata, pb.ServerMetadataRequest, pb.ServerMetadataResponse),
        "ModelMetadata": _unary(impl.model_metadata, pb.ModelMetadataRequest, pb.ModelMetadataResponse),
        "ModelInfer": _unary(impl.model_infer, pb.ModelInferRequest, pb.ModelInferResponse),
    }
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 1),
        ]
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(GRPC_SERVICE, handlers),))
    return server


async def start_grpc(
    service: ModelService, address: str, *, max_message_bytes: int, tls: TlsFiles | None = None
) -> grpc.aio.Server:
    """A worker's gRPC server, bound to `address` (over TLS when `tls` is given) and started.

    Raises:
        ConfigError: the address cannot be listened on.
    """
    server = grpc_server(service, max_message_bytes=max_message_bytes)
    try:
        if tls is not None:
            server.add_secure_port(address, tls.grpc())
        else:
            server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ConfigError(f"cannot listen for gRPC on {address}: {exc}") from None
    await server.start()
    return server
