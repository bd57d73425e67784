"""Helpers for tests against real servers: `shipyard serve` started as a process, on free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dead_pid() -> int:
    """The pid of a process that has just ended (nothing runs under it now)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def hold_run_dir(folder: Path) -> int:
    """Hold `folder`'s run lock as a running server does; the descriptor to close."""
    import fcntl

    from shipyard.serving.run_dirs import LOCK

    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


class ServerProcess:
    """One `shipyard serve` process and the URLs to reach it."""

    def __init__(
        self,
        home: Path,
        refs: list[str],
        *args: str,
        env: dict[str, str] | None = None,
        ca: Path | None = None,
        client_cert: tuple[Path, Path] | None = None,
    ) -> None:
        """Start it; with `ca` it serves HTTPS (pass --tls-cert/--tls-key in `args`), and the
        client trusts `ca` and presents `client_cert` (certificate, key) when given."""
        self.home = home
        self.port = free_port()
        self.grpc_port = free_port()
        self.url = f"{'https' if ca else 'http'}://127.0.0.1:{self.port}"
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"
        command = [sys.executable, "-m", "shipyard", "serve", *refs, "--port", str(self.port)]
        command += ["--grpc-port", str(self.grpc_port), *args]
        env = {**os.environ, "SHIPYARD_HOME": str(home), **(env or {})}
        self.log = home / f"serve-{self.port}.log"
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(command, env=env, stdout=self._log_file, stderr=subprocess.STDOUT)
        self.pid = self.process.pid
        verify: Any = True
        if ca is not None:
            import ssl

            verify = ssl.create_default_context(cafile=str(ca))
            if client_cert is not None:
                verify.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
        self.http = httpx.Client(base_url=self.url, timeout=30, verify=verify)

    def wait_ready(self, timeout: float = 90) -> ServerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.output()}")
            try:
                if self.http.get("/readyz").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the server was not ready within {timeout}s:\n{self.output()}")

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 60) -> int:
        # Close the idle keep-alive connection first: over TLS the server's close would wait for
        # this client's close_notify, which an idle client never reads (asyncio waits 30 s).
        self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._log_file.close()
        return code


# The OIP datatype of each feature of the credit model, in contract order.
CREDIT_DATATYPES = {
    "age": "INT64",
    "income": "FP64",
    "debt_ratio": "FP64",
    "months_employed": "INT64",
    "country": "BYTES",
    "employment": "BYTES",
}


def credit_infer_request(rows: list[dict[str, Any]]) -> Any:
    """An OIP `ModelInferRequest` for the credit model: one typed tensor per feature (no raw bytes)."""
    from shipyard.serving import oip_v2_pb2 as pb

    request = pb.ModelInferRequest(model_name="credit")
    for name, datatype in CREDIT_DATATYPES.items():
        tensor = request.inputs.add(name=name, datatype=datatype, shape=[len(rows)])
        values = [r[name] for r in rows]
        if datatype == "BYTES":
            tensor.contents.bytes_contents.extend(v.encode() for v in values)
        elif datatype == "INT64":
            tensor.contents.int64_contents.extend(values)
        else:
            tensor.contents.fp64_contents.extend(values)
    return request


def credit_row(**overrides: Any) -> dict[str, Any]:
    """One valid credit application."""
    row: dict[str, Any] = {
        "age": 41,
        "income": 5200.0,
        "debt_ratio": 0.3,
        "months_employed": 120,
        "country": "DE",
        "employment": "salaried",
    }
    row.update(overrides)
    return row
