"""The role x action matrix: the table itself, then every role through the real Python API and CLI.

Each role gets an API key; a registry opened with it (`SHIPYARD_API_KEY`) performs one real
call per action. Allowed calls go through; denied ones raise `PermissionDeniedError` naming the
role needed, change nothing, and leave a `denied` entry in the audit log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shipyard import Deployments, Plan, Registry, Rollouts, Settings
from shipyard.cli.app import main
from shipyard.errors import PermissionDeniedError
from shipyard.security.access import ACTIONS, Action, Principal, Role, authorize
from shipyard.security.audit import AuditLog
from shipyard.security.keys import Keys
from shipyard.security.signing import SigningKey

SIGNER = SigningKey(Ed25519PrivateKey.generate())


def test_the_table_allows_each_action_from_its_role_up() -> None:
    for role in Role:
        for action, least in ACTIONS.items():
            principal = Principal("p", role)
            if role >= least:
                authorize(principal, action, "fraud")
            else:
                with pytest.raises(PermissionDeniedError, match=f"needs the {least} role"):
                    authorize(principal, action, "fraud")


def test_a_scoped_principal_acts_only_on_its_models() -> None:
    scoped = Principal("bot", Role.ADMIN, ("fraud*",))
    authorize(scoped, Action.DELETE, "fraud-eu")
    with pytest.raises(PermissionDeniedError, match="limited to models fraud\\*"):
        authorize(scoped, Action.PREDICT, "churn")
    with pytest.raises(PermissionDeniedError, match="actions on no single model"):
        authorize(scoped, Action.MANAGE_KEYS)
    authorize(scoped, Action.READ)  # listings: filtered to its models


@pytest.fixture
def world(tmp_path: Path, credit: pd.DataFrame, credit_pipeline: Any) -> tuple[Settings, dict[str, str]]:
    """A registry with credit:1 (alias staging, a deployment), credit:2 and 3, and a key per role."""
    settings = replace(Settings.for_home(tmp_path / "home"), protected_aliases=())
    with Registry(settings, actor="admin") as registry:
        registry.register(
            credit_pipeline, name="credit", train_data=credit, target="default", alias="staging"
        )
        registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
        registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
        Deployments(registry).create("credit-api", "credit:1")
        keys = Keys(registry)
        secrets = {str(role): keys.create(f"{role}-key", role=role).secret for role in Role}
    return settings, secrets


CANARY = Plan(strategy="canary", steps=(50, 100))
CALLS: dict[Action, Callable[[Registry, Any], object]] = {
    Action.READ: lambda reg, _: reg.get("credit:1"),
    Action.PREDICT: lambda reg, _: reg.load("credit:1"),
    Action.REGISTER: lambda reg, data: reg.register(
        data[1], name="credit", train_data=data[0], target="default"
    ),
    Action.EDIT: lambda reg, _: reg.set_tag("credit:1", "team", "risk"),
    Action.MOVE_ALIAS: lambda reg, _: reg.set_alias("credit:2", "staging"),
    Action.EVALUATE: lambda reg, _: reg.results.add_gate_result(
        "credit:2", alias="production", champion_version=None, policy_digest="0" * 64, passed=True, body={}
    ),
    Action.DEPLOY: lambda reg, _: Deployments(reg).create("credit-api-2", "credit:1"),
    Action.ROLLOUT: lambda reg, _: Rollouts(reg).start(
        "credit-api", "credit:2", Plan(strategy="canary", steps=(50, 100))
    ),
    Action.ARCHIVE: lambda reg, _: reg.archive("credit:3"),
    Action.SIGN: lambda reg, _: reg.signatures.sign("credit:1", SIGNER),
    Action.OVERRIDE_GATES: lambda reg, _: reg.set_alias("credit:1", "staging", force=True, reason="test"),
    Action.DELETE: lambda reg, _: reg.delete("credit:3"),
}
# The actions only the CLI offers (its commands ask the registry, like the Python API's calls).
CLI_ONLY = {
    Action.FEEDBACK, Action.SCHEDULE, Action.MANAGE_KEYS, Action.AUDIT, Action.ROTATE_KEYS,
    Action.RUN_COMMANDS,
}  # fmt: skip


def test_the_python_api_and_the_cli_walk_every_action_between_them() -> None:
    walked = set(CALLS) | {action for _, action in CLI_CALLS}
    assert walked == set(Action)
    assert {action for _, action in CLI_CALLS} >= CLI_ONLY


@pytest.mark.parametrize("role", list(Role), ids=str)
def test_every_role_through_the_python_api(
    world: tuple[Settings, dict[str, str]], credit: pd.DataFrame, credit_pipeline: Any, role: Role
) -> None:
    settings, secrets = world
    acting = replace(settings, api_key=secrets[str(role)])
    for action, call in CALLS.items():
        with Registry(acting) as registry, Registry(settings) as admin:
            assert registry.actor == f"{role}-key"
            head = AuditLog(admin).head()  # reading the audit log is an admin's action
            if role >= ACTIONS[action]:
                call(registry, (credit, credit_pipeline))
                continue
            with pytest.raises(PermissionDeniedError, match=f"needs the {ACTIONS[action]} role"):
                call(registry, (credit, credit_pipeline))
            after = AuditLog(admin).list(limit=2)
            assert after[0].seq == head[0] + 1 and after[0].action == "denied"  # and nothing else
            assert after[0].actor == f"{role}-key" and after[0].detail["action"] == str(action)


CLI_CALLS = [
    (["keys", "list"], Action.MANAGE_KEYS),
    (["keys", "create", "--name", "made-by-{role}", "--role", "reader"], Action.MANAGE_KEYS),
    (["audit", "verify"], Action.AUDIT),
    (["audit", "list"], Action.AUDIT),
    (["schedule", "add", "nightly-{role}", "--cron", "0 2 * * *", "--", "gates", "--help"], Action.SCHEDULE),
    (
        [
            "schedule",
            "add",
            "retrain-{role}",
            "--cron",
            "0 2 * * *",
            "--",
            "monitor",
            "watch",
            "credit",
            "--on-drift",
            "true",
        ],
        Action.RUN_COMMANDS,
    ),
    (["feedback", "load", "{labels}"], Action.FEEDBACK),
    (["encryption", "rotate", "--new-key-file", "{key}"], Action.ROTATE_KEYS),
    (["batch", "list"], Action.READ),
    (["models", "show", "credit:1", "--json"], Action.READ),
    (["models", "tag", "credit:1", "owner={role}"], Action.EDIT),
    (["deploy", "create", "api-{role}", "--model", "credit:1"], Action.DEPLOY),
    (["models", "archive", "credit:2"], Action.ARCHIVE),
    (["explain", "show", "never-answered", "--model", "credit"], Action.READ_LOGS),
]


def _log_request(settings: Settings, request_id: str) -> None:
    """One request answered by credit:1 in the prediction log, to be labelled."""
    import time

    from shipyard.datasets import make_credit
    from shipyard.monitoring.events import EventBatch, EventLog

    with Registry(settings, actor="admin") as registry:
        loaded = registry.load("credit:1")
    batch = loaded.validate(make_credit(1, seed=2).drop(columns=["default"])).batch
    log = EventLog(settings.store_url)
    log.append(
        EventBatch(
            time=time.time(), model="credit", version=1, request_ids=[request_id], rows=[1],
            protocols=["rest"], latencies_ms=[1.0], statuses=["ok"], errors=[None], features=batch,
            predictions=loaded.predict_valid(batch),
        )
    )  # fmt: skip
    log.flush()


@pytest.mark.parametrize(
    ("args", "action"), CLI_CALLS, ids=[" ".join(a[:2]) + f" ({x})" for a, x in CLI_CALLS]
)
def test_every_role_through_the_cli(
    world: tuple[Settings, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    action: Action,
) -> None:
    settings, secrets = world
    tmp_path = settings.home.parent
    monkeypatch.setenv("SHIPYARD_HOME", str(settings.home))
    monkeypatch.setenv("SHIPYARD_PROTECTED_ALIASES", "")
    labels, key = tmp_path / "labels.csv", tmp_path / "next.key"
    labels.write_text("request_id,label\nr-1,1\n")
    if action is Action.FEEDBACK:
        _log_request(settings, "r-1")  # labels are checked against the prediction log
    key.write_text("0" * 64)
    for role in Role:
        monkeypatch.setenv("SHIPYARD_API_KEY", secrets[str(role)])
        filled = [a.format(role=role, labels=labels, key=key) for a in args]
        with pytest.raises(SystemExit) as code:
            main(filled)
        err = capsys.readouterr().err
        if role >= ACTIONS[action]:
            # allowed: it gets past the check (rotate then needs a master key, which is unset;
            # no request was answered, so there is no explanation to show)
            assert "role or higher" not in err, err
            assert code.value.code == 0 or "no master key" in err or "no explanation of" in err, err
        else:  # refused by this action's check, or an earlier one (scheduling at all)
            assert code.value.code == 1
            assert "role or higher" in err, err
