"""The gRPC port's HTTP/2 server with real clients: grpcio's (sync and asyncio), Triton's, and raw
sockets sending what no client should. The server runs in a thread of its own event loop, as a
worker runs it, over a real `ModelService`."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
import hpack
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as triton_grpc

from pki import Pki, make_pki
from servers import CREDIT_DATATYPES, credit_infer_request, credit_row, free_port
from shipyard import Registry, Settings
from shipyard.core.refs import ModelRef
from shipyard.errors import ConfigError
from shipyard.serving import oip_v2_pb2 as pb
from shipyard.serving import sockets
from shipyard.serving.connections import ConnectionLimits
from shipyard.serving.grpc_server import start_grpc
from shipyard.serving.h2_calls import Call
from shipyard.serving.h2_server import H2Server
from shipyard.serving.metrics import Metrics
from shipyard.serving.served import Limits
from shipyard.serving.service import ModelService
from shipyard.serving.tls import TlsFiles
from shipyard.serving.wire import GRPC_SERVICE

INFER = f"/{GRPC_SERVICE}/ModelInfer"
MAX_MESSAGE = 4 << 20
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0,
    1,
    2,
    3,
    4,
    6,
    7,
    8,
    9,
)
NUMPY = {"INT64": np.int64, "FP64": np.float64}


@dataclass
class Running:
    """A gRPC server on its own loop in a thread, and its address."""

    server: H2Server
    loop: asyncio.AbstractEventLoop
    target: str
    service: ModelService

    @property
    def port(self) -> int:
        return int(self.target.rsplit(":", 1)[1])

    def streams(self) -> int:
        """Calls in flight over every connection (read on the server's loop)."""

        async def count() -> int:
            return sum(len(c.streams) for c in self.server.connections)

        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(10)


def run_server(
    service: ModelService, tls: TlsFiles | None = None, connections: ConnectionLimits | None = None
) -> Iterator[Running]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    target = f"127.0.0.1:{free_port()}"
    future = asyncio.run_coroutine_threadsafe(
        start_grpc(service, target, max_message_bytes=MAX_MESSAGE, tls=tls, connections=connections), loop
    )
    server = future.result(10)
    try:
        yield Running(server, loop, target, service)
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(0), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, credit: pd.DataFrame, credit_pipeline: Any
) -> ModelService:
    with Registry(Settings.for_home(tmp_path_factory.mktemp("home")), actor="tester") as registry:
        registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
        service = ModelService(limits=Limits(), metrics=Metrics())
        service.add(ModelRef.parse("credit:1"), registry.load("credit:1"))
    service.warm_up()
    return service


@pytest.fixture(scope="module")
def running(service: ModelService) -> Iterator[Running]:
    yield from run_server(service)


def infer(channel: grpc.Channel | grpc.aio.Channel) -> Any:
    return channel.unary_unary(
        INFER,
        request_serializer=pb.ModelInferRequest.SerializeToString,
        response_deserializer=pb.ModelInferResponse.FromString,
    )


def test_the_sync_client_is_answered(running: Running) -> None:
    with grpc.insecure_channel(running.target) as channel:
        live = channel.unary_unary(
            f"/{GRPC_SERVICE}/ServerLive", response_deserializer=pb.ServerLiveResponse.FromString
        )(b"")
        answer = infer(channel)(credit_infer_request([credit_row()]), timeout=30)
    assert live.live
    assert answer.model_name == "credit" and answer.outputs[0].shape == [1]


def test_many_concurrent_calls_on_one_channel_are_answered_and_merged(running: Running) -> None:
    batcher = running.service.models["credit"].lanes[1].batcher
    before = batcher.calls

    async def scenario() -> list[Any]:
        async with grpc.aio.insecure_channel(running.target) as channel:
            call = infer(channel)
            await call(credit_infer_request([credit_row()]))  # connected
            return await asyncio.gather(
                *(call(credit_infer_request([credit_row(age=20 + i)])) for i in range(200))
            )

    answers = asyncio.run(scenario())
    assert len(answers) == 200 and all(a.outputs[0].shape == [1] for a in answers)
    assert batcher.calls - before < 200  # calls that arrived together shared model calls


