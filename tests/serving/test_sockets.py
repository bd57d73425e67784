"""The server's listening sockets: binding, and which socket a worker accepts on."""

from __future__ import annotations

import socket

import pytest

from shipyard.errors import ConfigError
from shipyard.serving import sockets


def test_a_taken_address_is_refused_with_the_flags_to_change() -> None:
    held = sockets.bind("127.0.0.1", 0)
    try:
        port = held.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}.*--port or --host"):
            sockets.bind("127.0.0.1", port)
    finally:
        held.close()


def test_one_worker_accepts_on_the_shared_socket() -> None:
    assert not sockets.balanced(1)
    shared = sockets.bind("127.0.0.1", 0)
    try:
        assert sockets.listener(shared, host="127.0.0.1", workers=1) is shared
    finally:
        shared.close()


@pytest.mark.skipif(not sockets.balanced(2), reason="SO_REUSEPORT does not balance here")
def test_a_balanced_worker_listens_on_its_own_socket_of_the_port() -> None:
    holder = sockets.bind("127.0.0.1", 0, reuse_port=True, listen=False)
    port = holder.getsockname()[1]
    own = sockets.listener(holder, host="127.0.0.1", workers=2)
    try:
        assert own is not holder and holder.fileno() == -1  # the holder is closed
        assert own.getsockname()[1] == port
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        own.close()
