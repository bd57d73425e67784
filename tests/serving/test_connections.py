"""Connections of `shipyard serve`: deadlines for idle and slow clients, the cap per worker, and
workers sharing the connections, each against a real server and real (slow) sockets."""

from __future__ import annotations

import os
import resource
import select
import signal
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from servers import ServerProcess, credit_row
from shipyard.serving.connections import ConnectionLimits

_PREDICT = "/v1/models/credit/predict"


@pytest.fixture(scope="module")
def quick(credit_home: Path) -> Iterator[ServerProcess]:
    """A server with deadlines of a second or two, and a body rate of 100 bytes per second."""
    server = ServerProcess(
        credit_home,
        ["credit@production"],
        "--keep-alive-timeout",
        "1",
        "--header-timeout",
        "2",
        "--body-timeout",
        "2",
        "--body-min-rate",
        "100",
    )
    try:
        yield server.wait_ready()
    finally:
        server.terminate()


@pytest.fixture(scope="module")
def capped(credit_home: Path) -> Iterator[ServerProcess]:
    """A server holding 50 connections at most, started under a limit of 256 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))  # the server inherits it
    try:
        server = ServerProcess(
            credit_home,
            ["credit@production"],
            "--max-connections",
            "50",
            "--header-timeout",
            "60",
            "--keep-alive-timeout",
            "60",
        )
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        yield server.wait_ready()
    finally:
        server.terminate()


@pytest.fixture(scope="module")
def two_workers(credit_home: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(credit_home, ["credit@production"], "--workers", "2", "--no-log")
    try:
        yield server.wait_ready()
    finally:
        server.terminate()


# -- raw HTTP over sockets ---------------------------------------------------------------------------
def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=20)


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


def post(path: str, body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def predict_body(*, pad: int = 0) -> bytes:
    return orjson.dumps({"instances": [credit_row()]}) + b" " * pad


def response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One whole response read from `sock`: status, headers (lower-case names), body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"the server closed the connection after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    while len(body) < int(headers.get("content-length", "0")):
        body += sock.recv(65536)
    return int(status_line.split()[1]), headers, body


def until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a test fails on the 20 s timeout)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def trickle(sock: socket.socket, data: bytes, *, every: float) -> bytes:
    """Send `data` a byte every `every` seconds until the server answers or closes; then what it sent."""
    for byte in data:
        readable, _, _ = select.select([sock], [], [], every)
        if readable:
            break
        sock.sendall(bytes([byte]))
    return until_closed(sock)


# -- deadlines -----------------------------------------------------------------------------------
def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(quick: ServerProcess) -> None:
    with connect(quick) as sock:
        sock.sendall(get("/healthz"))
        status, headers, _ = response(sock)
        assert status == 200
        assert headers.get("connection") != "close"
        assert until_closed(sock) == b""  # closed quietly, well before the 20 s socket timeout


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(quick: ServerProcess) -> None:
    with connect(quick) as sock:
        assert until_closed(sock) == b""


def test_headers_sent_a_byte_at_a_time_are_answered_408_and_closed(quick: ServerProcess) -> None:
    slowloris = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Padding: " + b"a" * 60
    with connect(quick) as sock:
        answer = trickle(sock, slowloris, every=0.2)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"connection: close" in answer.lower()
    assert b"--header-timeout" in answer


def test_a_stalled_body_is_answered_408_and_a_steady_slow_one_is_served(quick: ServerProcess) -> None:
    with connect(quick) as sock:
        sock.sendall(post(_PREDICT, predict_body(pad=1000))[:-990])  # the headers and 10 bytes
        answer = until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"--body-timeout" in answer
    # 300 bytes a second, above --body-min-rate 100, for longer than --body-timeout 2: each 100
    # bytes earn a second more, so the body is not cut.
    request = post(_PREDICT, predict_body(pad=900))
    body_at = request.index(b"\r\n\r\n") + 4
    with connect(quick) as sock:
        sock.sendall(request[:body_at])
        for start in range(body_at, len(request), 150):
            time.sleep(0.5)
            sock.sendall(request[start : start + 150])
        status, _, body = response(sock)
    assert status == 200, body


def test_good_requests_are_answered_while_slow_clients_hold_connections(quick: ServerProcess) -> None:
    slow: list[socket.socket] = []
    try:
        for i in range(60):
            sock = connect(quick)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: te" if i % 2 else post(_PREDICT, b"{" * 50)[:-40])
            slow.append(sock)
        for _ in range(5):
            with connect(quick) as sock:
                sock.sendall(post(_PREDICT, predict_body()))
                assert response(sock)[0] == 200
        answers = [until_closed(sock) for sock in slow]
    finally:
        for sock in slow:
            sock.close()
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers)


# -- the cap -------------------------------------------------------------------------------------
def test_idle_connections_beyond_the_descriptor_limit_do_not_starve_good_requests(
    capped: ServerProcess,
) -> None:
    # 300 idle connections and 40 half-sent requests: more than the server's 256 descriptors.
    held: list[socket.socket] = []
    try:
        for i in range(340):
            sock = connect(capped)
            if i >= 300:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: te")
            held.append(sock)
        for _ in range(5):
            with connect(capped) as sock:
                sock.sendall(post(_PREDICT, predict_body()))
                assert response(sock)[0] == 200
        # The oldest idle connections made room for the newer ones.
        readable, _, _ = select.select(held[:10], [], [], 20)
        assert readable and all(until_closed(sock) == b"" for sock in readable)
    finally:
        for sock in held:
            sock.close()


def test_beyond_the_cap_of_busy_connections_requests_get_503_with_retry_after(capped: ServerProcess) -> None:
    busy = [connect(capped) for _ in range(50)]
    try:
        for sock in busy:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: te")  # half their headers, for 60 s
        for _ in range(3):
            with connect(capped) as sock:
                sock.sendall(post(_PREDICT, predict_body()))
                status, headers, body = response(sock)
                assert status == 503, body
                assert headers["retry-after"] == "1"
                assert headers["connection"] == "close"
                assert b"--max-connections" in body
                assert until_closed(sock) == b""
    finally:
        for sock in busy:
            sock.close()
    deadline = time.monotonic() + 20  # the server sees the closes as it reads them
    while True:
        with connect(capped) as sock:
            sock.sendall(post(_PREDICT, predict_body()))
            status, _, body = response(sock)
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200, body


def test_the_longest_idle_connection_makes_room_for_a_new_one(capped: ServerProcess) -> None:
    idle = [connect(capped) for _ in range(50)]
    try:
        for sock in idle:
            sock.sendall(get("/healthz"))
            assert response(sock)[0] == 200
        with connect(capped) as sock:
            sock.sendall(post(_PREDICT, predict_body()))
            assert response(sock)[0] == 200
        assert until_closed(idle[0]) == b""
        readable, _, _ = select.select(idle[1:], [], [], 0.5)
        assert not readable  # the others stay open
        idle[1].sendall(get("/healthz"))
        assert response(idle[1])[0] == 200
    finally:
        for sock in idle:
            sock.close()


def test_the_default_cap_leaves_room_under_a_low_descriptor_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))
    try:
        assert ConnectionLimits().cap() == 384
        assert ConnectionLimits(max_connections=5000).descriptor_warning() is not None
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert ConnectionLimits(max_connections=7).cap() == 7


# -- workers -------------------------------------------------------------------------------------
def worker_of(sock: socket.socket) -> str:
    """Which worker answers on `sock`: the prefix of the request ids it generates."""
    sock.sendall(post(_PREDICT, predict_body()))
    status, headers, body = response(sock)
    assert status == 200, body
    return headers["x-request-id"][:12]


def shares(server: ServerProcess, connections: int) -> Counter[str]:
    """How many of `connections` keep-alive connections, opened at once (as a load test's clients
    open theirs) and then asked in turn, each worker answered."""
    held = [socket.socket() for _ in range(connections)]
    for sock in held:  # every SYN at once, without waiting for each handshake
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", server.port))
    for sock in held:
        select.select([], [sock], [], 20)
        sock.settimeout(20)
    try:
        return Counter(worker_of(sock) for sock in held)
    finally:
        for sock in held:
            sock.close()


def assert_fair(server: ServerProcess, *, rounds: int) -> set[str]:
    """Each of `rounds` bursts of 100 connections is shared by both workers, each taking 25 at
    least (with one shared socket, the worker that wakes first takes most of a burst); returns the
    workers seen."""
    seen: set[str] = set()
    for _ in range(rounds):
        counts = shares(server, 100)
        assert len(counts) == 2 and min(counts.values()) >= 25, counts
        seen |= set(counts)
    return seen


def wait_for_workers(server: ServerProcess, *, besides: set[str]) -> None:
    """Until two workers answer, one of them not in `besides` (each listens once warmed up)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            answered = set(shares(server, 20))
        except ConnectionResetError:  # queued for a worker that was killed, and reset with it
            answered = set()
        if len(answered) == 2 and answered - besides:
            return
        time.sleep(0.5)


