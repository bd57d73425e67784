"""One HTTP/2 connection of the gRPC server (`h2_server.py`): frames in, checked and acted on,
each request's call started once its message is whole, deadlines kept; the answers go out
through `h2_sending.Sender`."""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import TYPE_CHECKING, cast

import hpack

from shipyard.serving import h2_frames as f
from shipyard.serving.h2_calls import (
    CANCELLED,
    INTERNAL,
    INVALID_ARGUMENT,
    RESOURCE_EXHAUSTED,
    UNIMPLEMENTED,
    Call,
    CallError,
    Head,
    Stream,
    read_head,
)
from shipyard.serving.h2_frames import ProtocolFault
from shipyard.serving.h2_sending import Sender

if TYPE_CHECKING:
    from shipyard.serving.h2_server import H2Server

__all__ = ["IDLE_SECONDS", "MAX_HEADER_LIST", "MAX_STREAMS", "Connection"]

log = logging.getLogger("shipyard.serve")

IDLE_SECONDS = 300.0
"""How long a connection with no call in flight is kept (gRPC channels are long-lived; the cap on
connections reclaims idle ones sooner when new ones need room)."""
MAX_STREAMS = 1000  # calls in flight on one connection
MAX_HEADER_LIST = 32 * 1024  # bytes of one request's header block (grpc clients send <= 16 KiB)
_HEADS_CACHED = 64  # header blocks remembered per connection (a client repeats its blocks)


_PAIR = struct.Struct(">HI")
_WORD = struct.Struct(">I")


