"""The gRPC side of the HTTP/2 server (`h2_server.py`): what a request's headers say, the call the
application answers, how it fails, and the state of one stream."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import NamedTuple

__all__ = ["App", "Call", "CallError", "Head", "Stream", "read_head"]

# gRPC status codes the transport itself answers with.
CANCELLED, INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNIMPLEMENTED, INTERNAL = 1, 3, 8, 12, 13


class Head(NamedTuple):
    """What a request's header block says, as far as a gRPC call goes.

    `malformed`: why the request is not valid HTTP/2 (the stream is reset with PROTOCOL_ERROR).
    `refusal`: the HTTP status of a valid request that is not a gRPC call (405, 415).
    """

    path: str
    metadata: tuple[tuple[str, str | bytes], ...]
    malformed: str | None = None
    refusal: int | None = None


_GRPC_TYPES = (b"application/grpc", b"application/grpc+proto")
# Headers of the transport, not metadata.
_TRANSPORT = frozenset((b"content-type", b"te", b"grpc-timeout", b"grpc-encoding", b"grpc-accept-encoding"))
_CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)


def read_head(fields: Iterable[tuple[bytes, bytes]]) -> Head:
    """A request's pseudo-headers checked (RFC 9113 section 8.3) and its metadata gathered."""
    method = path = content_type = None
    metadata: list[tuple[str, str | bytes]] = []
    regular = False
    for name, value in fields:
        if name[:1] == b":":
            if regular:
                return Head("", (), malformed=f"pseudo-header {name!r} after a regular header")
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name not in (b":scheme", b":authority"):
                return Head("", (), malformed=f"unknown pseudo-header {name!r}")
            continue
        regular = True
        if name != name.lower() or name in _CONNECTION_SPECIFIC:
            return Head("", (), malformed=f"header {name!r} is not allowed in HTTP/2")
        if name == b"te" and value != b"trailers":
            return Head("", (), malformed=f"header te is {value!r}; only 'trailers' is allowed")
        if name == b"content-type":
            content_type = value
        if name in _TRANSPORT:
            continue
        key = name.decode("latin-1")
        if key.endswith("-bin"):
            try:
                metadata.append((key, base64.b64decode(value + b"=" * (-len(value) % 4))))
            except binascii.Error:
                return Head("", (), malformed=f"metadata {key} is not base64")
        else:
            metadata.append((key, value.decode("latin-1")))
    if method is None or path is None:
        return Head("", (), malformed="a request needs :method and :path")
    head = Head(path.decode("latin-1"), tuple(metadata))
    if method != b"POST":
        return head._replace(refusal=405)
    if content_type is None or content_type.split(b";")[0].strip() not in _GRPC_TYPES:
        return head._replace(refusal=415)
    return head


class CallError(Exception):
    """A call's failure: its gRPC status code, message and trailing metadata."""

    def __init__(self, code: int, message: str, trailing: Sequence[tuple[str, str | bytes]] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.trailing = trailing


class Call:
    """One unary call as the application sees it: the method's path, the metadata (`-bin` values
    as bytes), the request message, and the caller's address."""

    __slots__ = ("message", "metadata", "path", "peer")

    def __init__(self, head: Head, message: bytes, peer: str | None) -> None:
        self.path: str = head.path
        self.metadata: tuple[tuple[str, str | bytes], ...] = head.metadata
        self.message: bytes = message
        self.peer: str | None = peer


App = Callable[[Call], Awaitable[bytes]]
"""What answers a call: the serialized response, or `CallError` raised."""


class Stream:
    """One call's stream: its head, its message as it arrives, and its answer while that waits for
    the peer's window."""

    __slots__ = (
        "body",
        "complete",
        "expected",
        "head",
        "id",
        "pending",
        "received",
        "started",
        "trailers",
        "window",
    )

    def __init__(self, stream_id: int, head: Head, window: int, now: float) -> None:
        self.id = stream_id
        self.head = head
        self.body: bytes | bytearray = b""
        self.received = 0  # body bytes held (counted in the connection's buffered bytes)
        self.expected = -1  # where the message ends, once its prefix has arrived
        self.complete = False  # the request has ended (END_STREAM)
        self.started = now  # when the request began, or its waiting answer last moved
        self.window = window  # what the peer lets us send on this stream
        self.pending: memoryview | None = None  # answer bytes waiting for window
        self.trailers = b""
