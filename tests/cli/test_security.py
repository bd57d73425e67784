"""`shipyard keys`, `audit`, `encryption`, `sign` and `verify`: what each prints, and what each refuses."""

from __future__ import annotations

import json
from pathlib import Path

from tests.commands import shipyard_in_process


def test_a_key_is_shown_once_listed_without_its_secret_and_revoked(home: Path) -> None:
    made = shipyard_in_process(
        home,
        "keys",
        "create",
        "--name",
        "ci-bot",
        "--role",
        "reader",
        "--models",
        "fraud*",
        "--expires",
        "90d",
    )
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret and "\n" not in secret
    assert "key 'ci-bot' (reader, models fraud*, expires " in made.stderr
    assert "this is the only time it is shown" in made.stderr
    deployer = ("keys", "create", "--name", "deployer", "--role", "deployer", "--json")
    as_json = json.loads(shipyard_in_process(home, *deployer).stdout)
    assert as_json["name"] == "deployer" and as_json["key"] and as_json["role"] == "deployer"
    listed = shipyard_in_process(home, "keys", "list", "--json")
    assert secret not in listed.stdout and as_json["key"] not in listed.stdout
    keys = {k["name"]: k for k in json.loads(listed.stdout)}
    assert (keys["ci-bot"]["role"], keys["ci-bot"]["models"], keys["ci-bot"]["state"]) == (
        "reader", ["fraud*"], "active",
    )  # fmt: skip
    assert keys["ci-bot"]["expires_at"] is not None
    revoked = shipyard_in_process(home, "keys", "revoke", "ci-bot", "--reason", "leaked")
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoked key 'ci-bot' ({keys['ci-bot']['prefix']}); servers refuse it within" in revoked.stdout
    table = shipyard_in_process(home, "keys", "list")
    assert "ci-bot" in table.stdout and "revoked" in table.stdout


def test_the_audit_log_lists_what_changed_verifies_and_refuses_a_head_it_does_not_have(
    home: Path, registered: Path
) -> None:
    entries = json.loads(shipyard_in_process(home, "audit", "list", "--action", "register", "--json").stdout)
    assert [(e["action"], e["model"], e["version"]) for e in entries] == [("register", "fraud", 1)]
    recent = shipyard_in_process(home, "audit", "list", "--since", "1h", "--model", "fraud")
    assert recent.returncode == 0 and "register" in recent.stdout
    bad_since = shipyard_in_process(home, "audit", "list", "--since", "lately")
    assert bad_since.returncode == 1
    assert "--since is 'lately'; expected a span (24h, 7d) or an ISO time" in bad_since.stderr
    verified = shipyard_in_process(home, "audit", "verify", "--json")
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] and report["entries"] >= 1
    shown = shipyard_in_process(home, "audit", "verify")
    assert "audit log verified" in shown.stdout and report["head_hash"] in shown.stdout
    assert shipyard_in_process(home, "audit", "verify", "--expect-head", report["head_hash"]).returncode == 0
    missing = shipyard_in_process(home, "audit", "verify", "--expect-head", "f" * 64)
    assert missing.returncode == 1
    assert "the audit log does not verify" in missing.stderr


def test_a_version_signed_with_a_new_key_verifies_against_its_public_half(
    home: Path, registered: Path
) -> None:
    key = registered / "signing.pem"
    made = shipyard_in_process(home, "sign", "--new-key", str(key))
    assert made.returncode == 0, made.stderr
    public = Path(made.stdout.split("its public key to ")[1].strip())
    assert key.exists() and public.exists()
    assert oct(key.stat().st_mode)[-3:] == "600"
    signed = shipyard_in_process(home, "sign", "fraud:1", "--key", str(key))
    assert signed.returncode == 0, signed.stderr
    kid = signed.stdout.strip().rsplit(" ", 1)[1]
    assert signed.stdout.startswith("signed fraud:1 with key ")
    checked = shipyard_in_process(home, "verify", "fraud@staging", "--trusted-key", str(public), "--json")
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["verified_by"] == kid
    plain = shipyard_in_process(home, "verify", "fraud:1", "--trusted-key", str(public))
    assert plain.stdout.strip() == f"fraud:1: signature by trusted key {kid} verifies"
    unnamed = shipyard_in_process(home, "sign", "fraud:1")
    assert unnamed.returncode == 1
    assert "name the version and the key: 'shipyard sign fraud:5 --key signing.pem'" in unnamed.stderr


def test_a_master_key_file_is_never_overwritten_and_sealing_needs_a_key(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "master.key"
    made = shipyard_in_process(home, "encryption", "new-key", "--out", str(out))
    assert made.returncode == 0, made.stderr
    assert f"to {out} (mode 600)" in made.stdout and oct(out.stat().st_mode)[-3:] == "600"
    key = out.read_text()
    again = shipyard_in_process(home, "encryption", "new-key", "--out", str(out))
    assert again.returncode == 1 and "a key file is never overwritten" in again.stderr
    assert out.read_text() == key
    unkeyed = shipyard_in_process(home, "encryption", "seal")
    assert unkeyed.returncode == 1
    assert "no master key: set SHIPYARD_ENCRYPTION_KEY or SHIPYARD_ENCRYPTION_KEY_FILE" in unkeyed.stderr
    sealed = shipyard_in_process(home, "encryption", "seal", env={"SHIPYARD_ENCRYPTION_KEY_FILE": str(out)})
    assert sealed.returncode == 0, sealed.stderr
    assert "sealed 0 object(s) under master key" in sealed.stdout
