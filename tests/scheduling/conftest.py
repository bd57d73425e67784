"""The scheduling tests' store of schedules, acting as the registry's principal (the local admin)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import update

from shipyard import Registry
from shipyard.scheduling.schedules import Schedules
from shipyard.security.context import Context
from shipyard.store.metadata import utcnow
from shipyard.store.schema import schedules as schedules_table


@pytest.fixture
def schedules(registry: Registry) -> Schedules:
    return Schedules(Context(registry.settings, registry.meta, registry.principal, "tester"))


@pytest.fixture
def backdate() -> Callable[[Schedules, str, int], None]:
    """Pretend a schedule was added some days ago (and never run since)."""

    def backdate(schedules: Schedules, name: str, days: int) -> None:
        schedules.context.meta.write(
            lambda conn: conn.execute(
                update(schedules_table)
                .where(schedules_table.c.name == name)
                .values(created_at=utcnow() - timedelta(days=days))
            )
        )

    return backdate