def test_a_large_answer_waits_for_the_clients_window(running: Running) -> None:
    rows = [credit_row(age=18 + i % 60) for i in range(10_000)]
    options = [("grpc.http2.bdp_probe", 0), ("grpc.max_receive_message_length", 64 << 20)]  # 64 KiB windows
    with grpc.insecure_channel(running.target, options=options) as channel:
        answers = [infer(channel)(credit_infer_request(rows), timeout=60) for _ in range(2)]
    for answer in answers:
        assert [o.shape for o in answer.outputs] == [[10_000], [10_000, 2]]
        assert [len(raw) for raw in answer.raw_output_contents] == [10_000 * 8, 20_000 * 8]


def test_a_call_past_its_deadline_is_dropped_and_the_channel_serves_on(running: Running) -> None:
    rows = [credit_row() for _ in range(5_000)]
    with grpc.insecure_channel(running.target) as channel:
        call = infer(channel)
        with pytest.raises(grpc.RpcError) as caught:
            call(credit_infer_request(rows), timeout=0.002)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert call(credit_infer_request([credit_row()]), timeout=30).outputs[0].shape == [1]
    deadline = time.monotonic() + 10
    while running.streams() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.streams() == 0


def test_keepalive_pings_keep_the_channel(running: Running) -> None:
    options = [
        ("grpc.keepalive_time_ms", 100),
        ("grpc.keepalive_timeout_ms", 1000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    states: list[grpc.ChannelConnectivity] = []
    with grpc.insecure_channel(running.target, options=options) as channel:
        channel.subscribe(states.append, try_to_connect=True)
        call = infer(channel)
        for _ in range(4):
            assert call(credit_infer_request([credit_row()]), timeout=30).outputs[0].shape == [1]
            time.sleep(0.4)  # pings every 100 ms meanwhile, each answered within 1 s or the channel drops
        channel.unsubscribe(states.append)
    ready = states.index(grpc.ChannelConnectivity.READY)
    assert set(states[ready:]) == {grpc.ChannelConnectivity.READY}  # connected once, never dropped


def test_the_triton_client_is_answered(running: Running) -> None:
    client = triton_grpc.InferenceServerClient(running.target)
    try:
        assert client.is_server_live() and client.is_model_ready("credit")
        inputs = []
        for name, datatype in CREDIT_DATATYPES.items():
            value = credit_row()[name]
            array = np.asarray(
                [value.encode()] if datatype == "BYTES" else [value], dtype=NUMPY.get(datatype, object)
            )
            tensor = triton_grpc.InferInput(name, [1], datatype)
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        result = client.infer("credit", inputs)
        assert result.as_numpy("prediction").shape == (1,)
        assert client.get_model_metadata("credit").name == "credit"
    finally:
        client.close()


def test_an_unknown_method_is_unimplemented_and_a_large_message_resource_exhausted(running: Running) -> None:
    with grpc.insecure_channel(running.target) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            channel.unary_unary(f"/{GRPC_SERVICE}/Nope")(b"", timeout=30)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "no method" in (caught.value.details() or "")
        with pytest.raises(grpc.RpcError) as caught:
            channel.unary_unary(INFER)(b"\x00" * (MAX_MESSAGE + 1), timeout=30)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"at most {MAX_MESSAGE}" in (caught.value.details() or "")
        assert infer(channel)(credit_infer_request([credit_row()]), timeout=30).outputs[0].shape == [1]


def test_grpcs_with_client_certificates(
    service: ModelService, tmp_path_factory: pytest.TempPathFactory
) -> None:
    pki: Pki = make_pki(tmp_path_factory.mktemp("pki"))
    tls = TlsFiles(cert=pki.server_cert, key=pki.server_key, client_ca=pki.ca)
    root = pki.ca.read_bytes()
    for running in run_server(service, tls):
        mine = grpc.ssl_channel_credentials(root, pki.client_key.read_bytes(), pki.client_cert.read_bytes())
        with grpc.secure_channel(running.target, mine) as channel:
            assert infer(channel)(credit_infer_request([credit_row()]), timeout=30).outputs[0].shape == [1]
        with grpc.secure_channel(running.target, grpc.ssl_channel_credentials(root)) as channel:
            with pytest.raises(grpc.RpcError) as caught:
                infer(channel)(credit_infer_request([credit_row()]), timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


# -- raw HTTP/2 ---------------------------------------------------------------------------------------
def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


class Raw:
    """A raw HTTP/2 connection: frames out, frames in."""

    def __init__(self, port: int, *, preface: bytes = PREFACE + frame(SETTINGS, 0, 0)) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(preface)
        self.buffer = b""
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()

    def send(self, *frames: bytes) -> None:
        self.sock.sendall(b"".join(frames))

    def block(self, path: str = INFER, content_type: str = "application/grpc") -> bytes:
        return self.encoder.encode(
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", path),
                (":authority", "x"),
                ("content-type", content_type),
                ("te", "trailers"),
            ]
        )

    def frames(self, until: int | None = None) -> list[tuple[int, int, int, bytes]]:
        """Frames read until a frame of type `until` (or the connection's end when None)."""
        out: list[tuple[int, int, int, bytes]] = []
        while True:
            while len(self.buffer) >= 9 and len(self.buffer) >= 9 + int.from_bytes(self.buffer[:3], "big"):
                length = int.from_bytes(self.buffer[:3], "big")
                kind, flags = self.buffer[3], self.buffer[4]
                stream = int.from_bytes(self.buffer[5:9], "big") & 0x7FFFFFFF
                out.append((kind, flags, stream, self.buffer[9 : 9 + length]))
                self.buffer = self.buffer[9 + length :]
                if kind == until:
                    return out
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return out
            self.buffer += chunk

    def ended(self, *streams: int) -> list[tuple[int, int, int, bytes]]:
        """Frames read until each of `streams` has ended (HEADERS with END_STREAM)."""
        frames: list[tuple[int, int, int, bytes]] = []
        while not set(streams) <= {s for kind, flags, s, _ in frames if kind == HEADERS and flags & 0x1}:
            more = self.frames(until=HEADERS)
            assert more, f"the connection ended before streams {streams} did: {frames}"
            frames += more
        return frames

    def headers(self, payload: bytes) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.decoder.decode(payload, raw=True)}

    def close(self) -> None:
        self.sock.close()


def message(request: pb.ModelInferRequest) -> bytes:
    body = request.SerializeToString()
    return b"\x00" + struct.pack(">I", len(body)) + body


def goaway_code(frames: list[tuple[int, int, int, bytes]]) -> int | None:
    codes = [struct.unpack(">II", p[:8])[1] for kind, _, _, p in frames if kind == GOAWAY]
    return codes[-1] if codes else None


def still_serves(running: Running) -> None:
    with grpc.insecure_channel(running.target) as channel:
        assert infer(channel)(credit_infer_request([credit_row()]), timeout=30).outputs[0].shape == [1]


def test_padding_continuation_priority_ping_and_unknown_frames_are_understood(running: Running) -> None:
    raw = Raw(running.port)
    try:
        block = raw.block()
        padded = bytes([3]) + block[:10] + b"\x00" * 3
        raw.send(
            frame(0x42, 0, 0, b"whatever"),  # an unknown type: ignored
            frame(PING, 0, 0, b"12345678"),
            frame(
                HEADERS, 0x8 | 0x20, 1, padded[:1] + b"\x00\x00\x00\x00\x10" + padded[1:]
            ),  # PADDED|PRIORITY
            frame(CONTINUATION, 0x4, 1, block[10:]),
            frame(PRIORITY, 0, 1, b"\x00\x00\x00\x00\x10"),
            frame(DATA, 0x8 | 0x1, 1, b"\x02" + message(credit_infer_request([credit_row()])) + b"\x00\x00"),
        )
        frames = raw.ended(1)
        assert (PING, 0x1, 0, b"12345678") in frames
        heads = [raw.headers(p) for kind, _, s, p in frames if kind == HEADERS and s == 1]
        assert heads[0][":status"] == "200" and heads[-1]["grpc-status"] == "0"
        data = b"".join(p for kind, _, s, p in frames if kind == DATA and s == 1)
        answer = pb.ModelInferResponse.FromString(data[5:])
        assert answer.model_name == "credit"
    finally:
        raw.close()


@pytest.mark.parametrize(
    ("name", "send", "code"),
    [
        ("garbage preface", lambda raw: raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"x" * 30), 0x1),
        ("oversized frame", lambda raw: raw.send(frame(DATA, 0, 1, b"x" * 20_000)), 0x6),
        ("HEADERS on an even stream", lambda raw: raw.send(frame(HEADERS, 0x5, 2, raw.block())), 0x1),
        ("a stream id that goes back", lambda raw: raw.send(frame(HEADERS, 0x4, 5, raw.block()), frame(HEADERS, 0x4, 3, raw.block())), 0x1),  # noqa: E501
        ("a bad header block", lambda raw: raw.send(frame(HEADERS, 0x5, 1, b"\xff\xff\xff\xff")), 0x9),
        ("DATA on stream 0", lambda raw: raw.send(frame(DATA, 0, 0, b"x")), 0x1),
    ],
)  # fmt: skip
def test_hostile_frames_get_goaway_and_the_server_serves_on(
    running: Running, name: str, send: Any, code: int
) -> None:
    preface = b"" if name == "garbage preface" else PREFACE + frame(SETTINGS, 0, 0)
    raw = Raw(running.port, preface=preface)
    try:
        send(raw)
        frames = raw.frames()  # to the end: the server closes
    finally:
        raw.close()
    assert goaway_code(frames) == code, name
    still_serves(running)


