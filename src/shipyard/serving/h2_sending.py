"""The answers' side of an HTTP/2 connection (`h2_connection.py`): writes gathered into one per
turn of the loop, answers framed, and DATA held to the peer's windows."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

from shipyard.serving import h2_frames as f
from shipyard.serving.h2_calls import RESOURCE_EXHAUSTED, Stream

if TYPE_CHECKING:
    from shipyard.serving.h2_server import H2Server

__all__ = ["Sender"]

log = logging.getLogger("shipyard.serve")

_WORD = struct.Struct(">I")


class Sender:
    """What a connection sends, and the state that sending needs (`Connection` sets it)."""

    server: H2Server
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    peer: str | None
    streams: dict[int, Stream]
    blocked: dict[int, Stream]  # streams whose answer waits for window, oldest first
    out: list[bytes]
    flushing: bool
    closed: bool
    going: bool  # GOAWAY sent or received: no new calls
    last_stream: int
    send_window: int  # the peer's connection window for our DATA
    peer_frame: int
    buffered: int  # body bytes held in requests not yet complete
    recv_window: int  # our connection window, as the peer sees it
    idle_since: float

    def write(self, data: bytes) -> None:
        """Queue `data`; everything queued in one turn of the loop goes out in one write."""
        self.out.append(data)
        if not self.flushing:
            self.flushing = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flushing = False
        if self.out and not self.closed:
            self.transport.write(b"".join(self.out))
        self.out.clear()

    def shut(self, code: int, why: str) -> None:
        """Tell the peer GOAWAY with `code` and close the connection."""
        if self.closed:
            return
        if code != f.NO_ERROR:
            log.debug("closing gRPC connection from %s: %s", self.peer, why)
        self.out.append(f.goaway(self.last_stream, code, why.encode()[:256]))
        self.flush()
        self.closed = True
        self.transport.close()

    def drain(self) -> None:
        """Server shutdown: GOAWAY, then close once the calls in flight are answered."""
        if self.closed:
            return
        if not self.going:
            self.going = True
            self.write(f.goaway(self.last_stream, f.NO_ERROR))
        if not self.streams:
            self.flush()
            self.closed = True
            self.transport.close()

    def succeed(self, stream: Stream, message: bytes) -> None:
        if self.streams.get(stream.id) is not stream:
            return  # reset by the client, or the connection is gone
        if len(message) > self.server.max_message:
            self.fail(
                stream,
                RESOURCE_EXHAUSTED,
                f"the answer is {len(message)} bytes; at most {self.server.max_message} may be sent",
            )
            return
        prefix = b"\x00" + _WORD.pack(len(message))  # not compressed, then the length
        size = len(message) + 5
        sid = stream.id
        head = f.frame(f.HEADERS, f.END_HEADERS, sid, f.ANSWER_HEADERS)
        if size <= self.send_window and size <= stream.window and size <= self.peer_frame:
            self.send_window -= size
            ok = f.frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, sid, f.OK_TRAILERS)
            self.write(b"".join((head, f.frame_head(f.DATA, 0, sid, size), prefix, message, ok)))
            self.forget(stream)
            return
        self.write(head)
        stream.pending = memoryview(prefix + message)
        stream.trailers = f.OK_TRAILERS
        stream.started = self.loop.time()  # from now, when the answer last moved
        self.blocked[sid] = stream
        self.unblock()

    def fail(
        self, stream: Stream, code: int, message: str, trailing: Sequence[tuple[str, str | bytes]] = ()
    ) -> None:
        """Answer with a trailers-only response: the status, its message, the trailing metadata."""
        if self.streams.get(stream.id) is not stream:
            return
        block = f.trailers_block(code, message, trailing, alone=True)
        self.write(f.header_frames(stream.id, block, end_stream=True, max_frame=self.peer_frame))
        self.forget(stream)

    def refuse(self, stream: Stream, status: int) -> None:
        """Answer a request that is not a gRPC call with its HTTP status."""
        self.write(f.frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, stream.id, f.answer_block(status)))
        self.forget(stream)

    def unblock(self) -> None:
        """Send what the windows now allow of the answers waiting for them, oldest first."""
        for stream in list(self.blocked.values()):
            if self.send_window <= 0:
                return
            pending = stream.pending
            assert pending is not None
            n = min(len(pending), self.send_window, stream.window)
            if n > 0:
                self.write(f.data_frames(stream.id, pending[:n], self.peer_frame))
                self.send_window -= n
                stream.window -= n
                stream.pending = pending = pending[n:]
                stream.started = self.loop.time()
            if not pending:
                trailers = f.header_frames(
                    stream.id, stream.trailers, end_stream=True, max_frame=self.peer_frame
                )
                self.write(trailers)
                self.forget(stream)

    def forget(self, stream: Stream, *, reset: bool = True) -> None:
        """The stream is closed: release what it held, and reset it (`reset`) if its request has
        not ended (RFC 9113 section 8.1: an answer may come before the whole request)."""
        del self.streams[stream.id]
        self.blocked.pop(stream.id, None)
        if not stream.complete:
            stream.complete = True
            self.buffered -= stream.received
            if reset:
                self.write(f.rst_stream(stream.id, f.NO_ERROR))
            self.grant()
        if not self.streams:
            self.idle_since = self.loop.time()
            if self.going:
                self.drain()

    def grant(self) -> None:
        """Give back the connection's window for the data read, keeping what incomplete requests
        hold and what the peer may still send within the budget."""
        budget = self.server.budget
        increment = budget - self.buffered - self.recv_window
        if increment > budget // 4:
            self.recv_window += increment
            self.write(f.window_update(0, increment))
