"""The HTTP connections of a worker: deadlines for idle and slow clients, and a cap on how many it holds.

uvicorn's httptools protocol closes a keep-alive connection only once it has answered a request on
it: a connection that opens and sends nothing, or sends half its headers (slowloris), or its body a
byte at a time (slow POST), holds a descriptor for as long as the client likes, and a few hundred of
them exhaust the worker's descriptors so that good requests fail. `http_protocol` makes a subclass
of that protocol which gives every phase of a request a deadline, as nginx and Apache do:

- idle between requests: `keep_alive_timeout`, then closed quietly (uvicorn's own timer);
- a new connection, and each request's headers: `header_timeout` from the connection's opening or
  the request's first byte, then 408 and closed (closed quietly if no byte of a request came);
- a request's body: `body_timeout` from the end of its headers, plus one second for every
  `body_min_rate` bytes that arrive (so a large body at a fair rate is never cut, a trickle is),
  then 408 and closed.

It also holds at most `max_connections` connections per worker. A new connection beyond the cap
first takes the place of the worker's longest-idle connection (as nginx reuses keep-alive
connections when it runs out); when none is idle, the new connection's request is answered 503 with
`Retry-After` and the connection closed. A slot that frees up before its headers are complete admits
it after all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from shipyard.errors import ConfigError
from shipyard.serving.tls import TlsFiles

__all__ = ["ConnectionLimits", "http_protocol", "uvicorn_server"]

log = logging.getLogger("shipyard.serve")

# Descriptors a worker keeps for itself (listening sockets, gRPC, the database, logs, model files)
# when the connection cap is derived from its descriptor limit.
_RESERVED_DESCRIPTORS = 128
_DEFAULT_CAP = 1000
_RETRY_AFTER = 1  # seconds; busy connections end within the header and body deadlines
_REFUSAL_LOG_EVERY = 60.0  # seconds between two warnings of a worker that refuses connections

# The phases of a connection, as far as its deadlines go.
_WAITING = 0  # for a request's first byte, or for the app's answer to the last one
_HEADERS = 1
_BODY = 2


@dataclass(frozen=True, kw_only=True)
class ConnectionLimits:
    """How long a client may take, and how many connections one worker holds.

    Args:
        keep_alive_timeout: seconds an idle keep-alive connection is kept between requests.
        header_timeout: seconds a request's headers may take to arrive, from the connection's
            opening (its first request) or the request's first byte (the next ones); 408 after.
        body_timeout: seconds a request's body may take to arrive after its headers, before
            `body_min_rate` adds to it; 408 after.
        body_min_rate: bytes per second that earn a body one more second (0: the body gets
            `body_timeout` and no more).
        max_connections: connections one worker holds at most; beyond, the longest-idle one is
            closed or, with none idle, the request is answered 503 with `Retry-After`. None:
            1000, or fewer when the descriptor limit (`ulimit -n`) is lower.
    """

    keep_alive_timeout: float = 5.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    body_min_rate: float = 64 * 1024
    max_connections: int | None = None

    def __post_init__(self) -> None:
        for flag, value in (
            ("--keep-alive-timeout", self.keep_alive_timeout),
            ("--header-timeout", self.header_timeout),
            ("--body-timeout", self.body_timeout),
        ):
            if not value > 0:
                raise ConfigError(f"{flag} is {value}; expected seconds above 0")
        if not self.body_min_rate >= 0:
            raise ConfigError(
                f"--body-min-rate is {self.body_min_rate}; expected bytes per second, 0 or more"
            )
        if self.max_connections is not None and self.max_connections < 1:
            raise ConfigError(f"--max-connections is {self.max_connections}; expected 1 or more")

    def cap(self) -> int:
        """The most connections one worker holds: `max_connections`, or what its descriptors allow."""
        if self.max_connections is not None:
            return self.max_connections
        return min(_DEFAULT_CAP, _descriptors_for_connections())

    def descriptor_warning(self) -> str | None:
        """Why `max_connections` cannot be reached under the descriptor limit, or None when it can."""
        room = _descriptors_for_connections()
        if self.max_connections is None or self.max_connections <= room:
            return None
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        return (
            f"--max-connections is {self.max_connections}, but the descriptor limit ({soft}, "
            f"'ulimit -n') leaves each worker room for about {room} connections; beyond them new "
            "connections fail (the worker cannot accept them) instead of being answered 503: "
            "raise the limit or lower --max-connections"
        )


def _descriptors_for_connections() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _DEFAULT_CAP
    return max(soft // 2, soft - _RESERVED_DESCRIPTORS)


def http_protocol(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """A protocol class for uvicorn's `http` setting that holds one worker's connections to `limits`.

    Args:
        limits: the deadlines and the cap; the cap is counted over the connections of this class.
    """

    class Protocol(_LimitedProtocol):
        admission = _Admission(limits)

    return Protocol


def uvicorn_server(
    app: object,
    *,
    max_body_bytes: int,
    connections: ConnectionLimits,
    shutdown_grace: float,
    tls: TlsFiles | None = None,
) -> Any:
    """uvicorn's server for one worker's app, with these connection limits, and signals left to the
    worker (which must flush its log after the server stops).

    Args:
        app: the ASGI app.
        max_body_bytes: the largest request body (and so the largest incomplete event) accepted.
        connections: the connection limits and deadlines.
        shutdown_grace: seconds SIGTERM waits for accepted requests before closing what is left.
        tls: the certificate files, or None for plain HTTP.
    """
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    config = uvicorn.Config(
        app,  # type: ignore[arg-type]  # HttpApp is an ASGI 3 callable; uvicorn's alias is narrower
        http=http_protocol(connections),
        ws="none",  # the app answers HTTP only; an Upgrade header is read as plain HTTP
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
        proxy_headers=False,
        date_header=False,
        timeout_keep_alive=connections.keep_alive_timeout,  # type: ignore[arg-type]  # uvicorn passes it to call_later, which takes a float
        # SIGTERM waits this long for accepted requests, then closes what is left: a request
        # that never finished must not keep the worker alive for ever.
        timeout_graceful_shutdown=max(1, round(shutdown_grace)),
        h11_max_incomplete_event_size=max_body_bytes,
        **(tls.uvicorn() if tls is not None else {}),
    )
    return Server(config)


class _Admission:
    """The connections one worker holds (at most its cap), and which of them are idle, oldest first."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.cap = limits.cap()
        self.admitted: set[_LimitedProtocol] = set()
        self.idle: dict[_LimitedProtocol, None] = {}  # insertion order: longest idle first
        self.warned = -_REFUSAL_LOG_EVERY
        self.refusal = _response(
            503,
            {
                "error": {
                    "type": "too_many_connections",
                    "message": f"this worker holds its limit of {self.cap} connections (--max-connections), "
                    f"none of them idle; retry in {_RETRY_AFTER} s",
                }
            },
            (b"retry-after", str(_RETRY_AFTER).encode()),
        )

    def admit(self, connection: _LimitedProtocol) -> bool:
        """Count `connection` in, closing the longest-idle one to make room; False when all are busy."""
        if len(self.admitted) >= self.cap:
            if not self.idle:
                return False
            oldest = next(iter(self.idle))
            self.leave(oldest)
            oldest.transport.close()
        self.admitted.add(connection)
        return True

    def rest(self, connection: _LimitedProtocol) -> None:
        """`connection` waits for a request: the youngest idle one, last to be closed for room."""
        if connection in self.admitted:
            self.idle.pop(connection, None)
            self.idle[connection] = None

    def busy(self, connection: _LimitedProtocol) -> None:
        self.idle.pop(connection, None)

    def leave(self, connection: _LimitedProtocol) -> None:
        self.admitted.discard(connection)
        self.idle.pop(connection, None)

    async def refuse(self, scope: Any, receive: Any, send: Any) -> None:
        """The ASGI answer to a request on a connection beyond the cap: 503, `Retry-After`, closed."""
        now = asyncio.get_running_loop().time()
        if now - self.warned >= _REFUSAL_LOG_EVERY:
            self.warned = now
            log.warning(
                "this worker holds its limit of %d connections, all busy; new requests are answered 503 "
                "(raise --max-connections or add workers if the clients are genuine)",
                self.cap,
            )
        status, headers, body = self.refusal
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _response(
    status: int, payload: object, *extra: tuple[bytes, bytes]
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = orjson.dumps(payload)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *extra,
    ]
    return status, headers, body