def test_a_truncated_frame_then_close_and_a_silent_client_leave_no_trace(running: Running) -> None:
    raw = Raw(running.port)
    raw.send(frame(HEADERS, 0x4, 1, raw.block())[:12])
    raw.close()
    quiet = socket.create_connection(("127.0.0.1", running.port), timeout=10)
    try:
        still_serves(running)
    finally:
        quiet.close()


def test_the_transports_refusals(running: Running) -> None:
    raw = Raw(running.port)
    try:
        raw.send(
            frame(HEADERS, 0x4, 1, raw.block(content_type="application/json")),
            frame(HEADERS, 0x4, 3, raw.block()),
            frame(DATA, 0x1, 3, b"\x01\x00\x00\x00\x01x"),  # compressed
            frame(HEADERS, 0x4, 5, raw.block()),
            frame(DATA, 0x1, 5, b"\x00\x00\x00"),  # not a whole prefix
            frame(HEADERS, 0x4, 7, raw.block()),
            frame(DATA, 0, 7, b"\x00\x00\x00\x00\x01x\x00\x00\x00\x00\x01y"),  # two messages
        )
        frames = raw.ended(1, 3, 5, 7)
        heads = {s: raw.headers(p) for kind, _, s, p in frames if kind == HEADERS}
        assert heads[1][":status"] == "415"
        assert heads[3]["grpc-status"] == "12" and "compressed" in heads[3]["grpc-message"]
        assert heads[5]["grpc-status"] == "3" and "length-prefixed" in heads[5]["grpc-message"]
        assert heads[7]["grpc-status"] == "3" and "one message" in heads[7]["grpc-message"]
        assert (RST_STREAM, 0, 7, b"\x00\x00\x00\x00") in raw.frames(
            until=RST_STREAM
        )  # its request had not ended
    finally:
        raw.close()


