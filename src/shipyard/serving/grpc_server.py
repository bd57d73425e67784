"""The gRPC transport: the Open Inference Protocol's `inference.GRPCInferenceService`, all six RPCs.

It runs on the worker's event loop beside the REST app, served by our own HTTP/2 server
(`h2_server.py`), and calls the same `ModelService`; it only decodes and encodes. Calls that arrive
together start in the same turn of the loop, so the batcher merges them as it merges REST's.
Status codes live in `wire.GRPC_CODES`, never on the exceptions.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from importlib.metadata import version as package_version
from typing import Any, NoReturn

import grpc
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
from shipyard.serving import oip, oip_answers, sockets
from shipyard.serving import oip_v2_pb2 as pb
from shipyard.serving.auth import admit
from shipyard.serving.connections import ConnectionLimits
from shipyard.serving.explain_payloads import explanation_parameters, explanation_tensors
from shipyard.serving.explaining import explain_request, read_ask
from shipyard.serving.h2_calls import Call, CallError
from shipyard.serving.h2_server import H2Server
from shipyard.serving.served import ServedModel
from shipyard.serving.service import ModelService
from shipyard.serving.tls import TlsFiles
from shipyard.serving.wire import GRPC_CODES, GRPC_SERVICE, RETRY_AFTER_KEY, VIOLATIONS_KEY

__all__ = ["Context", "code_of", "start_grpc"]

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


class Context:
    """What a handler knows of its call besides the message: the metadata and the caller's address,
    and how to end the call with a status."""

    __slots__ = ("metadata", "peer")

    def __init__(self, call: Call) -> None:
        self.metadata: tuple[tuple[str, str | bytes], ...] = call.metadata
        self.peer: str | None = call.peer

    def abort(
        self, code: grpc.StatusCode, message: str, trailing_metadata: Sequence[tuple[str, str | bytes]] = ()
    ) -> NoReturn:
        """End the call with `code`, `message` and the trailing metadata."""
        raise CallError(code.value[0], message, trailing_metadata)


class _Inference:
    def __init__(self, service: ModelService) -> None:
        self.service = service
        self.metrics = service.metrics
        self.version = package_version("shipyard")

    async def _admit(self, context: Context, action: Action, target: str | None) -> None:
        if not self.service.guard.active:
            return
        try:
            await admit(self.service, _credential(context), action, target, client=_peer(context))
        except SecurityError as exc:
            trailing: tuple[tuple[str, str], ...] = ()
            if isinstance(exc, RateLimitedError):
                trailing = ((RETRY_AFTER_KEY, str(max(1, math.ceil(exc.retry_after)))),)
            context.abort(code_of(exc), str(exc), trailing_metadata=trailing)

    async def server_live(self, request: pb.ServerLiveRequest, context: Context) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(self, request: pb.ServerReadyRequest, context: Context) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.service.ready)

    async def model_ready(self, request: pb.ModelReadyRequest, context: Context) -> pb.ModelReadyResponse:
        await self._admit(context, Action.READ, request.name)  # which models are served is not open
        try:
            served = self.service.find(request.name, request.version or None)
        except ShipyardError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=served.ready)

    async def server_metadata(
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        await self._admit(context, Action.READ, None)
        return pb.ServerMetadataResponse(name="shipyard", version=self.version, extensions=[])

    async def model_metadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        await self._admit(context, Action.READ, request.name)
        try:
            served = self.service.route(request.name, request.version or None)
        except ShipyardError as exc:
            context.abort(code_of(exc), str(exc))
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

    async def model_infer(self, request: pb.ModelInferRequest, context: Context) -> pb.ModelInferResponse:
        arrived = time.perf_counter()
        metrics = self.metrics
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
            context.abort(code, str(exc), trailing_metadata=trailing)
        except asyncio.CancelledError:  # the worker stops while the call waits
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception:  # nobody foresaw it: the HTTP/2 server answers INTERNAL
            code = grpc.StatusCode.INTERNAL
            raise
        finally:
            metrics.end(running)
            metrics.request(name, version, "oip-grpc", code.name, time.perf_counter() - arrived)

    async def _explain(
        self,
        served: ServedModel,
        decoded: oip.OipRequest,
        *,
        request_id: str,
        arrived: float,
        context: Context,
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


def _credential(context: Context) -> str | None:
    """The request's credential, from the `authorization` or `x-api-key` metadata."""
    found: dict[str, str] = {}
    for key, value in context.metadata:
        if key in ("authorization", "x-api-key"):
            found[key] = value if isinstance(value, str) else value.decode("latin-1")
    return credential(found.get("authorization"), found.get("x-api-key"))


