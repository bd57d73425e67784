"""API keys on a real metadata store: shown once, kept as a slow hash, expired and revoked for good."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from shipyard import Registry
from shipyard.errors import AuthenticationError, ConfigError, ConflictError
from shipyard.security.access import Role
from shipyard.security.keys import Keys, KeyVerifier
from shipyard.store.schema import api_keys


def test_a_key_is_shown_once_and_only_its_hash_is_stored(registry: Registry) -> None:
    keys = Keys(registry)
    new = keys.create("ci-bot", role="deployer", models=["fraud*"], rate=50)
    assert new.secret.startswith(f"sy_{new.key.prefix}_")
    with registry.meta.read() as conn:
        row = conn.execute(select(api_keys)).one()
    stored = " ".join(str(v) for v in row)
    assert new.secret.split("_", 2)[2] not in stored  # the secret is nowhere in the row
    principal = KeyVerifier(registry.meta).authenticate(new.secret)
    assert (principal.name, principal.role, principal.models, principal.via) == (
        "ci-bot", Role.DEPLOYER, ("fraud*",), "api-key",
    )  # fmt: skip
    assert [k.to_dict()["state"] for k in keys.list()] == ["active"]


def test_a_wrong_unknown_or_malformed_key_is_refused_without_echoing_it(registry: Registry) -> None:
    keys = KeyVerifier(registry.meta)
    new = Keys(registry).create("ci-bot", role="reader")
    wrong = new.secret[:-4] + ("AAAA" if not new.secret.endswith("AAAA") else "BBBB")
    with pytest.raises(AuthenticationError, match="is not valid") as caught:
        keys.authenticate(wrong)
    assert wrong.split("_", 2)[2] not in str(caught.value)
    unknown = "sy_" + "a" * 10 + "_" + new.secret.split("_", 2)[2]
    with pytest.raises(AuthenticationError, match="is not valid") as unknown_caught:
        keys.authenticate(unknown)
    prefix, other = new.secret.split("_")[1], "a" * 10
    # the words do not tell an unknown prefix from a wrong secret
    assert str(unknown_caught.value).replace(other, prefix) == str(caught.value)
    with pytest.raises(AuthenticationError, match="not a Shipyard API key"):
        keys.authenticate("Bearer hello")


def test_a_revoked_key_stops_working_and_its_name_is_not_reused(registry: Registry) -> None:
    keys = Keys(registry)
    new = keys.create("ci-bot", role="predictor")
    verifier = KeyVerifier(registry.meta)
    verifier.authenticate(new.secret)
    keys.revoke("ci-bot", reason="leaked")
    with pytest.raises(AuthenticationError, match="revoked"):
        verifier.authenticate(new.secret)
    other = KeyVerifier(registry.meta)  # another server process
    with pytest.raises(AuthenticationError, match="revoked"):
        other.authenticate(new.secret)
    with pytest.raises(ConflictError, match="exists already"):
        keys.create("ci-bot", role="predictor")
    with pytest.raises(ConflictError, match="revoked already"):
        keys.revoke("ci-bot")


def test_an_expired_key_is_refused_with_when_it_expired(registry: Registry) -> None:
    keys = Keys(registry)
    new = keys.create("temp", role="reader", expires=timedelta(days=1))
    with registry.meta.engine.begin() as conn:
        conn.execute(text("UPDATE api_keys SET expires_at = '2020-01-01 00:00:00'"))
    with pytest.raises(AuthenticationError, match="expired at 2020-01-01"):
        KeyVerifier(registry.meta).authenticate(new.secret)


def test_bad_key_settings_are_refused_by_name(registry: Registry) -> None:
    keys = Keys(registry)
    with pytest.raises(ConfigError, match="--role is 'root'; expected one of reader, predictor"):
        keys.create("x", role="root")
    with pytest.raises(ConfigError, match="key name '../etc' is not allowed"):
        keys.create("../etc", role="reader")
    with pytest.raises(ConfigError, match="model pattern 'a/b' is not allowed"):
        keys.create("x", role="reader", models=["a/b"])
    with pytest.raises(ConfigError, match="--rate is 0"):
        keys.create("x", role="reader", rate=0)
    assert keys.list() == []
