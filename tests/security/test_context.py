"""The context every store takes: who acts, the refusal it audits, and the system context."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard import PermissionDeniedError, Registry, Settings
from shipyard.security.access import Action, Principal, Role
from shipyard.security.audit import AuditLog
from shipyard.security.context import Context, context_of


def test_a_refusal_is_audited_before_it_is_raised(tmp_path: Path) -> None:
    settings = Settings.for_home(tmp_path / "home")
    reader = Principal("ana", Role.READER, ("fraud*",), via="test")
    with Context.open(settings, principal=reader) as ctx:
        ctx.allow(Action.READ, "fraud-eu")
        with pytest.raises(PermissionDeniedError, match="needs the deployer role"):
            ctx.allow(Action.DEPLOY, "fraud-eu")
        with pytest.raises(PermissionDeniedError, match="limited to models fraud\\*"):
            ctx.allow(Action.READ, "churn")
        with Context.open(settings, principal=Principal("root", Role.ADMIN, via="test")) as admin:
            entries = AuditLog(admin).list()
    assert [(e.action, e.actor, e.detail["action"], e.target) for e in reversed(entries)] == [
        ("denied", "ana", "deploy", "fraud-eu"),
        ("denied", "ana", "read", "churn"),
    ]
    assert entries[0].detail["role"] == "reader" and entries[0].detail["via"] == "test"


def test_the_actor_is_the_principal_unless_named(tmp_path: Path) -> None:
    settings = Settings.for_home(tmp_path / "home")
    who = Principal("ana", Role.DEPLOYER, via="test")
    with Context.open(settings, principal=who) as ctx:
        assert ctx.actor == "ana"
        controller = ctx.acting_as("rollout-controller")
        assert (controller.actor, controller.principal) == ("rollout-controller", who)
    with Context.open(settings, principal=who, actor="scheduler") as named:
        assert named.actor == "scheduler"


def test_a_registry_holds_a_context_and_stores_take_either(tmp_path: Path) -> None:
    settings = Settings.for_home(tmp_path / "home")
    with Context.open(settings, principal=Principal("ana", Role.READER, via="test")) as ctx:
        with Registry(context=ctx) as registry:
            assert context_of(registry) is ctx and context_of(ctx) is ctx
            assert (registry.principal.name, registry.actor, registry.meta) == ("ana", "ana", ctx.meta)
            with pytest.raises(PermissionDeniedError):
                registry.allow(Action.REGISTER, "fraud")
        assert registry.list_models() == []  # a context given to a registry stays open after it


def test_the_system_context_acts_as_an_admin_under_its_own_name(tmp_path: Path) -> None:
    settings = Settings.for_home(tmp_path / "home")
    with Registry(settings) as registry:
        system = Context.system(settings, registry.meta, actor="server")
        system.allow(Action.FEEDBACK)
        system.allow(Action.MANAGE_KEYS)
        assert (system.actor, system.principal.role, system.principal.via) == ("server", Role.ADMIN, "system")
