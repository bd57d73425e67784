"""ASGI plumbing of the REST transport: request headers and bodies, responses, the lifespan, and
each error's HTTP status (from the table both sides of the wire share, `wire.HTTP_STATUSES`; never
on the exceptions)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import orjson

from shipyard.errors import (
    ContractViolationError,
    RequestTooLargeError,
    ShipyardError,
    UnsupportedMediaError,
)
from shipyard.serving.wire import HTTP_STATUSES

if TYPE_CHECKING:
    from shipyard.serving.served import ServedModel

__all__ = [
    "JSON",
    "JSON_TYPES",
    "MLFLOW_CODES",
    "ClientGoneError",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "check_type",
    "content_type",
    "error_body",
    "header",
    "lifespan",
    "read_body",
    "request_id",
    "respond",
    "respond_json",
    "routing_key",
    "status_of",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
JSON_TYPES = (b"application/json", b"application/x-www-form-urlencoded", b"*/*", b"")
"""The content types a JSON body may arrive under (curl's default and none included)."""

MLFLOW_CODES = {
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


def status_of(error: ShipyardError) -> int:
    """The HTTP status for an error (`wire.HTTP_STATUSES`)."""
    for kind, status in HTTP_STATUSES:
        if isinstance(error, kind):
            return status
    return 500


class ClientGoneError(Exception):
    """The client closed the connection before its body arrived."""


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request's body, refused once it is over `limit` bytes.

    Raises:
        RequestTooLargeError: the body (declared or as it arrives) is over `limit` bytes.
        ClientGoneError: the client left before its body arrived.
    """
    declared = header(scope, b"content-length")
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
            raise ClientGoneError
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLargeError(
                f"the request body is over {limit} bytes, the most this server takes (--max-body-bytes)"
            )
        if not message.get("more_body"):
            return chunk if not chunks else b"".join([*chunks, chunk])
        chunks.append(chunk)


def header(scope: Scope, name: bytes) -> str | None:
    """A request header's value (the first, if repeated), or None; `name` in lower case."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def content_type(scope: Scope) -> bytes:
    """The request's media type, without its parameters, in lower case (b"" when none)."""
    for key, value in scope["headers"]:
        if key == b"content-type":
            return bytes(value.split(b";", 1)[0].strip().lower())
    return b""


def check_type(scope: Scope, accepted: tuple[bytes, ...]) -> None:
    """Refuse a request whose media type is not one of `accepted`.

    Raises:
        UnsupportedMediaError: it is not.
    """
    arrived = content_type(scope)
    if arrived not in accepted:
        shown = ", ".join(a.decode() for a in accepted if a not in (b"", b"*/*"))
        raise UnsupportedMediaError(
            f"the request's Content-Type is {arrived.decode('latin-1')!r}; this endpoint reads {shown}"
        )


def routing_key(served: ServedModel, scope: Scope, columns: Any) -> str | None:
    """The key that keeps an HTTP caller on one arm of a deployment, from its key header or a
    feature (None for a plain model)."""
    if served.router is None:
        return None
    key_header = header(scope, served.key_header) if served.key_header is not None else None
    return served.routing_key(key_header, columns)


def request_id(scope: Scope) -> str | None:
    """The caller's `X-Request-Id`, when it is printable, at most 128 characters and free of '/'
    (so that it can name a path: `GET .../explanations/{request_id}`)."""
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            text = value.decode("latin-1")
            if 0 < len(text) <= 128 and text.isprintable() and "/" not in text:
                return str(text)
    return None


async def respond(
    send: Send,
    status: int,
    body: bytes,
    media_type: bytes,
    *,
    request_id: str | None = None,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> int:
    """Send a whole response; returns its status."""
    headers = [(b"content-type", media_type), (b"content-length", str(len(body)).encode())]
    if request_id is not None:
        headers.append((b"x-request-id", request_id.encode()))
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return status


def error_body(exc: ShipyardError, request_id: str | None) -> dict[str, Any]:
    """Our API's error body: the error's type name, its message, the request id and, for a
    contract violation, every violation."""
    error: dict[str, Any] = {"type": type(exc).type_name(), "message": str(exc), "request_id": request_id}
    if isinstance(exc, ContractViolationError):
        error["violations"] = [v.to_dict() for v in exc.violations]
    return {"error": error}


async def respond_json(send: Send, status: int, payload: Any, request_id: str | None = None) -> int:
    """Send `payload` as JSON; returns the status."""
    return await respond(send, status, orjson.dumps(payload), JSON, request_id=request_id)


async def lifespan(receive: Receive, send: Send) -> None:
    """Answer the ASGI lifespan messages (the app has nothing to start or stop)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
