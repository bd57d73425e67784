"""HTTP/2's bytes for the gRPC server (`h2_server.py`): frame headers, settings, and the header
blocks of gRPC answers (RFC 9113, RFC 7541, and gRPC over HTTP/2).

Answers are HPACK-encoded without the dynamic table: static-table indexed fields and literals
without indexing, so the encoder keeps no state and the common blocks are computed once. Requests
are decoded by the `hpack` library, whose decoder does keep the peer's dynamic table.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterable, Sequence

__all__ = [
    "ANSWER_HEADERS",
    "OK_TRAILERS",
    "PREFACE",
    "ProtocolFault",
    "answer_block",
    "data_frames",
    "frame",
    "frame_head",
    "goaway",
    "header_frames",
    "rst_stream",
    "settings",
    "trailers_block",
    "window_update",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""What every HTTP/2 client sends first (RFC 9113 section 3.4)."""

# Frame types.
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0x5, 0x6, 0x7, 0x8, 0x9

# Flags.
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# Error codes (RFC 9113 section 7), those we send.
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
ENHANCE_YOUR_CALM = 0xB

# Settings (RFC 9113 section 6.5.2), those we send or read.
ENABLE_PUSH = 0x2
MAX_CONCURRENT_STREAMS = 0x3
INITIAL_WINDOW_SIZE = 0x4
MAX_FRAME_SIZE = 0x5
MAX_HEADER_LIST_SIZE = 0x6

DEFAULT_WINDOW = 65_535
DEFAULT_FRAME = 16_384
MAX_WINDOW = 2**31 - 1
LARGEST_FRAME = 2**24 - 1

_HEAD = struct.Struct(">BHBBI")


class ProtocolFault(Exception):  # noqa: N818  # RFC 9113 calls it a connection error
    """A connection error (RFC 9113 section 5.4.1): the connection is told why with GOAWAY and closed."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.code = code


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One frame: its 9-byte header, then `payload`."""
    length = len(payload)
    return _HEAD.pack(length >> 16, length & 0xFFFF, kind, flags, stream) + payload


def frame_head(kind: int, flags: int, stream: int, length: int) -> bytes:
    """The 9-byte header of a frame whose payload of `length` bytes follows."""
    return _HEAD.pack(length >> 16, length & 0xFFFF, kind, flags, stream)


def settings(pairs: Iterable[tuple[int, int]]) -> bytes:
    """A SETTINGS frame of (identifier, value) pairs."""
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", key, value) for key, value in pairs))


def window_update(stream: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", increment))


def rst_stream(stream: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream, struct.pack(">I", code))


def goaway(last_stream: int, code: int, debug: bytes = b"") -> bytes:
    return frame(GOAWAY, 0, 0, struct.pack(">II", last_stream, code) + debug)


def header_frames(stream: int, block: bytes, *, end_stream: bool, max_frame: int) -> bytes:
    """A header block as HEADERS, then CONTINUATION frames when it is larger than `max_frame`."""
    flags = END_STREAM if end_stream else 0
    if len(block) <= max_frame:
        return frame(HEADERS, flags | END_HEADERS, stream, block)
    chunks = [block[i : i + max_frame] for i in range(0, len(block), max_frame)]
    frames = [frame(HEADERS, flags, stream, chunks[0])]
    frames += [frame(CONTINUATION, 0, stream, chunk) for chunk in chunks[1:-1]]
    frames.append(frame(CONTINUATION, END_HEADERS, stream, chunks[-1]))
    return b"".join(frames)


def data_frames(stream: int, payload: memoryview, max_frame: int) -> bytes:
    """`payload` as DATA frames of at most `max_frame` bytes each (END_STREAM is the trailers')."""
    if len(payload) <= max_frame:
        return frame(DATA, 0, stream, bytes(payload))
    return b"".join(
        frame(DATA, 0, stream, bytes(payload[i : i + max_frame])) for i in range(0, len(payload), max_frame)
    )


# -- HPACK without the dynamic table ---------------------------------------------------------------
def _integer(value: int, prefix: int, first: int) -> bytes:
    """An HPACK integer with a `prefix`-bit prefix, or-ed into the `first` byte's high bits."""
    top = (1 << prefix) - 1
    if value < top:
        return bytes([first | value])
    out = [first | top]
    value -= top
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(value: bytes) -> bytes:
    return _integer(len(value), 7, 0) + value  # not Huffman-coded


def _literal(name: bytes, value: bytes) -> bytes:
    """A literal field without indexing, with a literal name."""
    return b"\x00" + _string(name) + _string(value)


def _literal_indexed_name(index: int, value: bytes) -> bytes:
    """A literal field without indexing whose name is the static table's entry `index`."""
    return _integer(index, 4, 0) + _string(value)


_STATUS_200 = b"\x88"  # static table entry 8, `:status: 200`
_CONTENT_TYPE = _literal_indexed_name(31, b"application/grpc")  # entry 31 is `content-type`

ANSWER_HEADERS = _STATUS_200 + _CONTENT_TYPE
"""The header block that opens every answer with a message."""

OK_TRAILERS = _literal(b"grpc-status", b"0")
"""The trailers of every answer that succeeded."""


def answer_block(status: int) -> bytes:
    """The header block of an HTTP-level refusal (a request that is not gRPC at all)."""
    return _integer(8, 4, 0) + _string(str(status).encode())  # entry 8's name is `:status`


def trailers_block(
    code: int, message: str, metadata: Sequence[tuple[str, str | bytes]], *, alone: bool
) -> bytes:
    """The trailers of a failed call: `grpc-status`, the percent-encoded `grpc-message`, then the
    trailing metadata (`-bin` keys base64-encoded). `alone`: a trailers-only answer, which also
    carries `:status` and `content-type`."""
    parts = [ANSWER_HEADERS] if alone else []
    parts.append(_literal(b"grpc-status", str(code).encode()))
    if message:
        parts.append(_literal(b"grpc-message", _percent(message)))
    for key, value in metadata:
        raw = value.encode() if isinstance(value, str) else value
        if key.endswith("-bin"):
            raw = base64.b64encode(raw).rstrip(b"=")
        parts.append(_literal(key.lower().encode(), raw))
    return b"".join(parts)


def _percent(message: str) -> bytes:
    """`grpc-message`'s encoding: UTF-8, each byte outside printable ASCII (and `%`) as `%XX`."""
    out = bytearray()
    for byte in message.encode():
        if 0x20 <= byte <= 0x7E and byte != 0x25:
            out.append(byte)
        else:
            out += b"%%%02X" % byte
    return bytes(out)
