"""The security part of `shipyard demo`: a server with keys required over TLS, a denied call,
the audit chain verified, and a version signed and verified."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import signal
from pathlib import Path
from typing import Any

from shipyard.cli.demo_server import start_server
from shipyard.cli.render import console, table
from shipyard.registry import Registry

__all__ = ["security_demo"]


def security_demo(reg: Registry, row: dict[str, Any]) -> None:
    """Steps 16 to 18: keys and roles on a TLS server, the audit log, a signed version."""
    import httpx

    from shipyard.security.audit import AuditLog
    from shipyard.security.keys import Keys

    folder = reg.settings.home / "security"
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = _self_signed(folder)
    keys = Keys(reg)
    stamp = dt.datetime.now(dt.UTC).strftime("%H%M%S")
    app = keys.create(f"demo-app-{stamp}", role="predictor", models=["credit*"], expires=dt.timedelta(days=1))
    analyst = keys.create(f"demo-analyst-{stamp}", role="reader", expires=dt.timedelta(days=1))
    console.print(
        f"\n16. [bold]shipyard keys create[/] {app.key.name} (predictor, credit*) and {analyst.key.name} "
        "(reader); [bold]shipyard serve credit@staging --auth required --tls-cert --tls-key[/]"
    )
    server, url = start_server(
        ["credit@staging", "--auth", "required", "--tls-cert", str(cert), "--tls-key", str(key), "--no-log"],
        ca=cert,
    )
    try:
        calls = []
        with httpx.Client(base_url=url, timeout=30, verify=_context(cert)) as http:
            callers = (
                ("no key", None),
                ("the reader key", analyst.secret),
                ("the predictor key", app.secret),
            )
            for who, secret in callers:
                headers = {"Authorization": f"Bearer {secret}"} if secret else {}
                answer = http.post("/v1/models/credit/predict", json={"instances": [row]}, headers=headers)
                body = answer.json()
                said = body.get("message") or f"predictions {body.get('predictions')}"
                calls.append((who, answer.status_code, said if len(said) < 90 else said[:87] + "..."))
        table("   POST /v1/models/credit/predict over HTTPS", ["caller", "status", "answer"], calls)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    log = AuditLog(reg)
    denied = [e for e in log.list(action="denied", limit=20) if e.target == "credit"][:3]
    console.print("\n17. [bold]shipyard audit list --action denied[/] ; [bold]shipyard audit verify[/]")
    table(
        "   refused calls, in the hash-chained audit log",
        ["seq", "actor", "action", "hash"],
        [(e.seq, e.actor, e.detail.get("action"), e.hash[:16]) for e in denied],
    )
    report = log.verify()
    console.print(
        f"   audit chain {'verified' if report.ok else 'BROKEN: ' + str(report.problem)}: {report.entries} "
        f"entries, head {report.head_seq} {report.head_hash[:16]}..."
    )
    _signing(reg, folder)


def _signing(reg: Registry, folder: Path) -> None:
    from shipyard.security.signing import SigningKey, TrustedKeys, new_signing_key

    private = folder / f"signing-{dt.datetime.now(dt.UTC):%H%M%S%f}.pem"
    kid, public = new_signing_key(private)
    version = reg.get("credit@staging")
    reg.signatures.sign(version.ref, SigningKey.from_file(private))
    verified = reg.signatures.verify(version, TrustedKeys.from_paths([public]))
    console.print(
        f"\n18. [bold]shipyard sign {version.ref} --key {private.name}[/] ; "
        f"[bold]shipyard verify {version.ref}[/]: "
        f"signed and verified by trusted key {verified} (== {kid}); 'serve --require-signature' "
        "now loads it, and refuses versions nobody trusted signed"
    )


def _context(cert: Path) -> Any:
    import ssl

    return ssl.create_default_context(cafile=str(cert))


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the demo's own CA), made anew on every run (an
    earlier demo's may have expired)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_path, key_path = folder / "demo-cert.pem", folder / "demo-key.pem"
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path.unlink(missing_ok=True)  # created owner-only below, never readable by others for a moment
    with os.fdopen(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        out.write(private)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path