def test_workers_share_keep_alive_connections_also_after_a_restart(two_workers: ServerProcess) -> None:
    wait_for_workers(two_workers, besides=set())
    before = assert_fair(two_workers, rounds=3)
    children = Path(f"/proc/{two_workers.pid}/task/{two_workers.pid}/children").read_text().split()
    assert len(children) == 2
    os.kill(int(children[0]), signal.SIGKILL)
    wait_for_workers(two_workers, besides=before)
    after = assert_fair(two_workers, rounds=2)
    assert after != before
    assert two_workers.terminate() == 0, two_workers.output()


# -- one write per response ------------------------------------------------------------------------


def test_a_response_arrives_whole_in_one_segment(credit_server: ServerProcess) -> None:
    with connect(credit_server) as sock:
        for _ in range(3):  # each answer on a keep-alive connection, not only the first
            sock.sendall(post(_PREDICT, predict_body()))
            data = sock.recv(65536)  # one read: head and body were written together
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(
                next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
            )
            assert head.startswith(b"HTTP/1.1 200")
            assert len(body) == length
            assert orjson.loads(body)["predictions"]


def test_pipelined_requests_are_answered_in_order(credit_server: ServerProcess) -> None:
    with connect(credit_server) as sock:
        sock.sendall(post(_PREDICT, predict_body()) + get("/healthz") + post(_PREDICT, b"{}"))
        statuses = [response(sock)[0] for _ in range(3)]
    assert statuses == [200, 200, 400]


