"""A minimal HTTP/2 server for gRPC's unary calls, on an asyncio Protocol in the worker's loop.

grpcio's servers cost about 155 us of CPU per call and hand calls to the loop one per turn, so the
adaptive batcher never saw a queue. Here every call that arrives in one read is decoded and started
in the same turn, so their model calls merge as REST's do. Only what unary gRPC needs is spoken
(RFC 9113, gRPC over HTTP/2): one length-prefixed message in, one out, then the status in trailers.
Header blocks are decoded by `hpack`; answers use fixed blocks (`h2_frames.py`); each connection
is an `h2_connection.Connection`.

Flow control: the peer may send each stream a whole message of the largest size; the connection's
window is granted back as data arrives, but never beyond `2 x` that size held in requests not yet
complete, which bounds what one connection buffers. Answers never exceed the peer's windows: what
does not fit waits for its WINDOW_UPDATE. Slow clients are bounded as REST's are (`connections.py`):
the preface and each header block must arrive within `header_timeout`, each request's message
within `body_timeout` plus a second per `body_min_rate` bytes, a connection with no call in flight
is closed after `IDLE_SECONDS`, and a worker holds at most `cap()` connections (a new one beyond
closes the longest-idle one, or is refused with GOAWAY when none is idle).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from shipyard.serving import h2_frames as f
from shipyard.serving.connections import ConnectionLimits
from shipyard.serving.h2_calls import App
from shipyard.serving.h2_connection import MAX_HEADER_LIST, MAX_STREAMS, Connection
from shipyard.serving.tls import TlsFiles

__all__ = ["H2Server"]

log = logging.getLogger("shipyard.serve")

_SWEEP_SECONDS = 1.0  # how often deadlines are checked
_REFUSAL_LOG_EVERY = 60.0  # seconds between two warnings of a worker that refuses connections


class H2Server:
    """The gRPC port of one worker: its listening socket, connections, and calls in flight.

    Args:
        app: answers each call.
        max_message_bytes: the largest request (RESOURCE_EXHAUSTED above it) and answer.
        limits: deadlines for slow clients and the connection cap, as REST's.
    """

    def __init__(self, app: App, *, max_message_bytes: int, limits: ConnectionLimits) -> None:
        self.app = app
        self.max_message = max_message_bytes
        self.limits = limits
        self.cap = limits.cap()
        # What one connection may hold of requests not yet complete, and send ahead of our reading.
        self.budget = min(f.MAX_WINDOW, max(2 * (max_message_bytes + 5), 1 << 20))
        # A stream's window takes its whole message (with room for padding): a unary call never waits.
        stream_window = min(f.MAX_WINDOW, max_message_bytes + 5 + f.DEFAULT_FRAME)
        ours = f.settings(
            (
                (f.MAX_CONCURRENT_STREAMS, MAX_STREAMS),
                (f.INITIAL_WINDOW_SIZE, stream_window),
                (f.MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST),
                (f.ENABLE_PUSH, 0),
            )
        )
        self.opening = ours + f.window_update(0, self.budget - f.DEFAULT_WINDOW)
        """Our SETTINGS and the connection window's raise, sent as each connection opens."""
        self.connections: dict[Connection, None] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.listener: asyncio.AbstractServer | None = None
        self.sweeper: asyncio.TimerHandle | None = None
        self.emptied: asyncio.Future[None] | None = None
        self.warned = -_REFUSAL_LOG_EVERY

    async def start(self, sock: socket.socket, tls: TlsFiles | None) -> None:
        """Accept connections on the listening socket `sock`, over TLS (ALPN `h2`) when `tls` is given."""
        context = tls.h2() if tls is not None else None
        loop = asyncio.get_running_loop()
        self.listener = await loop.create_server(lambda: Connection(self), sock=sock, ssl=context)
        self.sweeper = loop.call_later(_SWEEP_SECONDS, self.sweep)

    async def stop(self, grace: float) -> None:
        """Stop accepting, tell every connection GOAWAY, wait up to `grace` seconds for the calls in
        flight to be answered, then close what is left."""
        if self.listener is not None:
            self.listener.close()
        if self.sweeper is not None:
            self.sweeper.cancel()
        for connection in list(self.connections):
            connection.drain()
        if self.connections:
            self.emptied = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.emptied), timeout=max(grace, 0.0))
        for connection in list(self.connections):
            connection.transport.abort()
        await asyncio.sleep(0)  # connection_lost runs

    def sweep(self) -> None:
        """Once a second: close or reset what is late, close what is long idle."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for connection in list(self.connections):
            connection.check(now)
        self.sweeper = loop.call_later(_SWEEP_SECONDS, self.sweep)

    def admit(self, connection: Connection) -> bool:
        """Count `connection` in, closing the longest-idle one for room; False when all are busy."""
        if len(self.connections) >= self.cap:
            idle = [c for c in self.connections if c.settled and not c.streams and not c.closed]
            if not idle:
                now = asyncio.get_running_loop().time()
                if now - self.warned >= _REFUSAL_LOG_EVERY:
                    self.warned = now
                    log.warning(
                        "this worker holds its limit of %d gRPC connections, all busy; new ones are "
                        "refused (raise --max-connections or add workers if the clients are genuine)",
                        self.cap,
                    )
                return False
            oldest = min(idle, key=lambda c: c.idle_since)
            oldest.shut(f.NO_ERROR, "closed to make room for a new connection")
            self.connections.pop(oldest, None)
        self.connections[connection] = None
        return True

    def leave(self, connection: Connection) -> None:
        self.connections.pop(connection, None)
        if not self.connections and self.emptied is not None and not self.emptied.done():
            self.emptied.set_result(None)