def test_streams_beyond_the_limit_are_refused(running: Running) -> None:
    raw = Raw(running.port)
    try:
        block = raw.block()
        raw.send(*(frame(HEADERS, 0x4, 1 + 2 * i, block) for i in range(1001)))
        frames = raw.frames(until=RST_STREAM)
        resets = [(s, struct.unpack(">I", p)[0]) for kind, _, s, p in frames if kind == RST_STREAM]
        assert resets == [(2001, 0x7)]  # REFUSED_STREAM for the 1001st
    finally:
        raw.close()
    still_serves(running)


def test_slow_clients_are_cut_and_the_connection_cap_holds(service: ModelService) -> None:
    limits = ConnectionLimits(header_timeout=0.5, body_timeout=0.5, body_min_rate=0, max_connections=2)
    for running in run_server(service, connections=limits):
        silent = Raw(running.port, preface=PREFACE[:10])  # never finishes its preface
        slow = Raw(running.port)
        slow.send(frame(HEADERS, 0x4, 1, slow.block()), frame(DATA, 0, 1, b"\x00\x00\x00"))  # and no more
        try:
            # Our SETTINGS and window, then closed after the header timeout.
            assert [kind for kind, _, _, _ in silent.frames()] == [SETTINGS, WINDOW_UPDATE]
            heads = [slow.headers(p) for kind, _, s, p in slow.ended(1) if kind == HEADERS]
            assert heads[-1]["grpc-status"] == "1" and "did not arrive in time" in heads[-1]["grpc-message"]
        finally:
            silent.close()
        busy = Raw(running.port)
        busy.send(frame(HEADERS, 0x4, 1, busy.block()))  # a call in flight: not idle
        busy.frames(until=SETTINGS)
        third = Raw(running.port)  # beyond the cap of 2: `slow`, idle now, is closed for it
        assert goaway_code(slow.frames()) == 0x0
        fourth = Raw(running.port)  # `busy` and `third` (settled, idle) are held; `third` goes
        assert goaway_code(third.frames()) == 0x0
        busy.send(frame(HEADERS, 0x4, 3, busy.block()))
        fourth.send(frame(HEADERS, 0x4, 1, fourth.block()))
        refused = Raw(running.port)  # both busy: refused
        assert goaway_code(refused.frames()) == 0xB
        for raw in (slow, busy, third, fourth, refused):
            raw.close()


