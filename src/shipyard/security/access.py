"""Who may do what: principals, roles, actions, and the one function that decides.

Every entry point (the CLI and Python API through the registry, REST and gRPC through the
serving service) asks `authorize(principal, action, model)` before it acts; nothing else
decides. Roles are ordered, each allowing everything the one below it does:

    reader     read models, versions, evaluations, deployments, jobs and reports
    predictor  + predict (online and batch) and send labels
    deployer   + register versions, move aliases (protected ones too), deploy and roll out,
               evaluate, record gates, sign versions, schedule jobs, archive
    admin      + delete versions, override gates, manage API keys, read and verify the
               audit log, rotate encryption keys, schedule commands that run code or call
               out (a retraining command, webhooks, pickles)

A principal may be scoped to model name patterns (`fraud*`); an action on another model is
denied, and actions that concern no model (keys, the audit log) need an unscoped principal,
except reading, predicting, labels and scheduling (whose runs act as the principal).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from shipyard.errors import ConfigError, PermissionDeniedError

__all__ = ["ACTIONS", "Action", "Principal", "Role", "authorize", "check_patterns", "parse_role"]


class Role(IntEnum):
    """What a principal may do; each role includes the ones below it."""

    READER = 1
    PREDICTOR = 2
    DEPLOYER = 3
    ADMIN = 4

    def __str__(self) -> str:
        return self.name.lower()


class Action(StrEnum):
    """Everything Shipyard checks, by the least role it needs (see `ACTIONS`)."""

    READ = "read"
    PREDICT = "predict"
    FEEDBACK = "feedback"
    READ_LOGS = "read-logs"
    REGISTER = "register"
    EDIT = "edit"
    MOVE_ALIAS = "move-alias"
    EVALUATE = "evaluate"
    DEPLOY = "deploy"
    ROLLOUT = "rollout"
    SIGN = "sign"
    SCHEDULE = "schedule"
    ARCHIVE = "archive"
    DELETE = "delete"
    OVERRIDE_GATES = "override-gates"
    MANAGE_KEYS = "manage-keys"
    AUDIT = "audit"
    ROTATE_KEYS = "rotate-keys"
    RUN_COMMANDS = "run-commands"


ACTIONS: dict[Action, Role] = {
    Action.READ: Role.READER,
    Action.PREDICT: Role.PREDICTOR,
    Action.FEEDBACK: Role.PREDICTOR,
    Action.READ_LOGS: Role.DEPLOYER,
    Action.REGISTER: Role.DEPLOYER,
    Action.EDIT: Role.DEPLOYER,
    Action.MOVE_ALIAS: Role.DEPLOYER,
    Action.EVALUATE: Role.DEPLOYER,
    Action.DEPLOY: Role.DEPLOYER,
    Action.ROLLOUT: Role.DEPLOYER,
    Action.SIGN: Role.DEPLOYER,
    Action.SCHEDULE: Role.DEPLOYER,
    Action.ARCHIVE: Role.DEPLOYER,
    Action.DELETE: Role.ADMIN,
    Action.OVERRIDE_GATES: Role.ADMIN,
    Action.MANAGE_KEYS: Role.ADMIN,
    Action.AUDIT: Role.ADMIN,
    Action.ROTATE_KEYS: Role.ADMIN,
    Action.RUN_COMMANDS: Role.ADMIN,
}

_PATTERN = re.compile(r"[A-Za-z0-9._*?\[\]-]{1,128}")


@dataclass(frozen=True)
class Principal:
    """Who is calling.

    Args:
        name: the key's name, the token's subject, or the OS user for local access.
        role: what it may do.
        models: model name patterns it is limited to (`fraud*`); empty for every model.
        via: how it proved who it is: 'api-key', 'jwt' or 'local'.
        rate: requests per second a server accepts from it; None for the server's default.
    """

    name: str
    role: Role
    models: tuple[str, ...] = field(default=())
    via: str = "local"
    rate: float | None = None

    def may(self, action: Action, model: str | None = None) -> bool:
        """Whether `authorize` would allow the action."""
        if self.role < ACTIONS[action]:
            return False
        if not self.models:
            return True
        if model is None:  # a schedule's runs are checked as this principal, model by model
            return action in (Action.READ, Action.PREDICT, Action.FEEDBACK, Action.SCHEDULE)
        return self.sees(model)

    def sees(self, model: str) -> bool:
        """Whether a listing shows `model` to this principal."""
        return not self.models or any(fnmatch.fnmatchcase(model, p) for p in self.models)

    def within(self, other: Principal) -> bool:
        """Whether this principal may do no more than `other` (same or lower role, and a scope
        inside the other's: every pattern of it is one of the other's, when the other has any)."""
        if self.role > other.role:
            return False
        return not other.models or (bool(self.models) and set(self.models) <= set(other.models))

    def to_dict(self) -> dict[str, object]:
        """The principal as JSON-safe data (for a schedule that runs as it)."""
        return {"name": self.name, "role": str(self.role), "models": list(self.models), "via": self.via}

    @classmethod
    def from_dict(cls, data: object) -> Principal:
        """A principal from `to_dict`'s data.

        Raises:
            ConfigError: the data is not a principal.
        """
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise ConfigError(f"expected a principal like {{'name': ..., 'role': ...}}; got {data!r}")
        models = data.get("models") or []
        if not isinstance(models, list):
            raise ConfigError(f"a principal's models are a list of patterns; got {models!r}")
        return cls(
            data["name"],
            parse_role(str(data.get("role")), where="the principal's role"),
            check_patterns(models),
            via=str(data.get("via") or "local"),
        )

    def __str__(self) -> str:
        scope = f", models {', '.join(self.models)}" if self.models else ""
        return f"{self.name} ({self.role}{scope})"


def authorize(principal: Principal, action: Action, model: str | None = None) -> None:
    """Allow the action or raise; the one place Shipyard decides.

    Raises:
        PermissionDeniedError: the role is below the action's, or the model is outside the
            principal's patterns. The message names both and what would allow it.
    """
    need = ACTIONS[action]
    if principal.role < need:
        target = f" on {model}" if model else ""
        raise PermissionDeniedError(
            f"{principal} may not {action}{target}: that needs the {need} role or higher; "
            f"ask an admin for a key with it ('shipyard keys create --role {need}')"
        )
    if not principal.may(action, model):
        where = f"model {model!r}" if model else "actions on no single model"
        raise PermissionDeniedError(
            f"{principal} may not {action} {where}: its key is limited to models "
            f"{', '.join(principal.models)}"
        )


def parse_role(text: str, *, where: str = "role") -> Role:
    """A role from its name.

    Raises:
        ConfigError: not one of reader, predictor, deployer, admin.
    """
    try:
        return Role[str(text).strip().upper()]
    except KeyError:
        names = ", ".join(str(r) for r in Role)
        raise ConfigError(f"{where} is {text!r}; expected one of {names}") from None


def check_patterns(patterns: Sequence[str]) -> tuple[str, ...]:
    """Model name patterns (`fraud*`, `churn-v?`), checked.

    Raises:
        ConfigError: a pattern holds a character no model name or glob uses.
    """
    for pattern in patterns:
        if not isinstance(pattern, str) or not _PATTERN.fullmatch(pattern):
            raise ConfigError(
                f"model pattern {pattern!r} is not allowed; expected a model name with * ? or [] "
                "wildcards (e.g. 'fraud*')"
            )
    return tuple(patterns)