def _peer(context: Context) -> str | None:
    """The caller's address, without its port."""
    return context.peer


def _routing_key(served: ServedModel, context: Context, columns: Any) -> str | None:
    """The key that keeps a caller on one arm of a deployment, from the metadata or a feature."""
    if served.router is None:
        return None
    header = None
    if served.key_header is not None:
        wanted = served.key_header.decode()
        for key, value in context.metadata:
            if key == wanted:
                header = value if isinstance(value, str) else value.decode("latin-1")
                break
    return served.routing_key(header, columns)


Handler = Callable[[Any, Context], Awaitable[Any]]


def _app(service: ModelService) -> Callable[[Call], Awaitable[bytes]]:
    """What answers each call: the RPC's handler on its decoded message, the answer serialized."""
    impl = _Inference(service)
    routes: dict[str, tuple[Handler, Any]] = {
        f"/{GRPC_SERVICE}/{name}": (handler, request)
        for name, handler, request in (
            ("ServerLive", impl.server_live, pb.ServerLiveRequest),
            ("ServerReady", impl.server_ready, pb.ServerReadyRequest),
            ("ModelReady", impl.model_ready, pb.ModelReadyRequest),
            ("ServerMetadata", impl.server_metadata, pb.ServerMetadataRequest),
            ("ModelMetadata", impl.model_metadata, pb.ModelMetadataRequest),
            ("ModelInfer", impl.model_infer, pb.ModelInferRequest),
        )
    }

    async def answer(call: Call) -> bytes:
        route = routes.get(call.path)
        if route is None:
            raise CallError(
                grpc.StatusCode.UNIMPLEMENTED.value[0],
                f"this server has no method {call.path}; it serves {GRPC_SERVICE}'s six RPCs",
            )
        handler, request = route
        try:
            message = request.FromString(call.message)
        except DecodeError as exc:
            raise CallError(
                grpc.StatusCode.INVALID_ARGUMENT.value[0],
                f"the request is not a valid {request.DESCRIPTOR.name} protobuf message ({len(call.message)} "
                f"bytes): {exc or 'cannot be parsed'}; expected the message of "
                "inference.GRPCInferenceService's grpc_service.proto",
            ) from None
        response = await handler(message, Context(call))
        return response.SerializeToString()  # type: ignore[no-any-return]

    return answer


async def start_grpc(
    service: ModelService,
    address: str,
    *,
    max_message_bytes: int,
    tls: TlsFiles | None = None,
    connections: ConnectionLimits | None = None,
) -> H2Server:
    """A worker's gRPC server, listening on `address` (`host:port`, its port shared by the workers
    with SO_REUSEPORT), over TLS when `tls` is given.

    Args:
        max_message_bytes: the largest request accepted (RESOURCE_EXHAUSTED above it).
        connections: the deadlines for slow clients and the connection cap (REST's defaults if None).

    Raises:
        ConfigError: the address cannot be listened on.
    """
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise ConfigError(f"the gRPC address is {address!r}; expected host:port")
    sock = sockets.bind(host.strip("[]"), int(port), reuse_port=True, flag="--grpc-port")
    server = H2Server(
        _app(service), max_message_bytes=max_message_bytes, limits=connections or ConnectionLimits()
    )
    try:
        await server.start(sock, tls)
    except BaseException:
        sock.close()
        raise
    return server
