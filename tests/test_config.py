"""Settings read from the environment: the keys a scheduled run is given."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shipyard.config import Settings
from shipyard.errors import ConfigError


def test_the_scheduled_time_is_read_as_a_utc_moment() -> None:
    assert Settings.from_env({}).scheduled_for is None
    due = Settings.from_env({"SHIPYARD_SCHEDULED_FOR": "2026-12-05T02:00:00+01:00"}).scheduled_for
    assert due == datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
    assert due is not None and due.tzinfo == UTC
    naive = Settings.from_env({"SHIPYARD_SCHEDULED_FOR": "2026-12-05T02:00:00"}).scheduled_for
    assert naive == datetime(2026, 12, 5, 2, 0, tzinfo=UTC)


def test_a_scheduled_time_that_is_no_time_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"SHIPYARD_SCHEDULED_FOR is 'tomorrow'; expected an ISO 8601 time"):
        Settings.from_env({"SHIPYARD_SCHEDULED_FOR": "tomorrow"})
