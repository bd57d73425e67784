"""Every action of every store the public API exports, with every role, through the Python API.

Each store takes a `Context` and checks its actions itself, so a call is allowed or refused
exactly as the CLI's command for it is. `STORE_ACTIONS` is the table: one row per store method,
the action it needs, and how to call it. A store added to the public API adds its rows here:
`test_every_exported_store_is_in_the_table` finds the exported stores (the classes `shipyard`
exports that take a context), and `test_every_public_method_of_a_store_has_a_row` their methods.

For each row, every role acts in turn, from the weakest, on a copy of one prepared world:
a role at or above the actions' gets past the checks (the call may still refuse for the
world's state, such as a key name taken by a stronger role's call before it); a role below is
refused with `PermissionDeniedError` for the first action it lacks, and the refusal, and
nothing else, is in the audit log.
"""

from __future__ import annotations

import inspect
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import shipyard
from shipyard import Registry, Settings
from shipyard.batch.jobs import Job, Jobs, UnitDone
from shipyard.errors import PermissionDeniedError, ShipyardError
from shipyard.monitoring.alerts import AlertBook
from shipyard.monitoring.feedback import FeedbackStore, Label
from shipyard.rollout.deployments import Arm, Deployments
from shipyard.rollout.plan import Plan
from shipyard.rollout.rollouts import Rollouts
from shipyard.scheduling.scheduler import Scheduler
from shipyard.scheduling.schedules import Schedules
from shipyard.security.access import ACTIONS, Action, Principal, Role
from shipyard.security.audit import AuditLog
from shipyard.security.context import Context
from shipyard.security.keys import Keys
from shipyard.security.signing import SigningKey, new_signing_key
from shipyard.store.metadata import utcnow


@dataclass(frozen=True)
class World:
    """What the calls need besides the context: training data, a model, a signing key, a
    stopped batch job and a running run of the schedule 'nightly'."""

    credit: pd.DataFrame
    pipeline: Any
    signer: SigningKey
    job: Job
    run: int


Call = Callable[[Context, World], object]


@dataclass(frozen=True)
class StoreAction:
    """One method of one exported store, the action it needs, and a call of it.

    `checked_before` are actions the method checks before `needs` (adding a schedule of a
    command that runs code needs `schedule`, then `run-commands`).
    """

    store: str
    method: str
    needs: Action
    call: Call
    checked_before: tuple[Action, ...] = ()

    def lacking(self, role: Role) -> list[Action]:
        """The actions `role` may not do, in the order the method checks them."""
        return [action for action in (*self.checked_before, self.needs) if role < ACTIONS[action]]


def _registry(ctx: Context) -> Registry:
    return Registry(context=ctx)


def _rollout(ctx: Context) -> Any:
    """The newest rollout of the world's deployment, as an admin sees it."""
    with _admin(ctx.settings) as admin:
        found = Rollouts(admin).current("credit-api")
    assert found is not None
    return found


def _version(ctx: Context, ref: str) -> Any:
    """A version, as an admin reads it."""
    with _admin(ctx.settings) as admin:
        return _registry(admin).get(ref)


def _admin(settings: Settings) -> Context:
    return Context.open(settings, principal=Principal("admin-user", Role.ADMIN, via="test"))


CANARY = Plan(strategy="canary", steps=(50, 100))

