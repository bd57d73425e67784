"""Settings, and the one place that reads them from the environment.

Keys: `SHIPYARD_HOME` (default `./.shipyard`), `SHIPYARD_DB_URL` (default SQLite in the home),
`SHIPYARD_STORE_URL` (default the `artifacts` folder in the home; any fsspec URL).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shipyard.errors import ConfigError

__all__ = ["Settings"]

_DB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Where Shipyard keeps its metadata and artifacts.

    Args:
        home: the folder for embedded state (SQLite file, artifacts) when no URL says otherwise.
        db_url: a SQLAlchemy URL for the metadata store.
        store_url: an fsspec URL or local path for the artifact store.
        db_timeout: seconds a writer waits for a lock another process holds.
    """

    home: Path
    db_url: str
    store_url: str
    db_timeout: float = 30.0

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
                f"SHIPYARD_DB_URL is {db_url!r}; expected a SQLAlchemy URL starting with one of "
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
        return cls(home=base.home, db_url=db_url, store_url=store_url, db_timeout=db_timeout)