def test_a_handler_that_raises_is_internal_and_a_stop_lets_calls_in_flight_finish(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> tuple[Any, ...]:
        release = asyncio.Event()

        async def app(call: Call) -> bytes:
            if call.path == "/t.T/Raise":
                raise RuntimeError("a bug")
            await release.wait()
            return call.message

        server = H2Server(app, max_message_bytes=MAX_MESSAGE, limits=ConnectionLimits())
        await server.start(sockets.bind("127.0.0.1", 0), None)
        target = f"127.0.0.1:{server.listener.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        async with grpc.aio.insecure_channel(target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await channel.unary_unary("/t.T/Raise")(b"x")
            slow = asyncio.ensure_future(channel.unary_unary("/t.T/Echo")(b"late"))
            await asyncio.sleep(0.2)
            stopping = asyncio.ensure_future(server.stop(10))
            await asyncio.sleep(0.2)
            release.set()
            answer = await slow
            await stopping
        async with grpc.aio.insecure_channel(target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as after:
                await channel.unary_unary("/t.T/Echo")(b"x", timeout=5)
        return caught.value.code(), answer, after.value.code()

    code, answer, after = asyncio.run(scenario())
    assert code == grpc.StatusCode.INTERNAL
    assert "a gRPC call to /t.T/Raise failed unexpectedly" in caplog.text
    assert answer == b"late"  # answered after the stop began
    assert after == grpc.StatusCode.UNAVAILABLE  # nobody listens any more


def test_a_port_in_use_is_a_config_error(service: ModelService) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(ConfigError, match=f"cannot listen on {address}: .*; choose another --grpc-port"):
            asyncio.run(start_grpc(service, address, max_message_bytes=MAX_MESSAGE))