def test_expect_continue_head_and_connection_close_still_work(credit_server: ServerProcess) -> None:
    body = predict_body()
    with connect(credit_server) as sock:
        head = post(_PREDICT, b"").replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n")
        sock.sendall(head.replace(b"Content-Length: 0", f"Content-Length: {len(body)}".encode()))
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue")  # not held back for an answer
        sock.sendall(body)
        assert response(sock)[0] == 200
        sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.sendall(get("/healthz").replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        status, headers, _ = response(sock)
        assert status == 200 and headers.get("connection") == "close"
        assert until_closed(sock) == b""


class _Transport:
    """The socket's side of uvicorn's transport: what was written, and whether it was closed."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


class _Cycle:
    """As much of uvicorn's request cycle as its `send` uses: head and body written apart."""

    def __init__(self) -> None:
        self.transport = _Transport()
        self.response_started = False
        self.response_complete = False

    async def send(self, message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            self.response_started = True
            self.transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        else:
            self.transport.write(bytes(message["body"]))  # type: ignore[arg-type]
            self.response_complete = True


def test_the_one_write_send_writes_once_and_leaves_the_cycle_with_the_response() -> None:
    import asyncio

    from shipyard.serving.connections import _write_whole_responses

    cycle = _Cycle()
    _write_whole_responses(cycle)
    send = cycle.send
    asyncio.run(send({"type": "http.response.start", "status": 200, "headers": []}))
    assert cycle.transport.writes == []  # the head waits for its body
    asyncio.run(send({"type": "http.response.body", "body": b"{}"}))
    assert cycle.transport.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    assert "send" not in vars(cycle)  # no loop of references left for the garbage collector