def _raw(status: int, reason: str, payload: object) -> bytes:
    """A whole HTTP/1.1 response, written by the protocol itself (no ASGI cycle exists for it)."""
    _, headers, body = _response(status, payload)
    head = [f"HTTP/1.1 {status} {reason}".encode()] + [name + b": " + value for name, value in headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def _write_whole_responses(cycle: Any) -> None:
    """Have the request's cycle write a response sent whole (its start, then its one body) in one
    write, not two: one system call and one TCP segment instead of a head and a body apart, which
    cost the client a second read. uvicorn's own `send` still does all the work; the head it
    writes waits in a buffer for the body. The cycle's task has not started yet, so it takes the
    wrapped `send` when it calls the app."""
    cycle.send = _WholeResponses(cycle)


class _WholeResponses:
    """A cycle's `send` that holds the response's start for its body (see `_write_whole_responses`).

    It leaves the cycle once the response is complete: the cycle and its `send` refer to each
    other until then, and a loop of references left behind would wait for the garbage collector
    (with the request's scope, headers and body) instead of going with the request.
    """

    __slots__ = ("cycle", "original", "start")

    def __init__(self, cycle: Any) -> None:
        self.cycle = cycle
        self.original = cycle.send
        self.start: Any = None

    async def __call__(self, message: Any) -> None:
        cycle = self.cycle
        if message["type"] == "http.response.start" and self.start is None and not cycle.response_started:
            self.start = message
            return
        start, self.start = self.start, None
        try:
            if start is None:
                await self.original(message)
            elif message.get("type") != "http.response.body" or message.get("more_body", False):
                await self.original(start)  # a streamed answer: as uvicorn sends it
                await self.original(message)
            else:
                transport = cycle.transport
                corked = _Corked(transport)
                cycle.transport = corked
                try:
                    await self.original(start)
                    await self.original(message)
                finally:
                    cycle.transport = transport
                    corked.release()
        finally:
            if cycle.response_complete and "send" in vars(cycle):
                del cycle.send  # the loop of references ends with the response


class _Corked:
    """A transport that keeps what is written (and a close) until `release`."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.parts: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing or self.transport.is_closing()

    def release(self) -> None:
        if self.parts and not self.transport.is_closing():
            self.transport.write(b"".join(self.parts))
        if self.closing:
            self.transport.close()


class _LimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines for each phase of a request and an admission."""

    admission: _Admission  # set by `http_protocol`, one per worker's server

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = self.admission.limits
        self.header_timeout = limits.header_timeout
        self.body_timeout = limits.body_timeout
        self.body_min_rate = limits.body_min_rate
        self.timer: asyncio.TimerHandle | None = None
        self.phase = _WAITING
        self.first = True  # no request has begun yet: the header deadline runs from the opening
        self.since = 0.0  # when the current deadline started (loop time)
        self.received = 0  # body bytes of the current request
        self.admitted = False

    # -- the connection ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn narrows BaseTransport
        super().connection_made(transport)
        self.since = self.loop.time()
        self.admitted = self.admission.admit(self)
        self.admission.rest(self)
        self.timer = self.loop.call_later(self.header_timeout, self.check)

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        self.admission.leave(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Most requests arrive whole in one read and need no timer; one left half-read gets one.
        if self.timer is None and self.phase != _WAITING and not self.transport.is_closing():
            self.timer = self.loop.call_later(max(0.0, self.deadline() - self.loop.time()), self.check)

    # -- the parser's callbacks -------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.phase = _HEADERS
        if self.first:
            self.first = False
        else:
            self.since = self.loop.time()
        self.admission.busy(self)

    def on_headers_complete(self) -> None:
        if not self.admitted:
            self.admitted = self.admission.admit(self)
            if not self.admitted:
                self.app = self.admission.refuse  # uvicorn starts this request's cycle with self.app
        before = self.cycle
        super().on_headers_complete()
        if self.cycle is not None and self.cycle is not before:  # a new request's cycle
            _write_whole_responses(self.cycle)
        self.phase = _BODY
        self.since = self.loop.time()
        self.received = 0

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self.received += len(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.phase = _WAITING
        self.disarm()
        if self.cycle.response_complete:  # answered before its body had arrived (a 413, say)
            self.admission.rest(self)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.phase == _WAITING and self.cycle.response_complete and not self.transport.is_closing():
            self.admission.rest(self)

    # -- the deadlines ----------------------------------------------------------------------------
    def deadline(self) -> float:
        if self.phase == _BODY:
            earned = self.received / self.body_min_rate if self.body_min_rate > 0 else 0.0
            return self.since + self.body_timeout + earned
        return self.since + self.header_timeout

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def check(self) -> None:
        """The timer's callback: close a connection past its deadline, or wait on."""
        self.timer = None
        if self.transport.is_closing() or (self.phase == _WAITING and not self.first):
            return  # closed, or answering (the app's time) or idle (uvicorn's keep-alive timer)
        now = self.loop.time()
        deadline = self.deadline()
        if now < deadline:
            self.timer = self.loop.call_later(deadline - now, self.check)
            return
        answering = self.phase == _HEADERS and self.cycle is not None and not self.cycle.response_complete
        if answering or self.flow.read_paused:
            # The server is still answering a pipelined request, or not reading what the client
            # sent: the client is not the one being slow. Look again later.
            self.timer = self.loop.call_later(self.header_timeout, self.check)
            return
        if self.phase == _WAITING:  # opened and sent nothing
            self.transport.close()
            return
        if self.phase == _BODY and self.cycle.response_started:
            self.transport.close()  # the app already answered; the rest of the body is not wanted
            return
        payload = {"error": {"type": "request_timeout", "message": self.late()}}
        self.transport.write(_raw(408, "Request Timeout", payload))
        self.transport.close()

    def late(self) -> str:
        """What arrived too late, and the setting that said so."""
        if self.phase == _HEADERS:
            return (
                f"the request's headers did not arrive within {self.header_timeout:g} s "
                "(--header-timeout); the connection is closed"
            )
        rate = ""
        if self.body_min_rate > 0:
            rate = f", plus 1 s per {self.body_min_rate:g} bytes received (--body-min-rate),"
        return (
            f"the request's body did not arrive in time: {self.received} bytes in "
            f"{self.loop.time() - self.since:.1f} s, where {self.body_timeout:g} s (--body-timeout)"
            f"{rate} are allowed; the connection is closed"
        )
