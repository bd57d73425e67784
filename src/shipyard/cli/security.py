"""`shipyard keys` and `shipyard audit`: API keys, and the hash-chained audit log."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shipyard.cli.options import JsonOpt
from shipyard.cli.render import emit_json, error, key_values, table
from shipyard.cli.session import registry
from shipyard.errors import ConfigError

if TYPE_CHECKING:
    from shipyard.registry.registry import Registry
    from shipyard.security.encryption import Envelope
    from shipyard.security.keys import ApiKey

__all__ = ["audit_app", "encryption_app", "keys_app", "sign", "verify"]

keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log: every change, hash-chained.", no_args_is_help=True)
encryption_app = typer.Typer(
    help="Encryption at rest: make a master key, seal what is stored plain, rotate the key.",
    no_args_is_help=True,
)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="Who holds the key (e.g. ci-bot); unique.")],
    role: Annotated[str, typer.Option(help="reader, predictor, deployer or admin.")],
    models: Annotated[
        list[str] | None, typer.Option("--models", help="Limit the key to these model patterns ('fraud*').")
    ] = None,
    expires: Annotated[str | None, typer.Option(help="How long it works: 90d, 12h, 2w.")] = None,
    rate: Annotated[float | None, typer.Option(help="Requests per second a server accepts from it.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create an API key and print it once; only a slow hash of it is kept."""
    from shipyard.core.durations import parse_duration
    from shipyard.security.keys import Keys

    span = parse_duration(expires, what="--expires") if expires else None
    with registry() as reg:
        new = Keys(reg).create(name, role=role, models=models or (), expires=span, rate=rate)
    if json_out:
        emit_json(new.key.to_dict() | {"key": new.secret})
        return
    typer.echo(new.secret)
    error_line = (
        f"key {name!r} ({new.key.role}"
        + (f", models {', '.join(new.key.models)}" if new.key.models else "")
        + (f", expires {new.key.expires_at:%Y-%m-%d %H:%M} UTC" if new.key.expires_at else "")
        + "): this is the only time it is shown; store it in your secret manager"
    )
    typer.echo(error_line, err=True)


@keys_app.command("list")
def keys_list(json_out: JsonOpt = False) -> None:
    """Every key with its role, scope, state and last use (never the secret)."""
    from shipyard.security.keys import Keys

    with registry() as reg:
        found = Keys(reg).list()
    if json_out:
        emit_json([k.to_dict() for k in found])
        return
    table(
        "API keys",
        ["name", "prefix", "role", "models", "state", "expires", "last used", "created by"],
        [_key_row(k) for k in found],
    )


@keys_app.command("revoke")
def keys_revoke(
    name: Annotated[str, typer.Argument(help="The key's name.")],
    reason: Annotated[str | None, typer.Option(help="Why, for the audit log.")] = None,
) -> None:
    """Revoke a key for good: servers refuse it within seconds."""
    from shipyard.security.keys import REFRESH, Keys

    with registry() as reg:
        key = Keys(reg).revoke(name, reason=reason)
    typer.echo(f"revoked key {key.name!r} ({key.prefix}); servers refuse it within {REFRESH:g} s")


