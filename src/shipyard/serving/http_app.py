"""The REST transport: one ASGI app for our API, MLflow's `/invocations`, the OIP v2 and operations.

The app is plain ASGI on purpose: a handful of fixed routes, matched by splitting the path, cost
a few microseconds where a general router costs tens, and on the serving hot path that is the
difference the benchmark measures. It only decodes and encodes; `ModelService` does the rest.
Status codes live in the table below, never on the exceptions.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from importlib.metadata import version as package_version
from typing import Any

import orjson

from shipyard.core.echo import echo
from shipyard.errors import (
    AuthenticationError,
    ContractViolationError,
    FeedbackError,
    InputError,
    NotReadyError,
    PermissionDeniedError,
    PredictionError,
    RateLimitedError,
    RequestTooLargeError,
    SecurityError,
    ShipyardError,
    UnknownModelError,
    UnsupportedMediaError,
)
from shipyard.monitoring.feedback import parse_feedback, refusal, server_check
from shipyard.security.access import Action, Principal
from shipyard.security.guard import ANONYMOUS, credential
from shipyard.serving import oip
from shipyard.serving.auth import admit, http_action
from shipyard.serving.openapi import docs_page, openapi_document
from shipyard.serving.payloads import (
    decode_mlflow,
    decode_mlflow_csv,
    decode_ours,
    encode_mlflow,
    encode_ours,
    parse_json,
)
from shipyard.serving.served import ServedModel
from shipyard.serving.service import ModelService

__all__ = ["HttpApp", "status_of"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# The one table from errors to HTTP statuses; the first matching class wins.
_STATUS: tuple[tuple[type[ShipyardError], int], ...] = (
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (RateLimitedError, 429),
    (ContractViolationError, 422),
    (InputError, 400),
    (FeedbackError, 400),
    (RequestTooLargeError, 413),
    (UnsupportedMediaError, 415),
    (UnknownModelError, 404),
    (NotReadyError, 503),
    (PredictionError, 500),
)
_MLFLOW_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    429: "REQUEST_LIMIT_EXCEEDED",
    404: "RESOURCE_DOES_NOT_EXIST",
    413: "BAD_REQUEST",
    415: "BAD_REQUEST",
    422: "INVALID_PARAMETER_VALUE",
    503: "TEMPORARILY_UNAVAILABLE",
    500: "INTERNAL_ERROR",
}
_JSON = b"application/json"
_VERSION = b"x-shipyard-version"  # the version that answered, on every prediction
_JSON_TYPES = (b"application/json", b"application/x-www-form-urlencoded", b"*/*", b"")
_GET_METHODS = ("GET", "HEAD")
_POST_METHODS = ("POST",)
_GET_ROUTES = frozenset({"healthz", "readyz", "ping", "health", "metrics", "openapi.json", "docs", "version"})


def status_of(error: ShipyardError) -> int:
    """The HTTP status for an error."""
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


class _ClientGoneError(Exception):
    """The client closed the connection before its body arrived."""


class _NoRouteError(Exception):
    """No route answers to the path (or not to its method: `__call__` tells which, by `_allowed`)."""


class HttpApp:
    """The ASGI application of one worker.

    Args:
        service: the data plane.
    """

    def __init__(self, service: ModelService) -> None:
        self.service = service
        self.metrics = service.metrics
        self.alive = True
        self.version = package_version("shipyard")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            return
        arrived = time.perf_counter()
        self.metrics.inflight += 1
        protocol, model, version = "http", "", ""
        try:
            path: str = scope["path"]
            method: str = scope["method"]
            parts = path.strip("/").split("/")
            refused = await self._refused(scope, send, method, parts)
            if refused is not None:
                status = refused
            elif method == "POST":
                if parts[0] == "v1" and len(parts) == 4 and parts[1] == "models" and parts[3] == "predict":
                    protocol, model = "rest", parts[2]
                    status, version = await self._ours(scope, receive, send, parts[2], arrived)
                elif parts == ["v1", "feedback"]:
                    protocol = "ops"
                    status = await self._feedback(scope, receive, send)
                elif parts == ["invocations"]:
                    protocol = "mlflow"
                    status, model, version = await self._mlflow(scope, receive, send, arrived)
                elif (
                    parts[0] == "v2"
                    and len(parts) in (4, 6)
                    and parts[1] == "models"
                    and parts[-1] == "infer"
                ):
                    protocol, model = "oip-rest", parts[2]
                    wanted = parts[4] if len(parts) == 6 and parts[3] == "versions" else None
                    if len(parts) == 6 and parts[3] != "versions":
                        raise _NoRouteError
                    status, version = await self._oip_infer(
                        scope, receive, send, name=parts[2], wanted=wanted, arrived=arrived
                    )
                else:
                    raise _NoRouteError
            elif method in _GET_METHODS:
                protocol = "ops"
                status = await self._get(scope, parts, send)
            else:
                raise _NoRouteError
        except _ClientGoneError:
            status = 499
        except _NoRouteError:
            status = await _no_route(send, scope["method"], scope["path"])
        finally:
            self.metrics.inflight -= 1
        if protocol != "ops":
            metrics = self.metrics
            metrics.inc("shipyard_requests", (model, version, protocol, str(status)))
            metrics.observe(
                "shipyard_request_duration_seconds", (model, protocol), time.perf_counter() - arrived
            )

    async def _refused(self, scope: Scope, send: Send, method: str, parts: list[str]) -> int | None:
        """Ask the guard about the request: None when it may go on, else the status sent."""
        if not self.service.guard.active:  # no auth, no rate limit: nothing to look at on the hot path
            return None
        models = self.service.models
        single = next(iter(models)) if len(models) == 1 else None
        action, target = http_action(method, parts, single)
        if action is None:
            return None
        token = credential(_header(scope, b"authorization"), _header(scope, b"x-api-key"))
        try:
            client = scope.get("client")
            scope["shipyard.principal"] = await admit(
                self.service, token, action, target, client=client[0] if client else None
            )
        except SecurityError as exc:
            status = status_of(exc)
            extra = []
            if isinstance(exc, AuthenticationError):
                extra.append((b"www-authenticate", b'Bearer realm="shipyard"'))
            if isinstance(exc, RateLimitedError):
                extra.append((b"retry-after", str(max(1, math.ceil(exc.retry_after))).encode()))
            error = {"type": _error_type(exc), "message": str(exc)}
            body = {"error": error, "error_code": _MLFLOW_CODES[status], "message": str(exc)}
            return await _send(send, status, orjson.dumps(body), _JSON, extra=extra)
        return None

    # -- our API ----------------------------------------------------------------------------------
    async def _ours(
        self, scope: Scope, receive: Receive, send: Send, name: str, arrived: float
    ) -> tuple[int, str]:
        request_id = _request_id(scope) or self.service.new_request_id()
        version = ""
        try:
            served = self.service.route(name)
            version = str(served.version.version)
            body = await self._json_body(scope, receive, _JSON_TYPES)
            columns, n = decode_ours(body, served.loaded.contract)
            answer = await self.service.predict(
                served,
                columns,
                n,
                protocol="rest",
                request_id=request_id,
                arrived=arrived,
                key=_routing_key(served, scope, columns),
            )
        except ShipyardError as exc:
            status = status_of(exc)
            error: dict[str, Any] = {"type": _error_type(exc), "message": str(exc), "request_id": request_id}
            if isinstance(exc, ContractViolationError):
                error["violations"] = [v.to_dict() for v in exc.violations]
            await _json(send, status, {"error": error}, request_id)
            return status, version
        answered = str(answer.version.version)
        body = orjson.dumps(encode_ours(answer, name))
        await _send(send, 200, body, _JSON, request_id=request_id, extra=[(_VERSION, answered.encode())])
        return 200, answered

    # -- labels that arrive later ------------------------------------------------------------------
    async def _feedback(self, scope: Scope, receive: Receive, send: Send) -> int:
        store = self.service.feedback
        try:
            if store is None:
                raise FeedbackError("this server takes no feedback (it was started without a metadata store)")
            labels = parse_feedback(await self._json_body(scope, receive, _JSON_TYPES))
            loop = asyncio.get_running_loop()
            check = server_check(store.meta, self.service.events)
            good, refused = await loop.run_in_executor(None, check.check, labels)
            if any(r.kind == "unknown_request" for r in refused):
                await asyncio.sleep(check.settle_seconds)  # the other workers' unwritten requests
                good, refused = await loop.run_in_executor(None, check.check, labels)
            if refused:
                raise refusal(refused, total=len(labels), source="the body")
            stored = await loop.run_in_executor(
                None,
                functools.partial(store.add, good, source="api", actor=_actor(scope)),
            )
        except ShipyardError as exc:
            status = status_of(exc)
            error: dict[str, Any] = {"type": _error_type(exc), "message": str(exc)}
            if isinstance(exc, FeedbackError) and exc.refused:
                error["refused"] = list(exc.refused)
            await _json(send, status, {"error": error})
            return status
        return await _json(send, 202, {"accepted": stored})

    # -- MLflow -----------------------------------------------------------------------------------
    async def _mlflow(
        self, scope: Scope, receive: Receive, send: Send, arrived: float
    ) -> tuple[int, str, str]:
        request_id = _request_id(scope) or self.service.new_request_id()
        name, version = "", ""
        try:
            if len(self.service.models) != 1:
                raise UnknownModelError(
                    "/invocations answers for a single model, and this server serves "
                    f"{len(self.service.models)}"
                )
            served = next(iter(self.service.models.values()))
            name = served.name
            served = self.service.route(name)
            version = str(served.version.version)
            content_type = _content_type(scope)
            if content_type == b"text/csv":
                columns, n = decode_mlflow_csv(await self._body(scope, receive))
            else:
                body = await self._json_body(scope, receive, (*_JSON_TYPES, b"text/csv"))
                columns, n = decode_mlflow(body, served.loaded.contract)
            answer = await self.service.predict(
                served,
                columns,
                n,
                protocol="mlflow",
                request_id=request_id,
                arrived=arrived,
                key=_routing_key(served, scope, columns),
            )
        except ShipyardError as exc:
            status = status_of(exc)
            payload = {"error_code": _MLFLOW_CODES.get(status, "INTERNAL_ERROR"), "message": str(exc)}
            await _json(send, status, payload, request_id)
            return status, name, version
        answered = str(answer.version.version)
        body = orjson.dumps(encode_mlflow(answer))
        await _send(send, 200, body, _JSON, request_id=request_id, extra=[(_VERSION, answered.encode())])
        return 200, name, answered

    # -- OIP v2 -----------------------------------------------------------------------------------
    async def _oip_infer(
        self, scope: Scope, receive: Receive, send: Send, *, name: str, wanted: str | None, arrived: float
    ) -> tuple[int, str]:
        version = ""
        try:
            served = self.service.route(name, wanted)
            version = str(served.version.version)
            header_length = _header(scope, b"inference-header-content-length")
            if header_length is None:
                _check_type(scope, (*_JSON_TYPES, b"application/octet-stream"))
            body = await self._body(scope, receive)
            try:
                length = None if header_length is None else int(header_length)
            except ValueError:
                raise InputError(
                    f"Inference-Header-Content-Length is {header_length!r}; expected a number"
                ) from None
            request = oip.decode_rest(body, length, served.loaded.contract)
            request_id = request.id or _request_id(scope) or self.service.new_request_id()
            answer = await self.service.predict(
                served,
                request.columns,
                request.n_rows,
                protocol="oip-rest",
                request_id=request_id,
                arrived=arrived,
                key=_routing_key(served, scope, request.columns),
                version=wanted,
            )
            payload, head = oip.encode_rest(
                answer.predictions,
                model=name,
                version=answer.version.version,
                request_id=request_id,
                wanted=request.outputs,
                binary=request.binary_outputs,
            )
        except ShipyardError as exc:
            status = status_of(exc)
            await _json(send, status, {"error": str(exc)})
            return status, version
        extra = [(_VERSION, str(answer.version.version).encode())]
        if head is not None:
            extra.append((b"inference-header-content-length", str(head).encode()))
        content = _JSON if head is None else b"application/octet-stream"
        await _send(send, 200, payload, content, request_id=answer.request_id, extra=extra)
        return 200, str(answer.version.version)

    # -- GET routes -------------------------------------------------------------------------------
    async def _get(self, scope: Scope, parts: list[str], send: Send) -> int:
        service = self.service
        head = parts[0]
        if head == "healthz" and len(parts) == 1:
            return await _json(send, 200, {"status": "alive"})
        if head in ("readyz", "ping", "health") and len(parts) == 1:
            ready = service.ready
            status: dict[str, Any] = {"status": "ready" if ready else "loading"}
            reader = await self._reader(scope)
            if reader is not None:  # what is served is for callers who may read it
                status["models"] = {
                    m.name: m.version.version for m in service.models.values() if reader.sees(m.ref.name)
                }
            return await _json(send, 200 if ready else 503, status)
        if head == "metrics" and len(parts) == 1:
            body = self.metrics.render()
            return await _send(send, 200, body, b"text/plain; version=0.0.4; charset=utf-8")
        if head == "openapi.json" and len(parts) == 1:
            return await _send(send, 200, orjson.dumps(openapi_document(service)), _JSON)
        if head == "docs" and len(parts) == 1:
            return await _send(send, 200, docs_page(service).encode(), b"text/html; charset=utf-8")
        if head == "version" and len(parts) == 1:
            return await _json(send, 200, {"shipyard": self.version})
        if head == "v1" and len(parts) >= 2 and parts[1] == "models":
            if len(parts) == 2:  # a principal scoped to some models is shown only those
                who: Principal | None = scope.get("shipyard.principal")
                shown = [m for m in service.models.values() if who is None or who.sees(m.ref.name)]
                return await _json(send, 200, {"models": [_describe(m) for m in shown]})
            if len(parts) == 4 and parts[3] == "drift":
                return await self._drift(parts[2], send)
            if len(parts) == 3:
                try:
                    served = service.find(parts[2])
                except ShipyardError as exc:
                    return await _json(
                        send, status_of(exc), {"error": {"type": _error_type(exc), "message": str(exc)}}
                    )
                return await _json(send, 200, _describe(served))
        if head == "v2":
            return await self._oip_get(parts, send)
        raise _NoRouteError

    async def _reader(self, scope: Scope) -> Principal | None:
        """Who may see what is served, on an open route: anyone when authentication is off, else
        the caller's principal if its credential verifies (None: show only the status)."""
        guard = self.service.guard
        if not guard.required:
            return ANONYMOUS
        token = credential(_header(scope, b"authorization"), _header(scope, b"x-api-key"))
        if token is None:  # a probe without credentials: no lookup, no audit record
            return None
        client = scope.get("client")
        try:
            return await admit(self.service, token, Action.READ, None, client=client[0] if client else None)
        except SecurityError:
            return None

    async def _drift(self, name: str, send: Send) -> int:
        service = self.service
        try:
            served = service.find(name)
        except ShipyardError as exc:
            return await _json(
                send, status_of(exc), {"error": {"type": _error_type(exc), "message": str(exc)}}
            )
        live = service.live
        version = served.version
        if live is None or version.profile is None:
            why = (
                "live profiles are off (--no-profile)"
                if live is None
                else f"{version.ref} has no reference profile"
            )
            return await _json(send, 404, {"error": {"type": "NOT_FOUND", "message": why}})
        minutes = service.limits.drift_minutes
        loop = asyncio.get_running_loop()
        report = await loop.run_in_executor(None, live.drift, name, version.version, minutes)
        body = {
            "model": name,
            "version": version.version,
            "window_minutes": minutes,
            "drift": report.to_dict() if report is not None else None,
        }
        return await _json(send, 200, body)

    async def _oip_get(self, parts: list[str], send: Send) -> int:
        service = self.service
        if len(parts) == 1:
            return await _json(
                send, 200, {"name": "shipyard", "version": self.version, "extensions": ["binary_tensor_data"]}
            )
        if parts[1] == "health" and len(parts) == 3 and parts[2] in ("live", "ready"):
            ok = self.alive if parts[2] == "live" else service.ready
            return await _json(send, 200 if ok else 503, {parts[2]: ok})
        if parts[1] == "models" and len(parts) >= 3:
            name, rest = parts[2], parts[3:]
            wanted = None
            if len(rest) >= 2 and rest[0] == "versions":
                wanted, rest = rest[1], rest[2:]
            if rest in ([], ["ready"]):
                try:
                    served = service.find(name, wanted) if rest == ["ready"] else service.route(name, wanted)
                except ShipyardError as exc:
                    return await _json(send, status_of(exc), {"error": str(exc)})
                if rest == ["ready"]:
                    return await _json(
                        send, 200 if served.ready else 503, {"name": name, "ready": served.ready}
                    )
                version = served.version
                return await _json(
                    send, 200, oip.model_metadata(version.contract, name, version.version, version.flavor)
                )
        raise _NoRouteError

    # -- bodies -----------------------------------------------------------------------------------
    async def _json_body(self, scope: Scope, receive: Receive, accepted: tuple[bytes, ...]) -> Any:
        _check_type(scope, accepted)
        return parse_json(await self._body(scope, receive))

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.service.limits.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestTooLargeError(
                f"the request body has {int(declared)} bytes; this server takes at most {limit} "
                "(--max-body-bytes)"
            )
        # A chunked body has no length to check first: count what arrives, the first message
        # included (the server may have buffered the whole body into it).
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGoneError
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestTooLargeError(
                    f"the request body is over {limit} bytes, the most this server takes (--max-body-bytes)"
                )
            if not message.get("more_body"):
                return chunk if not chunks else b"".join([*chunks, chunk])
            chunks.append(chunk)