STORE_ACTIONS: list[StoreAction] = [
    # Registry and its parts
    StoreAction("Registry", "get", Action.READ, lambda c, w: _registry(c).get("credit:1")),
    StoreAction("Registry", "load", Action.PREDICT, lambda c, w: _registry(c).load("credit:1")),
    StoreAction("Registry", "get_model", Action.READ, lambda c, w: _registry(c).get_model("credit")),
    StoreAction("Registry", "list_models", Action.READ, lambda c, w: _registry(c).list_models()),
    StoreAction("Registry", "versions", Action.READ, lambda c, w: _registry(c).versions("credit")),
    StoreAction("Registry", "history", Action.READ, lambda c, w: _registry(c).history("credit")),
    StoreAction(
        "Registry",
        "register",
        Action.REGISTER,
        lambda c, w: _registry(c).register(w.pipeline, name="credit", train_data=w.credit, target="default"),
    ),
    StoreAction(
        "Registry",
        "register_file",
        Action.REGISTER,
        lambda c, w: _registry(c).register_file("no-such-model.skops", name="credit"),
    ),
    StoreAction(
        "Registry",
        "edit_contract",
        Action.EDIT,
        lambda c, w: _registry(c).edit_contract("credit:1", _registry(c).get("credit:1").contract),
    ),
    StoreAction(
        "Aliases", "set", Action.MOVE_ALIAS, lambda c, w: _registry(c).aliases.set("credit:2", "staging")
    ),
    StoreAction(
        "Aliases",
        "set (force)",
        Action.OVERRIDE_GATES,
        lambda c, w: _registry(c).aliases.set("credit:2", "production", force=True, reason="test"),
    ),
    StoreAction(
        "Aliases", "remove", Action.MOVE_ALIAS, lambda c, w: _registry(c).aliases.remove("credit", "staging")
    ),
    StoreAction(
        "Aliases",
        "remove (force)",
        Action.OVERRIDE_GATES,
        lambda c, w: _registry(c).aliases.remove("credit", "staging", force=True, reason="test"),
    ),
    StoreAction("Tags", "set", Action.EDIT, lambda c, w: _registry(c).tags.set("credit:1", "team", "risk")),
    StoreAction("Tags", "remove", Action.EDIT, lambda c, w: _registry(c).tags.remove("credit:1", "owner")),
    StoreAction("Tags", "describe", Action.EDIT, lambda c, w: _registry(c).tags.describe("credit", "text")),
    StoreAction(
        "Results",
        "add_evaluation",
        Action.EVALUATE,
        lambda c, w: _registry(c).results.add_evaluation(
            "credit:1", data_fingerprint="0" * 64, rows=1, body={}
        ),
    ),
    StoreAction(
        "Results", "evaluations", Action.READ, lambda c, w: _registry(c).results.evaluations("credit:1")
    ),
    StoreAction(
        "Results",
        "add_gate_result",
        Action.EVALUATE,
        lambda c, w: _registry(c).results.add_gate_result(
            "credit:2",
            alias="production",
            champion_version=None,
            policy_digest="0" * 64,
            passed=True,
            body={},
        ),
    ),
    StoreAction(
        "Results", "gate_results", Action.READ, lambda c, w: _registry(c).results.gate_results("credit")
    ),
    StoreAction(
        "Signatures", "sign", Action.SIGN, lambda c, w: _registry(c).signatures.sign("credit:1", w.signer)
    ),
    StoreAction(
        "Signatures",
        "list",
        Action.READ,
        lambda c, w: _registry(c).signatures.list(_version(c, "credit:1")),
    ),
    StoreAction(
        "Signatures",
        "verify",
        Action.READ,
        lambda c, w: _registry(c).signatures.verify(_version(c, "credit:1")),
    ),
    StoreAction(
        "Lifecycle", "archive", Action.ARCHIVE, lambda c, w: _registry(c).lifecycle.archive("credit:3")
    ),
    StoreAction(
        "Lifecycle", "restore", Action.ARCHIVE, lambda c, w: _registry(c).lifecycle.restore("credit:3")
    ),
    StoreAction("Lifecycle", "delete", Action.DELETE, lambda c, w: _registry(c).lifecycle.delete("credit:3")),
    # Keys
    StoreAction("Keys", "create", Action.MANAGE_KEYS, lambda c, w: Keys(c).create("ci-bot", role="reader")),
    StoreAction("Keys", "list", Action.MANAGE_KEYS, lambda c, w: Keys(c).list()),
    StoreAction("Keys", "get", Action.MANAGE_KEYS, lambda c, w: Keys(c).get("old-bot")),
    StoreAction("Keys", "revoke", Action.MANAGE_KEYS, lambda c, w: Keys(c).revoke("old-bot", reason="test")),
    # AuditLog
    StoreAction("AuditLog", "list", Action.AUDIT, lambda c, w: AuditLog(c).list()),
    StoreAction("AuditLog", "head", Action.AUDIT, lambda c, w: AuditLog(c).head()),
    StoreAction("AuditLog", "verify", Action.AUDIT, lambda c, w: AuditLog(c).verify()),
    # FeedbackStore
    StoreAction(
        "FeedbackStore",
        "add",
        Action.FEEDBACK,
        lambda c, w: FeedbackStore(c).add([Label("r-1", 0, 1)], source="test"),
    ),
    StoreAction("FeedbackStore", "labels", Action.READ, lambda c, w: FeedbackStore(c).labels()),
    StoreAction("FeedbackStore", "count", Action.READ, lambda c, w: FeedbackStore(c).count()),
    # AlertBook
    StoreAction("AlertBook", "observe", Action.READ, lambda c, w: AlertBook(c).observe("credit", [], [])),
    StoreAction("AlertBook", "list", Action.READ, lambda c, w: AlertBook(c).list(model="credit")),
    # Deployments
    StoreAction(
        "Deployments", "create", Action.DEPLOY, lambda c, w: Deployments(c).create("api-2", "credit:1")
    ),
    StoreAction("Deployments", "get", Action.READ, lambda c, w: Deployments(c).get("credit-api")),
    StoreAction(
        "Deployments", "generation", Action.READ, lambda c, w: Deployments(c).generation("credit-api")
    ),
    StoreAction("Deployments", "list", Action.READ, lambda c, w: Deployments(c).list()),
    StoreAction(
        "Deployments",
        "set_arms",
        Action.DEPLOY,
        lambda c, w: Deployments(c).set_arms("plain-api", [Arm(1, "stable", 100.0)], reason="test"),
    ),
    StoreAction("Deployments", "delete", Action.DEPLOY, lambda c, w: Deployments(c).delete("plain-api")),
    # Rollouts
    StoreAction("Rollouts", "current", Action.READ, lambda c, w: Rollouts(c).current("credit-api")),
    StoreAction("Rollouts", "active", Action.READ, lambda c, w: Rollouts(c).active()),
    StoreAction("Rollouts", "history", Action.READ, lambda c, w: Rollouts(c).history("credit-api")),
    StoreAction(
        "Rollouts", "start", Action.ROLLOUT, lambda c, w: Rollouts(c).start("plain-api", "credit:2", CANARY)
    ),
    StoreAction("Rollouts", "pause", Action.ROLLOUT, lambda c, w: Rollouts(c).pause("credit-api")),
    StoreAction("Rollouts", "resume", Action.ROLLOUT, lambda c, w: Rollouts(c).resume("credit-api")),
    StoreAction("Rollouts", "promote", Action.ROLLOUT, lambda c, w: Rollouts(c).promote("credit-api")),
    StoreAction("Rollouts", "abort", Action.ROLLOUT, lambda c, w: Rollouts(c).abort("credit-api")),
    StoreAction(
        "Rollouts", "advance", Action.ROLLOUT, lambda c, w: Rollouts(c).advance(_rollout(c), verdict={})
    ),
    StoreAction(
        "Rollouts",
        "roll_back",
        Action.ROLLOUT,
        lambda c, w: Rollouts(c).roll_back(_rollout(c), reason="test", verdict={}),
    ),
    StoreAction("Rollouts", "note", Action.ROLLOUT, lambda c, w: Rollouts(c).note(_rollout(c), "wait", {})),
    # Jobs
    StoreAction(
        "Jobs",
        "create",
        Action.PREDICT,
        lambda c, w: Jobs(c).create(
            ref="credit:1", model="credit", version=1, sources=[], output="memory://o", options={}
        ),
    ),
    StoreAction("Jobs", "get", Action.READ, lambda c, w: Jobs(c).get(w.job.id)),
    StoreAction("Jobs", "list", Action.READ, lambda c, w: Jobs(c).list()),
    StoreAction("Jobs", "claim", Action.PREDICT, lambda c, w: Jobs(c).claim(w.job.id)),
    StoreAction(
        "Jobs", "unit_done", Action.PREDICT, lambda c, w: Jobs(c).unit_done(w.job, UnitDone(0, 0, 10, 9, 1))
    ),
    StoreAction(
        "Jobs", "finish", Action.PREDICT, lambda c, w: Jobs(c).finish(w.job, "failed", "stopped again")
    ),
    # Schedules, and the scheduler that runs them
    StoreAction(
        "Schedules",
        "add",
        Action.SCHEDULE,
        lambda c, w: Schedules(c).add("mine", "0 3 * * *", ["batch", "list"]),
    ),
    StoreAction(
        "Schedules",
        "add (a command that runs code)",
        Action.RUN_COMMANDS,
        lambda c, w: Schedules(c).add(
            "retrain", "0 4 * * *", ["monitor", "watch", "credit", "--on-drift", "true"]
        ),
        checked_before=(Action.SCHEDULE,),
    ),
    StoreAction("Schedules", "get", Action.READ, lambda c, w: Schedules(c).get("nightly")),
    StoreAction("Schedules", "list", Action.READ, lambda c, w: Schedules(c).list()),
    StoreAction("Schedules", "runs", Action.READ, lambda c, w: Schedules(c).runs("nightly")),
    StoreAction("Schedules", "claim", Action.SCHEDULE, lambda c, w: Schedules(c).claim("nightly", utcnow())),
    StoreAction(
        "Schedules",
        "finish",
        Action.SCHEDULE,
        lambda c, w: Schedules(c).finish(w.run, exit_code=0, output=""),
    ),
    StoreAction("Schedules", "remove", Action.SCHEDULE, lambda c, w: Schedules(c).remove("nightly")),
    StoreAction("Scheduler", "start", Action.SCHEDULE, lambda c, w: Scheduler(Schedules(c))),
]