@audit_app.command("list")
def audit_list(
    since: Annotated[
        str | None, typer.Option(help="Only entries newer than this: 24h, 7d, or an ISO time.")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Only this actor's entries.")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action (alias, register, denied, ...).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Only entries about this model.")] = None,
    limit: Annotated[int, typer.Option(help="How many entries, newest first.")] = 50,
    json_out: JsonOpt = False,
) -> None:
    """The newest audit entries first."""
    from shipyard.security.audit import AuditLog

    with registry() as reg:
        entries = AuditLog(reg).list(
            since=_since(since), actor=actor, action=action, model=model, limit=limit
        )
    if json_out:
        emit_json([e.to_dict() for e in entries])
        return
    table(
        "audit log",
        ["seq", "at (UTC)", "actor", "action", "target", "detail", "hash"],
        [
            (e.seq, f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.action, e.target, _short(e.detail), e.hash[:12])
            for e in entries
        ],
    )


@audit_app.command("verify")
def audit_verify(
    expect_head: Annotated[
        str | None, typer.Option(help="A head hash printed by an earlier verify: it must still be there.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Recompute the hash chain; exit 1 and name the entry when one was edited or deleted."""
    from shipyard.security.audit import AuditLog

    with registry() as reg:
        report = AuditLog(reg).verify(expect_head=expect_head)
    if json_out:
        emit_json(report.to_dict())
    elif report.ok:
        key_values(
            "audit log verified",
            [("entries", report.entries), ("head", f"{report.head_seq} {report.head_hash}")],
        )
        typer.echo(
            "keep the head hash elsewhere; 'audit verify --expect-head HASH' then catches deleted entries"
        )
    if not report.ok:
        error(f"the audit log does not verify: {report.problem}")
        raise typer.Exit(1)


@encryption_app.command("new-key")
def encryption_new_key(
    out: Annotated[Path, typer.Option("--out", help="The file to write the key to (readable by you only).")],
) -> None:
    """Write a new random 256-bit master key to a file; point SHIPYARD_ENCRYPTION_KEY_FILE at it."""
    from shipyard.security.encryption import MasterKey, new_master_key

    if out.exists():
        raise ConfigError(f"{out} exists; a key file is never overwritten (choose another path)")
    key = new_master_key()
    descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    typer.echo(f"wrote master key {MasterKey.parse(key, where='the new key').id} to {out} (mode 600)")
    typer.echo(f"use it: export SHIPYARD_ENCRYPTION_KEY_FILE={out.absolute()}", err=True)


@encryption_app.command("rotate")
def encryption_rotate(
    new_key_file: Annotated[Path, typer.Option(help="The new master key ('encryption new-key').")],
) -> None:
    """Re-wrap every data key under a new master key; the encrypted objects are not rewritten.

    The current key comes from SHIPYARD_ENCRYPTION_KEY or SHIPYARD_ENCRYPTION_KEY_FILE; switch
    those to the new key once this finishes.
    """
    from shipyard.security.audit import append
    from shipyard.security.encryption import MasterKey, rotate

    with registry() as reg:
        current = _master_key(reg, "the key the store is encrypted with")
        new = MasterKey.from_file(new_key_file)
        done, already = rotate(reg.settings.store_url, current, new)
        detail = {"from": current.master.id, "to": new.id, "rewrapped": done, "already": already}
        reg.meta.write(
            lambda conn: append(
                conn, "encryption-rotate", actor=reg.actor, target="master-key", detail=detail
            )
        )
    typer.echo(
        f"re-wrapped {done} data key(s) from master key {current.master.id} to {new.id} "
        f"({already} already under it); now set SHIPYARD_ENCRYPTION_KEY_FILE={new_key_file.absolute()}"
    )


@encryption_app.command("seal")
def encryption_seal() -> None:
    """Encrypt the artifacts and prediction-log segments stored before encryption was turned on.

    The key comes from SHIPYARD_ENCRYPTION_KEY or SHIPYARD_ENCRYPTION_KEY_FILE. Objects sealed
    already are left as they are; a run stopped half-way is finished by running it again.
    """
    from shipyard.security.audit import append
    from shipyard.security.encryption import seal_existing

    with registry() as reg:
        current = _master_key(reg, "the key to seal with ('shipyard encryption new-key' makes one)")
        done, already = seal_existing(reg.settings.store_url, current.master)
        detail = {"key": current.master.id, "sealed": done, "already": already}
        reg.meta.write(
            lambda conn: append(conn, "encryption-seal", actor=reg.actor, target="store", detail=detail)
        )
    typer.echo(f"sealed {done} object(s) under master key {current.master.id} ({already} sealed already)")


def _master_key(reg: Registry, which: str) -> Envelope:
    """The configured master key, for an admin; `which` says what key the command needs.

    Raises:
        PermissionDeniedError: the caller is not an admin.
        ConfigError: no master key is configured.
    """
    from shipyard.security.access import Action
    from shipyard.security.encryption import envelope_for

    reg.allow(Action.ROTATE_KEYS)
    current = envelope_for(reg.settings)
    if current is None:
        raise ConfigError(
            f"no master key: set SHIPYARD_ENCRYPTION_KEY or SHIPYARD_ENCRYPTION_KEY_FILE to {which}"
        )
    return current


def _key_row(k: ApiKey) -> tuple[object, ...]:
    scope = ", ".join(k.models) or "*"
    return (
        k.name,
        k.prefix,
        k.role,
        scope,
        k.state,
        _when(k.expires_at),
        _when(k.last_used_at),
        k.created_by,
    )


def _when(value: datetime | None) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M}"


def _short(detail: object) -> str:
    text = str(dict(detail)) if isinstance(detail, dict) else str(detail)
    return text if len(text) <= 60 else text[:57] + "..."


def _since(text: str | None) -> datetime | None:
    """`24h`/`7d` before now, or an ISO time."""
    if text is None:
        return None
    from shipyard.core.durations import parse_duration

    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        pass
    try:
        return datetime.now(UTC) - parse_duration(text, what="--since")
    except ConfigError:
        raise ConfigError(
            f"--since is {text!r}; expected a span (24h, 7d) or an ISO time (2026-11-24T10:00)"
        ) from None


def sign(
    ref: Annotated[
        str | None, typer.Argument(help="The version to sign: NAME:VERSION or NAME@ALIAS.")
    ] = None,
    key: Annotated[Path | None, typer.Option(help="The Ed25519 private key (PEM).")] = None,
    new_key: Annotated[
        Path | None, typer.Option(help="Write a new Ed25519 key here (and its .pub beside it), then stop.")
    ] = None,
) -> None:
    """Sign a version's manifest (artifact digest, flavor, contract) with an Ed25519 key."""
    from shipyard.security.signing import SigningKey, new_signing_key

    if new_key is not None:
        kid, public = new_signing_key(new_key)
        typer.echo(f"wrote signing key {kid} to {new_key} (mode 600) and its public key to {public}")
        typer.echo(f"trust it where models load: export SHIPYARD_TRUSTED_KEYS={public.absolute()}", err=True)
        return
    if ref is None or key is None:
        raise ConfigError("name the version and the key: 'shipyard sign fraud:5 --key signing.pem'")
    signing = SigningKey.from_file(key)
    with registry() as reg:
        version = reg.get(ref)
        record = reg.signatures.sign(version.ref, signing)
    typer.echo(f"signed {version.ref} with key {record.key_id}")


def verify(
    ref: Annotated[str, typer.Argument(help="The version: NAME:VERSION or NAME@ALIAS.")],
    trusted_keys: Annotated[
        list[Path] | None,
        typer.Option(
            "--trusted-key", help="A trusted public key (PEM) or folder; default SHIPYARD_TRUSTED_KEYS."
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check a version's signature against trusted keys; exit 1 when none verifies."""
    from shipyard.security.signing import TrustedKeys

    with registry() as reg:
        version = reg.get(ref)
        trusted = TrustedKeys.from_paths(trusted_keys) if trusted_keys else None
        kid = reg.signatures.verify(version, trusted)
        found = reg.signatures.list(version)
    if json_out:
        emit_json(
            {"version": str(version.ref), "verified_by": kid, "signatures": [s.to_dict() for s in found]}
        )
        return
    typer.echo(f"{version.ref}: signature by trusted key {kid} verifies")
