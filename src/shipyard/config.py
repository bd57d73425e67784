"""Settings, and the one place that reads them from the environment.

Keys: `SHIPYARD_HOME` (default `./.shipyard`), `SHIPYARD_DB_URL` (default SQLite in the home),
`SHIPYARD_STORE_URL` (default the `artifacts` folder in the home; any fsspec URL),
`SHIPYARD_DB_TIMEOUT` (seconds, default 30), `SHIPYARD_PROTECTED_ALIASES` (comma-separated,
default `production`; empty for none), `SHIPYARD_GATES_POLICY` (a gates policy file that every
promotion of a protected alias must have passed), `SHIPYARD_API_KEY` (the API key the CLI and
Python API act with; without one, local use is the admin), `SHIPYARD_ENCRYPTION_KEY` or
`SHIPYARD_ENCRYPTION_KEY_FILE` (the master key for encryption at rest),
`SHIPYARD_ENCRYPTION_PREVIOUS_KEYS` (older or upcoming master keys, keys or key files separated
by ',', that open objects but never seal new ones: for a rotation), `SHIPYARD_TRUSTED_KEYS`
(Ed25519 public keys, PEM files or folders, separated by ':') and `SHIPYARD_REQUIRE_SIGNATURE`
(1 to load only versions those keys signed), `SHIPYARD_MASKING_KEY` (the secret of the keyed
hash of pii values in logs; by default a key file in the home), `SHIPYARD_RUN_AS` (set by the
scheduler: the principal that added a schedule, which its runs act as; it can only narrow what
the CLI may do), `SHIPYARD_SCHEDULED_FOR` (set by the scheduler: the time, ISO 8601, a run was
due for; `batch run` dates `{today}` and `{yesterday}` by it), `SHIPYARD_FILE_MODE` (the mode of
the metadata file, artifacts and prediction-log segments on a local disk: octal, default 0600,
folders to match; `umask` to leave it to the umask).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from shipyard.errors import ConfigError

__all__ = ["Settings", "hide_password"]

_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_DB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")
_PASSWORD = re.compile(r"(://[^/:@]*:)[^@/]*@")  # the password of a URL, never shown


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Where Shipyard keeps its metadata and artifacts.

    Args:
        home: the folder for embedded state (SQLite file, artifacts) when no URL says otherwise.
        db_url: a SQLAlchemy URL for the metadata store.
        store_url: an fsspec URL or local path for the artifact store.
        db_timeout: seconds a writer waits for a lock another process holds.
        protected_aliases: aliases that move only to a version with a passing gate result.
        gates_policy: when set, the policy file a protected alias's gate result must be for.
        api_key: the API key the CLI and Python API act with; its role and model scope are
            checked on every action, and its name is the actor in the audit log. Never shown.
        encryption_key: the master key for encryption at rest (64 hex characters or base64);
            new artifacts and prediction-log segments are encrypted under it. Never shown.
        encryption_key_file: a file holding the master key, instead of `encryption_key`.
        encryption_previous_keys: more master keys (hex, base64 or a key file's path) that open
            objects but seal none: the old key after a rotation, or the next one before it.
        trusted_keys: Ed25519 public keys (PEM files or folders of them) whose signatures loads accept.
        require_signature: load only versions signed by a trusted key.
        masking_key: the secret of the keyed hash of pii values; by default a key file in the home.
        run_as: the principal (as JSON) a scheduled run acts as: the one that added the schedule.
            It narrows the CLI's own principal (the key's, or local admin) and never widens it.
        scheduled_for: the time a scheduled run was due for (UTC), set by the scheduler; None
            outside a scheduled run. A missed run started late still works on its own day's data.
        file_mode: the mode of new local files holding models, metadata and logged predictions
            (folders made for them get the matching mode: 0600 gives 0700); None leaves it to
            the umask.
    """

    home: Path
    db_url: str
    store_url: str
    db_timeout: float = 30.0
    protected_aliases: tuple[str, ...] = ("production",)
    gates_policy: Path | None = None
    api_key: str | None = field(default=None, repr=False)
    encryption_key: str | None = field(default=None, repr=False)
    encryption_key_file: Path | None = None
    encryption_previous_keys: tuple[str, ...] = field(default=(), repr=False)
    trusted_keys: tuple[Path, ...] = ()
    require_signature: bool = False
    masking_key: str | None = field(default=None, repr=False)
    run_as: str | None = None
    scheduled_for: datetime | None = None
    file_mode: int | None = 0o600

    @classmethod
    def for_home(cls, home: str | os.PathLike[str]) -> Settings:
        """Embedded defaults under one folder: SQLite metadata and a local artifact folder."""
        root = Path(home).expanduser().absolute()
        return cls(
            home=root,
            db_url=f"sqlite:///{root / 'shipyard.db'}",
            store_url=str(root / "artifacts"),
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from the environment (or the mapping given).

        Raises:
            ConfigError: a URL has a scheme Shipyard cannot use.
        """
        env = os.environ if environ is None else environ
        base = cls.for_home(env.get("SHIPYARD_HOME") or ".shipyard")
        db_url = env.get("SHIPYARD_DB_URL") or base.db_url
        scheme = db_url.split(":", 1)[0].split("+", 1)[0].lower()
        if scheme not in _DB_SCHEMES:
            raise ConfigError(
                f"SHIPYARD_DB_URL is {hide_password(db_url)!r}; expected a SQLAlchemy URL "
                "starting with one of "
                f"{', '.join(s + '://' for s in _DB_SCHEMES)}"
            )
        if db_url.startswith(("postgresql://", "postgres://")):
            # psycopg 3 is the driver we ship in the `postgres` extra.
            db_url = "postgresql+psycopg://" + db_url.split("://", 1)[1]
        store_url = env.get("SHIPYARD_STORE_URL") or base.store_url
        timeout = env.get("SHIPYARD_DB_TIMEOUT") or "30"
        try:
            db_timeout = float(timeout)
        except ValueError:
            raise ConfigError(
                f"SHIPYARD_DB_TIMEOUT is {timeout!r}; expected a number of seconds (e.g. 30)"
            ) from None
        protected = env.get("SHIPYARD_PROTECTED_ALIASES")
        aliases = (
            base.protected_aliases
            if protected is None
            else tuple(a.strip() for a in protected.split(",") if a.strip())
        )
        for alias in aliases:
            if not _ALIAS.fullmatch(alias):
                raise ConfigError(
                    f"SHIPYARD_PROTECTED_ALIASES holds {alias!r}; expected alias names (letters, "
                    "digits, '-' and '_', starting with a letter) separated by commas"
                )
        policy = env.get("SHIPYARD_GATES_POLICY")
        key_file = env.get("SHIPYARD_ENCRYPTION_KEY_FILE")
        trusted = env.get("SHIPYARD_TRUSTED_KEYS") or ""
        previous = env.get("SHIPYARD_ENCRYPTION_PREVIOUS_KEYS") or ""
        if key_file and env.get("SHIPYARD_ENCRYPTION_KEY"):
            raise ConfigError(
                "both SHIPYARD_ENCRYPTION_KEY and SHIPYARD_ENCRYPTION_KEY_FILE are set; set one of them"
            )
        return cls(
            home=base.home,
            db_url=db_url,
            store_url=store_url,
            db_timeout=db_timeout,
            protected_aliases=aliases,
            gates_policy=Path(policy).expanduser().absolute() if policy else None,
            api_key=env.get("SHIPYARD_API_KEY") or None,
            encryption_key=env.get("SHIPYARD_ENCRYPTION_KEY") or None,
            encryption_key_file=Path(key_file).expanduser().absolute() if key_file else None,
            encryption_previous_keys=tuple(k.strip() for k in previous.split(",") if k.strip()),
            trusted_keys=tuple(Path(p).expanduser().absolute() for p in trusted.split(os.pathsep) if p),
            require_signature=_flag(env, "SHIPYARD_REQUIRE_SIGNATURE"),
            masking_key=env.get("SHIPYARD_MASKING_KEY") or None,
            run_as=env.get("SHIPYARD_RUN_AS") or None,
            scheduled_for=_moment(env, "SHIPYARD_SCHEDULED_FOR"),
            file_mode=_file_mode(env.get("SHIPYARD_FILE_MODE")),
        )


def hide_password(url: str) -> str:
    """`url` with its password, if it has one, shown as ***."""
    return _PASSWORD.sub(r"\1***@", url)


def _file_mode(value: str | None) -> int | None:
    if value is None or not value.strip():
        return 0o600
    text = value.strip().lower()
    if text == "umask":
        return None
    try:
        mode = int(text.removeprefix("0o"), 8)
    except ValueError:
        mode = -1
    if mode & ~0o666 or mode & 0o600 != 0o600:
        raise ConfigError(
            f"SHIPYARD_FILE_MODE is {value!r}; expected an octal file mode that lets the owner read "
            "and write and sets no execute bits (0600, the default; 0640 or 0660 to share with the "
            "group), or 'umask' to leave modes to the umask"
        )
    return mode


def _moment(env: Mapping[str, str], key: str) -> datetime | None:
    value = (env.get(key) or "").strip()
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{key} is {value!r}; expected an ISO 8601 time such as '2026-12-05T02:00:00+00:00'"
        ) from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _flag(env: Mapping[str, str], key: str) -> bool:
    value = (env.get(key) or "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{key} is {value!r}; expected 1 or 0 (true or false)")