# The stores `shipyard` exports: its classes that take a context and check roles (the
# registry's parts are reached through it).
EXPORTED_STORES = {
    name
    for name in shipyard.__all__
    if inspect.isclass(store := getattr(shipyard, name))
    and not issubclass(store, BaseException)
    and "context" in inspect.signature(store).parameters
}

# Each exported store but the registry (whose parts are reached through it), by name.
STORES: dict[str, type] = {name: getattr(shipyard, name) for name in EXPORTED_STORES - {"Registry"}}


def test_every_exported_store_is_in_the_table() -> None:
    some = {"Registry", "Keys", "AuditLog", "FeedbackStore", "AlertBook", "Deployments", "Rollouts"}
    assert some | {"Jobs", "Schedules"} <= EXPORTED_STORES
    assert {row.store for row in STORE_ACTIONS} >= EXPORTED_STORES


def test_every_public_method_of_a_store_has_a_row() -> None:
    """Every action a store offers is walked (not the steps that run inside a caller's
    transaction, given its connection, such as `Deployments.write_arms`)."""
    for name, store in STORES.items():
        public = {
            method
            for method, function in vars(store).items()
            if not method.startswith("_")
            and inspect.isfunction(function)
            and "conn" not in inspect.signature(function).parameters
        }
        walked = {row.method.split(" (")[0] for row in STORE_ACTIONS if row.store == name}
        assert public == walked, name


