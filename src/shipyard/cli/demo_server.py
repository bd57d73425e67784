"""`shipyard serve` started as a process for the demo's steps, on a free port, ready when returned."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["free_port", "start_server"]


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(args: list[str], *, ca: Path | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start `shipyard serve ARGS` on a free port and wait until it is ready; returns it and its URL.

    With `ca` the server speaks HTTPS (ARGS give --tls-cert/--tls-key) and `ca` verifies it.
    """
    import ssl

    import httpx

    port = free_port()
    command = [sys.executable, "-m", "shipyard", "serve", *args, "--port", str(port)]
    server = subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"{'https' if ca else 'http'}://127.0.0.1:{port}"
    verify: Any = ssl.create_default_context(cafile=str(ca)) if ca else True
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=url, timeout=30, verify=verify) as http:
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if http.get("/readyz").status_code == 200:
                    return server, url
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    if server.poll() is None:
        server.kill()
    output = server.stdout.read().decode(errors="replace") if server.stdout else ""
    raise RuntimeError(f"the demo server did not become ready: {output}")
