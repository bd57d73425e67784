"""Databases left at an older schema revision, for tests of the migrations that follow it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine


def migrations() -> Config:
    """Alembic's configuration for Shipyard's migrations."""
    config = Config()
    config.set_main_option("script_location", "shipyard.store:migrations")
    return config


@contextmanager
def database_at(url: str, revision: str) -> Iterator[Any]:
    """A database at `url` migrated up to `revision` only; a connection to add rows as they
    were then, committed on leaving."""
    config = migrations()
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            yield conn
    finally:
        engine.dispose()
