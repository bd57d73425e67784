"""A server's guard: the credential of a request, who it stands for, whether it may, and its rate."""

from __future__ import annotations

import pytest

from shipyard import Registry
from shipyard.errors import AuthenticationError, PermissionDeniedError, RateLimitedError
from shipyard.security.access import Action, Principal, Role
from shipyard.security.audit import AuditLog
from shipyard.security.guard import ANONYMOUS, DenialLog, Guard, credential
from shipyard.security.keys import Keys, KeyVerifier

Refusal = tuple[str, str, str | None, str]


def test_the_credential_is_the_api_key_header_or_a_bearer_token() -> None:
    assert credential("Bearer tok.en", None) == "tok.en"
    assert credential("bearer  tok.en ", None) == "tok.en"
    assert credential("Bearer tok.en", " sy_key ") == "sy_key"  # X-API-Key first
    assert credential("Basic dXNlcg==", None) is None
    assert credential("Bearer ", "  ") is None
    assert credential(None, None) is None


def test_with_authentication_off_everyone_is_anonymous() -> None:
    guard = Guard(required=False)
    assert guard.quick(None) is ANONYMOUS
    assert guard.identify("anything", action=Action.DEPLOY, target="credit") is ANONYMOUS
    assert not guard.active and Guard(required=False, rate=5).active


def test_a_key_stands_for_its_principal_and_its_scope_and_role_are_kept(sqlite_registry: Registry) -> None:
    secret = Keys(sqlite_registry).create("scorer", role="predictor", models=["credit*"]).secret
    refused: list[Refusal] = []
    guard = Guard(
        required=True, keys=KeyVerifier(sqlite_registry.meta), on_denied=lambda *r: refused.append(r)
    )
    who = guard.identify(secret, action=Action.PREDICT, target="credit")
    assert (who.name, who.role, who.via) == ("scorer", Role.PREDICTOR, "api-key")
    assert guard.quick(secret) == who  # seen just now: known without reading the store
    guard.admit(who, Action.PREDICT, "credit")
    with pytest.raises(PermissionDeniedError):
        guard.admit(who, Action.DEPLOY, "credit")
    with pytest.raises(PermissionDeniedError):
        guard.admit(who, Action.PREDICT, "fraud")
    assert [(actor, action, target) for actor, action, target, _ in refused] == [
        ("scorer", "deploy", "credit"),
        ("scorer", "predict", "fraud"),
    ]


def test_missing_and_unacceptable_credentials_are_refused_and_reported_without_the_secret() -> None:
    refused: list[Refusal] = []
    guard = Guard(required=True, on_denied=lambda *r: refused.append(r))
    with pytest.raises(AuthenticationError, match="requires credentials"):
        guard.identify(None, action=Action.PREDICT, target="credit")
    with pytest.raises(AuthenticationError, match="does not accept API keys"):
        guard.identify("sy_0123456789abcdefsecret", action=Action.PREDICT, target="credit")
    with pytest.raises(AuthenticationError, match="accepts no JWTs"):
        guard.identify("a.b.c", action=Action.PREDICT, target=None)
    assert [actor for actor, *_ in refused] == ["anonymous", "key:0123456789", "anonymous"]
    assert not any("secret" in str(r) for r in refused)


def test_a_client_whose_credentials_keep_failing_is_slowed_before_the_next_is_checked() -> None:
    guard = Guard(required=True)
    for _ in range(10):
        with pytest.raises(AuthenticationError):
            guard.identify("made.up.token", action=Action.READ, target=None, client="10.0.0.9")
    with pytest.raises(RateLimitedError, match="too many credentials from 10.0.0.9 failed") as slowed:
        guard.identify("made.up.token", action=Action.READ, target=None, client="10.0.0.9")
    assert slowed.value.retry_after is not None and slowed.value.retry_after > 0
    with pytest.raises(AuthenticationError):  # another client is not held to it
        guard.identify("made.up.token", action=Action.READ, target=None, client="10.0.0.10")


def test_each_principal_has_its_own_rate_and_a_key_rate_overrides_the_servers() -> None:
    guard = Guard(required=True, rate=1)  # burst: twice the rate
    ada, bob = Principal("ada", Role.READER), Principal("bob", Role.READER, rate=100)
    guard.admit(ada, Action.READ, None)
    guard.admit(ada, Action.READ, None)
    with pytest.raises(RateLimitedError, match="ada sent more than 1 requests per second \\(burst 2\\)"):
        guard.admit(ada, Action.READ, None)
    for _ in range(20):
        guard.admit(bob, Action.READ, None)


def test_repeated_refusals_are_audited_once_with_how_many_were_refused(sqlite_registry: Registry) -> None:
    denials = DenialLog(sqlite_registry.meta, every=3600)
    for _ in range(5):
        denials("key:0123456789", "predict", "credit", "unknown key")
    denials("anonymous", "deploy", "credit", "no credential")
    denials.close()
    entries = AuditLog(sqlite_registry).list(action="denied")
    refused = sorted((e.actor, e.detail["action"], e.detail["refused"]) for e in entries)
    assert refused == [
        ("anonymous", "deploy", 1),
        ("key:0123456789", "predict", 1),
        ("key:0123456789", "predict", 4),
    ]
    assert {e.detail["via"] for e in entries} == {"server"}