@pytest.fixture(scope="module")
def prepared(
    tmp_path_factory: pytest.TempPathFactory, credit: pd.DataFrame, credit_pipeline: Any
) -> tuple[Path, World]:
    """A home with credit:1..3 (credit:1 tagged and behind 'staging'), a key, two deployments
    ('credit-api' with a canary rollout of credit:2 running, 'plain-api' with none), a failed
    (resumable) batch job, the schedule 'nightly' with a run going, and a signing key."""
    root = tmp_path_factory.mktemp("store-roles")
    new_signing_key(root / "signing.pem")
    with Registry(Settings.for_home(root / "home"), actor="admin-user") as reg:
        for number in range(3):
            reg.register(
                credit_pipeline,
                name="credit",
                train_data=credit,
                target="default",
                alias="staging" if number == 0 else None,
            )
        reg.set_tag("credit:1", "owner", "ana")
        Keys(reg).create("old-bot", role="reader")
        Deployments(reg).create("credit-api", "credit:1")
        Deployments(reg).create("plain-api", "credit:1")
        Rollouts(reg).start("credit-api", "credit:2", CANARY)
        job = Jobs(reg).create(
            ref="credit:1", model="credit", version=1, sources=[], output="memory://out", options={}
        )
        job = Jobs(reg).finish(job, "failed", "stopped")
        Schedules(reg).add("nightly", "0 2 * * *", ["batch", "list"])
        run = Schedules(reg).claim("nightly", utcnow() - timedelta(days=1))
        assert run is not None
    signer = SigningKey.from_file(root / "signing.pem")
    return root / "home", World(credit, credit_pipeline, signer, job, run.id)


@pytest.mark.parametrize("row", STORE_ACTIONS, ids=[f"{r.store}.{r.method}" for r in STORE_ACTIONS])
def test_every_role_on_every_store_action(
    prepared: tuple[Path, World], tmp_path: Path, row: StoreAction
) -> None:
    template, world = prepared
    shutil.copytree(template, tmp_path / "home")
    settings = Settings.for_home(tmp_path / "home")
    with _admin(settings) as admin:
        log = AuditLog(admin)
        for role in Role:  # the weakest first: a refused call must find the world as prepared
            who = Principal(f"{role}-user", role, via="test")
            with Context.open(settings, principal=who) as ctx:
                head, _ = log.head()
                lacking = row.lacking(role)
                if not lacking:
                    try:
                        row.call(ctx, world)
                    except PermissionDeniedError:
                        raise
                    except ShipyardError:
                        pass  # past the check; refused for the world's state, as it is now
                    continue
                refusal = f"may not {lacking[0]}.*needs the {ACTIONS[lacking[0]]} role"
                with pytest.raises(PermissionDeniedError, match=refusal):
                    row.call(ctx, world)
                [denied] = log.list(limit=1)
                assert denied.seq == head + 1, "the refusal, and nothing else, is in the audit log"
                assert (denied.action, denied.actor) == ("denied", who.name)
                assert denied.detail["action"] == str(lacking[0])
                assert denied.detail["role"] == str(role)