def _allowed(parts: list[str]) -> tuple[str, ...]:
    """The methods a path answers to; () when no route has that path."""
    n, head = len(parts), parts[0]
    if n == 1 and head in _GET_ROUTES:
        return _GET_METHODS
    if parts in (["invocations"], ["v1", "feedback"]):
        return _POST_METHODS
    if head == "v1" and n >= 2 and parts[1] == "models":
        if n in (2, 3) or (n == 4 and parts[3] == "drift"):
            return _GET_METHODS
        if n == 4 and parts[3] == "predict":
            return _POST_METHODS
    if head == "v2":
        if n == 1 or (n == 3 and parts[1] == "health" and parts[2] in ("live", "ready")):
            return _GET_METHODS
        if n >= 3 and parts[1] == "models":
            rest = parts[3:]
            if len(rest) >= 2 and rest[0] == "versions":
                rest = rest[2:]
            if rest in ([], ["ready"]):
                return _GET_METHODS
            if rest == ["infer"]:
                return _POST_METHODS
    return ()


async def _no_route(send: Send, method: str, path: str) -> int:
    """404 for a path no route has; 405 with `Allow` for a method the path's route does not take."""
    allowed = _allowed(path.strip("/").split("/"))
    if not allowed:
        message = f"no route {echo(path)}; see /docs for the routes"
        return await _json(send, 404, {"error": message})
    listed = ", ".join(allowed)
    message = f"method {echo(method)} is not allowed on {echo(path)}; use {listed} (see /docs)"
    body = orjson.dumps({"error": message})
    return await _send(send, 405, body, _JSON, extra=[(b"allow", listed.encode())])


