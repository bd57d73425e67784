"""The server's listening sockets: one shared by every worker, or one per worker of the same port.

With one listening socket shared by every worker, the worker that wakes first takes each new
connection, and a busy one keeps winning (one took 98% of a soak's keep-alive connections). On
Linux each worker listens on its own socket with SO_REUSEPORT instead, and the kernel spreads the
connections over them by a hash of the client's address and port; elsewhere (where SO_REUSEPORT
does not balance) the workers share one socket.
"""

from __future__ import annotations

import socket
import sys

from shipyard.errors import ConfigError

__all__ = ["BACKLOG", "balanced", "bind", "listener"]

#: The listen backlog: connections the kernel completes and holds until a worker accepts them.
#: A baked bundle's server listens before its model loads, so the connections that arrive during
#: its start wait here and are answered once it is warm; beyond the backlog (which the kernel
#: caps at net.core.somaxconn, 4096 by default since Linux 5.4) new handshakes are dropped and
#: clients retry them, so a larger storm is slowed, not refused.
BACKLOG = 2048

_BALANCED = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def balanced(workers: int) -> bool:
    """Whether each of `workers` listens on its own socket of the port (SO_REUSEPORT) rather
    than a shared one."""
    return workers > 1 and _BALANCED


def bind(
    host: str, port: int, *, reuse_port: bool = False, listen: bool = True, flag: str = "--port"
) -> socket.socket:
    """A socket bound to `host:port`, listening unless told not to.

    Args:
        host: the address.
        port: the port (0 picks a free one).
        reuse_port: one of several sockets of the port (SO_REUSEPORT), one per worker.
        listen: listen (a socket only holding the port for its workers does not).
        flag: the option that chose the port, named in the error.

    Raises:
        ConfigError: the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}; choose another {flag} or --host"
        ) from None
    if listen:
        sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def listener(sock: socket.socket, *, host: str, workers: int) -> socket.socket:
    """The socket a worker accepts on: the shared one, or its own socket of the port when balanced.

    A balanced worker calls this once warmed up: until it listens, the kernel sends the port's
    connections to the other workers. The inherited socket only holds the port for the parent.

    Raises:
        ConfigError: the port cannot be bound again.
    """
    if not balanced(workers):
        return sock
    port = sock.getsockname()[1]
    sock.close()
    return bind(host, port, reuse_port=True)
