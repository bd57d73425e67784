"""`monitor_report` over a window of the prediction log: the window's checks, a window without traffic."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from homes import copy_home
from shipyard import MonitoringError, Registry
from shipyard.monitoring.monitor import monitor_report


@pytest.fixture
def registered(request: pytest.FixtureRequest, tmp_path: Path, credit_v1_home: Path) -> Registry:
    """The `sqlite_registry`, opened on a copy of a home with credit:1 registered once."""
    copy_home(credit_v1_home, tmp_path / "home")
    registry: Registry = request.getfixturevalue("sqlite_registry")
    return registry


def test_an_inverted_window_or_a_bad_bucket_count_is_refused(registered: Registry) -> None:
    now = datetime.now(UTC)
    with pytest.raises(MonitoringError, match="ends before it"):
        monitor_report(registered, "credit:1", since=now, until=now - timedelta(hours=1))
    with pytest.raises(MonitoringError, match="buckets must be from 1 to 1000"):
        monitor_report(registered, "credit:1", buckets=0)


def test_a_window_without_traffic_reports_nothing_served_and_is_json_safe(registered: Registry) -> None:
    report = monitor_report(registered, "credit:1", window=timedelta(hours=2), buckets=4)
    assert (report.ref, report.requests, report.rows, report.rejected) == ("credit:1", 0, 0, 0)
    assert report.error_rate is None and report.latency_ms is None and report.performance is None
    assert len(report.timeline) == 4
    json.loads(json.dumps(report.to_dict()), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