class Connection(Sender, asyncio.Protocol):
    """One client's connection: its streams, both directions' flow control, and its deadlines."""

    transport: asyncio.Transport

    def __init__(self, server: H2Server) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.peer: str | None = None
        self.buffer = b""
        self.preface = False  # the client's preface has arrived
        self.settled = False  # ... and its first SETTINGS
        self.decoder = hpack.Decoder(max_header_list_size=MAX_HEADER_LIST)
        self.heads: dict[bytes, Head] = {}
        self.streams: dict[int, Stream] = {}
        self.blocked: dict[int, Stream] = {}  # streams whose answer waits for window, oldest first
        self.last_stream = 0
        self.continuing: tuple[int, int, bytearray] | None = None  # stream, flags, block so far
        self.continuing_since = 0.0
        self.send_window = f.DEFAULT_WINDOW  # the peer's connection window for our DATA
        self.peer_initial = f.DEFAULT_WINDOW
        self.peer_frame = f.DEFAULT_FRAME
        self.recv_window = server.budget  # ours, as the peer sees it after our opening
        self.buffered = 0  # body bytes held in requests not yet complete
        self.running = 0  # calls started and not yet answered, their streams reset or not
        self.out: list[bytes] = []
        self.flushing = False
        self.going = False  # GOAWAY sent or received: no new calls
        self.closed = False
        self.opened = self.idle_since = self.loop.time()

    # -- the transport --------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) and peer else None
        if not self.server.admit(self):
            # Refused. Closing with the client's preface unread would reset the connection and
            # lose the GOAWAY: end our side instead, and close once the client does (or soon).
            transport.write(self.server.opening + f.goaway(0, f.ENHANCE_YOUR_CALM, b"too many connections"))
            self.closed = True
            if transport.can_write_eof():
                transport.write_eof()
                self.loop.call_later(self.server.limits.header_timeout, transport.close)
            else:
                transport.close()
            return
        transport.write(self.server.opening)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.streams.clear()
        self.blocked.clear()
        self.server.leave(self)

    def pause_writing(self) -> None:
        self.transport.pause_reading()  # a client that does not read its answers sends no more calls

    def resume_writing(self) -> None:
        if not self.closed:
            self.transport.resume_reading()

    def check(self, now: float) -> None:
        """The server's sweep: close or reset what is late, close a long-idle connection."""
        limits = self.server.limits
        if self.closed:
            return
        if not self.settled and now - self.opened > limits.header_timeout:
            self.closed = True
            self.transport.close()
            return
        if self.continuing is not None and now - self.continuing_since > limits.header_timeout:
            self.shut(f.PROTOCOL_ERROR, f"a header block did not end within {limits.header_timeout:g} s")
            return
        for stream in [s for s in self.streams.values() if not s.complete]:
            earned = stream.received / limits.body_min_rate if limits.body_min_rate > 0 else 0.0
            if now - stream.started > limits.body_timeout + earned:
                self.fail(
                    stream,
                    CANCELLED,
                    f"the request's message did not arrive in time: {stream.received} bytes in "
                    f"{now - stream.started:.1f} s (--body-timeout, --body-min-rate)",
                )
        for stream in list(self.blocked.values()):
            if now - stream.started > limits.body_timeout:  # the client takes no more of its answer
                self.write(f.rst_stream(stream.id, f.CANCEL))
                self.forget(stream)
        if not self.streams and now - self.idle_since > IDLE_SECONDS:
            self.drain()

    # -- frames in ------------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if self.buffer:
            data = self.buffer + data
        try:
            if not self.preface:
                if len(data) < len(f.PREFACE):
                    if not f.PREFACE.startswith(data):
                        raise ProtocolFault(f.PROTOCOL_ERROR, "the client preface is wrong")
                    self.buffer = data
                    return
                if not data.startswith(f.PREFACE):
                    raise ProtocolFault(f.PROTOCOL_ERROR, "the client preface is wrong")
                self.preface = True
                data = data[len(f.PREFACE) :]
            self.buffer = self.frames(data)
            self.grant()
        except ProtocolFault as fault:
            self.shut(fault.code, str(fault))
            return
        if self.out:
            self.flush()

    def frames(self, data: bytes) -> bytes:
        """Handle each whole frame in `data`; return the bytes of an incomplete last one."""
        pos, size = 0, len(data)
        while size - pos >= 9 and not self.closed:
            length = (data[pos] << 16) | (data[pos + 1] << 8) | data[pos + 2]
            if length > f.DEFAULT_FRAME:
                raise ProtocolFault(f.FRAME_SIZE_ERROR, f"a frame of {length} bytes; at most 16384 allowed")
            end = pos + 9 + length
            if end > size:
                break
            kind, flags = data[pos + 3], data[pos + 4]
            stream = _WORD.unpack_from(data, pos + 5)[0] & 0x7FFFFFFF
            payload = data[pos + 9 : end]
            pos = end
            if self.continuing is not None and kind != f.CONTINUATION:
                raise ProtocolFault(f.PROTOCOL_ERROR, "a header block was interrupted by another frame")
            if not self.settled and kind != f.SETTINGS:
                raise ProtocolFault(f.PROTOCOL_ERROR, "the client preface must end with SETTINGS")
            if kind == f.DATA:
                self.on_data(flags, stream, payload)
            elif kind == f.HEADERS:
                self.on_headers(flags, stream, payload)
            elif kind == f.WINDOW_UPDATE:
                self.on_window_update(stream, payload)
            elif kind == f.SETTINGS:
                self.on_settings(flags, stream, payload)
            elif kind == f.PING:
                if stream != 0 or length != 8:
                    raise ProtocolFault(f.PROTOCOL_ERROR if stream else f.FRAME_SIZE_ERROR, "a bad PING")
                if not flags & f.ACK:
                    self.out.append(f.frame(f.PING, f.ACK, 0, payload))
            elif kind == f.RST_STREAM:
                self.on_rst_stream(stream, payload)
            elif kind == f.CONTINUATION:
                self.on_continuation(flags, stream, payload)
            elif kind == f.GOAWAY:
                if stream != 0:
                    raise ProtocolFault(f.PROTOCOL_ERROR, "GOAWAY on a stream")
                self.going = True
                if not self.streams:
                    self.drain()
            elif kind == f.PUSH_PROMISE:
                raise ProtocolFault(f.PROTOCOL_ERROR, "a client cannot push")
            elif kind == f.PRIORITY and stream == 0:
                raise ProtocolFault(f.PROTOCOL_ERROR, "PRIORITY on stream 0")
            # PRIORITY is ignored, as are frame types we do not know (RFC 9113 section 4.1).
        return data[pos:]

    def on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise ProtocolFault(f.PROTOCOL_ERROR, "DATA on stream 0")
        self.recv_window -= len(payload)
        if self.recv_window < 0:
            raise ProtocolFault(f.FLOW_CONTROL_ERROR, "DATA beyond the connection's window")
        if flags & f.PADDED:
            payload = _unpad(payload)
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id > self.last_stream:
                raise ProtocolFault(f.PROTOCOL_ERROR, f"DATA on stream {stream_id}, which was never opened")
            return  # a stream we reset or answered early; its data is dropped
        if stream.complete:
            self.out.append(f.rst_stream(stream_id, f.STREAM_CLOSED))
            return
        if payload:
            body = stream.body
            if not body:
                stream.body = payload
            elif isinstance(body, bytearray):
                body += payload
            else:
                stream.body = bytearray(body) + payload
            stream.received += len(payload)
            self.buffered += len(payload)
            if stream.expected < 0 and stream.received >= 5 and self.refused(stream):
                return
            if stream.received > stream.expected >= 0:
                self.fail(
                    stream,
                    INVALID_ARGUMENT,
                    f"the request's body goes on past its message ({stream.received} bytes, the message "
                    f"ends at {stream.expected}); a unary call takes one message",
                )
                return
        if flags & f.END_STREAM:
            self.complete(stream)

    def refused(self, stream: Stream) -> bool:
        """Answer at once a message the call cannot take (compressed, or too large); True if so."""
        body = stream.body
        if body[0] != 0:
            self.fail(
                stream,
                UNIMPLEMENTED,
                "the message is compressed; this server takes uncompressed messages only",
            )
            return True
        size = _WORD.unpack_from(body, 1)[0]
        if size > self.server.max_message:
            self.fail(
                stream,
                RESOURCE_EXHAUSTED,
                f"the request's message is {size} bytes; this server takes at most "
                f"{self.server.max_message} (--max-body-bytes)",
            )
            return True
        stream.expected = 5 + size
        return False

    def complete(self, stream: Stream) -> None:
        """The request has ended: start its call."""
        stream.complete = True
        self.buffered -= stream.received
        body = stream.body
        if len(body) < 5 or len(body) != 5 + _WORD.unpack_from(body, 1)[0]:
            self.fail(
                stream,
                INVALID_ARGUMENT,
                f"the request's body is {len(body)} bytes; expected one length-prefixed message "
                "(5 bytes, then the message)",
            )
            return
        message = body[5:] if isinstance(body, bytes) else bytes(memoryview(body)[5:])
        call = Call(stream.head, message, self.peer)
        stream.body = b""
        self.running += 1
        task = self.loop.create_task(self.answer(stream, call))
        self.server.tasks.add(task)
        task.add_done_callback(self.server.tasks.discard)

    async def answer(self, stream: Stream, call: Call) -> None:
        """Run the app on `call` and answer it, whatever happens."""
        try:
            message = await self.server.app(call)
        except CallError as status:
            self.fail(stream, status.code, status.message, status.trailing)
        except Exception:
            log.exception("a gRPC call to %s failed unexpectedly; it is answered INTERNAL", call.path)
            self.fail(stream, INTERNAL, "the server failed while answering this call; see its log")
        else:
            self.succeed(stream, message)
        finally:
            self.running -= 1

    def on_headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise ProtocolFault(f.PROTOCOL_ERROR, "HEADERS on stream 0")
        if flags & f.PADDED:
            payload = _unpad(payload)
        if flags & f.PRIORITY_FLAG:
            if len(payload) < 5:
                raise ProtocolFault(f.FRAME_SIZE_ERROR, "HEADERS too short for its priority")
            payload = payload[5:]
        if flags & f.END_HEADERS:
            self.on_block(flags, stream_id, payload)
        else:
            self.continuing = (stream_id, flags, bytearray(payload))
            self.continuing_since = self.loop.time()

    def on_continuation(self, flags: int, stream_id: int, payload: bytes) -> None:
        if self.continuing is None or self.continuing[0] != stream_id:
            raise ProtocolFault(
                f.PROTOCOL_ERROR, f"CONTINUATION on stream {stream_id} follows no HEADERS of it"
            )
        block = self.continuing[2]
        block += payload
        if len(block) > MAX_HEADER_LIST:
            raise ProtocolFault(f.ENHANCE_YOUR_CALM, f"a header block over {MAX_HEADER_LIST} bytes")
        if flags & f.END_HEADERS:
            first = self.continuing[1]
            self.continuing = None
            self.on_block(first, stream_id, bytes(block))

    def on_block(self, flags: int, stream_id: int, block: bytes) -> None:
        """A whole header block: a new call, or the trailers that end a request."""
        head = self.decode(block)
        stream = self.streams.get(stream_id)
        if stream is not None:  # trailers of the request
            if not flags & f.END_STREAM or stream.complete:
                raise ProtocolFault(f.PROTOCOL_ERROR, f"a second header block on stream {stream_id}")
            self.complete(stream)
            return
        if stream_id % 2 and stream_id <= self.last_stream and flags & f.END_STREAM:
            return  # the trailers of a request answered early or reset: ignored (RFC 9113 section 5.4.2)
        if stream_id % 2 == 0 or stream_id <= self.last_stream:
            raise ProtocolFault(
                f.PROTOCOL_ERROR,
                f"a new stream's id is {stream_id}; expected odd and above {self.last_stream}",
            )
        self.last_stream = stream_id
        if self.going:
            return  # after GOAWAY: not processed, the client retries it elsewhere
        if head.malformed is not None:
            log.debug("resetting gRPC stream %d from %s: %s", stream_id, self.peer, head.malformed)
            self.out.append(f.rst_stream(stream_id, f.PROTOCOL_ERROR))
            return
        if len(self.streams) >= MAX_STREAMS or self.running >= MAX_STREAMS:
            # Calls whose streams the client reset still run: they count too (no "rapid reset").
            self.out.append(f.rst_stream(stream_id, f.REFUSED_STREAM))
            return
        stream = Stream(stream_id, head, self.peer_initial, self.loop.time())
        self.streams[stream_id] = stream
        if head.refusal is not None:
            self.refuse(stream, head.refusal)
        elif flags & f.END_STREAM:
            self.complete(stream)

    def decode(self, block: bytes) -> Head:
        """The header block decoded, from the cache when the same bytes came with the same table:
        a block that left the decoder's dynamic table as it was means the same again."""
        head = self.heads.get(block)
        if head is not None:
            return head
        table = self.decoder.header_table.dynamic_entries
        size, newest = len(table), table[0] if table else None
        try:
            fields = self.decoder.decode(block, raw=True)
        except hpack.HPACKError as exc:
            raise ProtocolFault(f.COMPRESSION_ERROR, f"a header block cannot be decoded: {exc}") from None
        head = read_head(fields)
        if len(table) == size and (table[0] if table else None) is newest:
            if len(self.heads) < _HEADS_CACHED:
                self.heads[block] = head
        else:
            self.heads.clear()
        return head

    def on_rst_stream(self, stream_id: int, payload: bytes) -> None:
        if stream_id == 0 or len(payload) != 4:
            raise ProtocolFault(f.PROTOCOL_ERROR, "a bad RST_STREAM")
        if stream_id > self.last_stream:
            raise ProtocolFault(f.PROTOCOL_ERROR, f"RST_STREAM on stream {stream_id}, never opened")
        stream = self.streams.get(stream_id)
        if stream is not None:
            self.forget(stream, reset=False)  # its call runs on, and its answer is dropped

    def on_settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise ProtocolFault(f.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & f.ACK:
            if payload:
                raise ProtocolFault(f.FRAME_SIZE_ERROR, "a SETTINGS acknowledgement with a payload")
            return
        if len(payload) % 6:
            raise ProtocolFault(f.FRAME_SIZE_ERROR, "SETTINGS whose length is not a multiple of 6")
        for i in range(0, len(payload), 6):
            key, value = _PAIR.unpack_from(payload, i)
            if key == f.INITIAL_WINDOW_SIZE:
                if value > f.MAX_WINDOW:
                    raise ProtocolFault(f.FLOW_CONTROL_ERROR, f"INITIAL_WINDOW_SIZE {value}")
                delta, self.peer_initial = value - self.peer_initial, value
                for stream in self.streams.values():
                    stream.window += delta
            elif key == f.MAX_FRAME_SIZE:
                if not f.DEFAULT_FRAME <= value <= f.LARGEST_FRAME:
                    raise ProtocolFault(f.PROTOCOL_ERROR, f"MAX_FRAME_SIZE {value}")
                self.peer_frame = value
            elif key == f.ENABLE_PUSH and value > 1:
                raise ProtocolFault(f.PROTOCOL_ERROR, f"ENABLE_PUSH {value}")
        self.settled = True
        self.out.append(f.frame(f.SETTINGS, f.ACK, 0))
        if self.blocked:
            self.unblock()

    def on_window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ProtocolFault(f.FRAME_SIZE_ERROR, "a WINDOW_UPDATE not of 4 bytes")
        increment = _WORD.unpack(payload)[0] & 0x7FFFFFFF
        if stream_id == 0:
            if increment == 0:
                raise ProtocolFault(f.PROTOCOL_ERROR, "a WINDOW_UPDATE of 0")
            self.send_window += increment
            if self.send_window > f.MAX_WINDOW:
                raise ProtocolFault(f.FLOW_CONTROL_ERROR, "the connection's window above 2^31-1")
        else:
            stream = self.streams.get(stream_id)
            if stream is None:
                return
            if increment == 0:
                self.out.append(f.rst_stream(stream_id, f.PROTOCOL_ERROR))
                self.forget(stream)
                return
            stream.window += increment
        if self.blocked:
            self.unblock()


def _unpad(payload: bytes) -> bytes:
    """A padded frame's payload without its pad length and padding."""
    if not payload or payload[0] >= len(payload):
        raise ProtocolFault(f.PROTOCOL_ERROR, "padding as long as the frame")
    return payload[1 : len(payload) - payload[0]]
