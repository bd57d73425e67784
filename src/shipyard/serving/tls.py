"""TLS for both transports from one set of files: certificate, key, and optionally the CA that
client certificates must chain to (mutual TLS)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import ConfigError

__all__ = ["TlsFiles"]


@dataclass(frozen=True, kw_only=True)
class TlsFiles:
    """The PEM files a server presents and checks.

    Args:
        cert: the server's certificate chain.
        key: its private key.
        client_ca: when set, clients must present a certificate signed by this CA (mutual TLS).
    """

    cert: Path
    key: Path
    client_ca: Path | None = None

    def check(self) -> TlsFiles:
        """Read the files once, so a wrong path or a key that does not match fails at start.

        Raises:
            ConfigError: a file is missing or unreadable, or the key does not match the certificate.
        """
        for flag, path in (
            ("--tls-cert", self.cert),
            ("--tls-key", self.key),
            ("--tls-client-ca", self.client_ca),
        ):
            if path is not None and not path.is_file():
                raise ConfigError(f"{flag} {path} is not a file; expected a PEM file")
        try:
            self.context()
        except ssl.SSLError as exc:
            why = exc.reason or exc
            raise ConfigError(
                f"--tls-cert {self.cert} and --tls-key {self.key} do not go together: {why}"
            ) from None
        return self

    def context(self) -> ssl.SSLContext:
        """A server-side context: TLS 1.2 or newer, client certificates required with `client_ca`."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert, self.key)
        if self.client_ca is not None:
            context.load_verify_locations(self.client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def uvicorn(self) -> dict[str, Any]:
        """uvicorn's settings for these files."""
        options: dict[str, Any] = {"ssl_certfile": str(self.cert), "ssl_keyfile": str(self.key)}
        if self.client_ca is not None:
            options |= {"ssl_ca_certs": str(self.client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
        return options

    def h2(self) -> ssl.SSLContext:
        """The gRPC port's context: `context()` offering HTTP/2 (ALPN `h2`, which gRPC clients require)."""
        context = self.context()
        context.set_alpn_protocols(["h2"])
        return context
