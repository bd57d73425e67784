"""TLS for both transports from one set of files, checked once at start."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from pki import Pki, make_pki
from shipyard.errors import ConfigError
from shipyard.serving.tls import TlsFiles


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, a server certificate for 127.0.0.1 and its key, and client certificates."""
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_a_missing_file_or_a_key_of_another_certificate_fails_at_start_naming_the_flag(pki: Pki) -> None:
    assert TlsFiles(cert=pki.server_cert, key=pki.server_key, client_ca=pki.ca).check()
    with pytest.raises(ConfigError, match="--tls-client-ca .*nope.pem is not a file; expected a PEM file"):
        TlsFiles(cert=pki.server_cert, key=pki.server_key, client_ca=pki.ca.with_name("nope.pem")).check()
    with pytest.raises(
        ConfigError, match="--tls-cert .*server.pem and --tls-key .*client.key do not go together"
    ):
        TlsFiles(cert=pki.server_cert, key=pki.client_key).check()


def test_the_same_files_configure_uvicorn_and_the_grpc_port(pki: Pki) -> None:
    plain = TlsFiles(cert=pki.server_cert, key=pki.server_key)
    assert plain.uvicorn() == {"ssl_certfile": str(pki.server_cert), "ssl_keyfile": str(pki.server_key)}
    mutual = TlsFiles(cert=pki.server_cert, key=pki.server_key, client_ca=pki.ca)
    assert mutual.uvicorn()["ssl_ca_certs"] == str(pki.ca)
    assert mutual.uvicorn()["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    assert plain.h2().verify_mode == ssl.CERT_NONE and mutual.h2().verify_mode == ssl.CERT_REQUIRED
    context = mutual.context()
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> str | None:
    """Connect `client` to a TLS listener on 127.0.0.1 using `server`: None when it was answered,
    else what went wrong."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def accept() -> None:
            conn, _ = listener.accept()
            try:
                with server.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError):
                conn.close()

        thread = threading.Thread(target=accept)
        thread.start()
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                client.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            ):
                answer = tls.recv(2)  # under TLS 1.3 a refused certificate shows here
            return None if answer == b"ok" else "no answer"
        except (ssl.SSLError, OSError) as exc:
            return type(exc).__name__
        finally:
            thread.join(timeout=10)


def _client(pki: Pki, cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    return context


def test_with_a_client_ca_only_clients_with_a_certificate_it_signed_get_an_answer(pki: Pki) -> None:
    server = TlsFiles(cert=pki.server_cert, key=pki.server_key, client_ca=pki.ca).context()
    assert _handshake(server, _client(pki, (pki.client_cert, pki.client_key))) is None
    assert _handshake(server, _client(pki, None)) is not None
    assert _handshake(server, _client(pki, (pki.stranger_cert, pki.stranger_key))) is not None
    plain = TlsFiles(cert=pki.server_cert, key=pki.server_key).context()
    assert _handshake(plain, _client(pki, None)) is None