def _describe(served: ServedModel) -> dict[str, Any]:
    version = served.version
    return {
        "name": served.name,
        "serving": str(served.ref),
        "version": version.version,
        "flavor": version.flavor,
        "ready": served.ready,
        "contract": version.contract.to_dict(),
    }


def _routing_key(served: ServedModel, scope: Scope, columns: Any) -> str | None:
    """The key that keeps a caller on one arm of a deployment (None for a plain model)."""
    if served.router is None:
        return None
    header = _header(scope, served.key_header) if served.key_header is not None else None
    return served.routing_key(header, columns)


def _error_type(exc: ShipyardError) -> str:
    name = type(exc).__name__.removesuffix("Error")
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _content_type(scope: Scope) -> bytes:
    for key, value in scope["headers"]:
        if key == b"content-type":
            return bytes(value.split(b";", 1)[0].strip().lower())
    return b""


def _actor(scope: Scope) -> str:
    """Who sent a request, for the record: its principal's name when authentication is on (a
    header anyone can set is only the fallback of an open server)."""
    who: Principal | None = scope.get("shipyard.principal")
    if who is not None and who.via != "none":
        return who.name
    return _header(scope, b"user-agent") or "api"


def _check_type(scope: Scope, accepted: tuple[bytes, ...]) -> None:
    content_type = _content_type(scope)
    if content_type not in accepted:
        shown = ", ".join(a.decode() for a in accepted if a not in (b"", b"*/*"))
        raise UnsupportedMediaError(
            f"the request's Content-Type is {content_type.decode('latin-1')!r}; this endpoint reads {shown}"
        )


def _request_id(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            text = value.decode("latin-1")
            if 0 < len(text) <= 128 and text.isprintable():
                return str(text)
    return None


async def _send(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    *,
    request_id: str | None = None,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> int:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if request_id is not None:
        headers.append((b"x-request-id", request_id.encode()))
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return status


async def _json(send: Send, status: int, payload: Any, request_id: str | None = None) -> int:
    return await _send(send, status, orjson.dumps(payload), _JSON, request_id=request_id)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
