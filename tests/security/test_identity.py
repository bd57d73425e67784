"""Who the CLI and the Python API act as: the local user, an API key's principal, or a narrower one."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from shipyard import Registry
from shipyard.errors import AuthenticationError, ConfigError, PermissionDeniedError
from shipyard.security.access import Principal, Role
from shipyard.security.identity import acting_principal
from shipyard.security.keys import Keys


def test_without_a_key_the_local_user_acts_as_admin(sqlite_registry: Registry) -> None:
    settings = sqlite_registry.settings
    assert acting_principal(sqlite_registry.meta, settings, actor="ada") == Principal(
        "ada", Role.ADMIN, via="local"
    )
    assert acting_principal(sqlite_registry.meta, settings).name  # the OS user's name, or 'unknown'


def test_with_a_key_its_principal_acts_and_a_wrong_key_is_refused(sqlite_registry: Registry) -> None:
    secret = Keys(sqlite_registry).create("ci-bot", role="reader", models=["fraud*"]).secret
    meta = sqlite_registry.meta
    who = acting_principal(meta, replace(sqlite_registry.settings, api_key=secret), actor="ada")
    assert (who.name, who.role, who.models, who.via) == ("ci-bot", Role.READER, ("fraud*",), "api-key")
    with pytest.raises(AuthenticationError):
        acting_principal(meta, replace(sqlite_registry.settings, api_key=secret[:-4] + "AAAA"))


def test_run_as_narrows_the_principal_and_never_widens_it(sqlite_registry: Registry) -> None:
    settings, meta = sqlite_registry.settings, sqlite_registry.meta
    narrower = json.dumps({"name": "nightly", "role": "predictor", "models": ["credit"]})
    who = acting_principal(meta, replace(settings, run_as=narrower), actor="ada")
    assert (who.name, who.role, who.models) == ("nightly", Role.PREDICTOR, ("credit",))
    secret = Keys(sqlite_registry).create("reader-bot", role="reader").secret
    wider = json.dumps({"name": "reader-bot", "role": "deployer", "models": []})
    with pytest.raises(PermissionDeniedError, match="no stronger than its own"):
        acting_principal(meta, replace(settings, api_key=secret, run_as=wider))
    with pytest.raises(ConfigError, match="SHIPYARD_RUN_AS is not a principal's JSON"):
        acting_principal(meta, replace(settings, run_as="{reader"))
