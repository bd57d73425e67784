"""The prediction log: requests queued, found in the buffer or in segments, and read back by window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shipyard import Registry
from shipyard.datasets import make_credit
from shipyard.monitoring.events import EventLog, find_requests, read_events
from traffic import PLACEHOLDER, queue_requests


def test_a_request_still_in_the_buffer_is_found_before_it_is_written(reg: Registry) -> None:
    log = EventLog(reg.settings.store_url)
    ids = queue_requests(log, reg, make_credit(5, seed=4))
    found = log.find({ids[0], PLACEHOLDER}, lookback=timedelta(days=30))
    assert set(found) == {ids[0]} and found[ids[0]].model == "credit" and found[ids[0]].rows == 1
    assert find_requests(reg.settings.store_url, {ids[0]}, lookback=timedelta(days=30)) == {}


def test_flushed_requests_are_found_in_the_segments_with_their_rows_and_status(reg: Registry) -> None:
    log = EventLog(reg.settings.store_url)
    ids = queue_requests(log, reg, make_credit(6, seed=5), rows_per_request=2)
    [segment] = log.flush()
    assert segment.endswith(".parquet") and "/events/credit/date=" in segment
    assert log.flush() == []  # nothing left to write
    assert log.pending(ids) == {}
    found = find_requests(
        reg.settings.store_url, [*ids, "refused-1", PLACEHOLDER], lookback=timedelta(days=1)
    )
    assert sorted(found) == sorted([*ids, "refused-1"])
    assert {(r.model, r.version, r.rows, r.status) for rid, r in found.items() if rid in ids} == {
        ("credit", 1, 2, "ok")
    }
    assert (found["refused-1"].rows, found["refused-1"].status) == (0, "rejected")


def test_read_events_returns_the_window_oldest_first_with_features_and_outputs(reg: Registry) -> None:
    log = EventLog(reg.settings.store_url)
    queue_requests(log, reg, make_credit(4, seed=6))
    log.flush()
    now = datetime.now(UTC)
    table = read_events(reg.settings.store_url, "credit", since=now - timedelta(hours=1), until=now)
    assert table.num_rows == 5  # four answered rows and the refused request
    assert table["request_id"].to_pylist()[-1] == "refused-1"
    assert {"features", "outputs"} <= set(table.column_names)
    times = table["time"].to_pylist()
    assert times == sorted(times)
    later = read_events(reg.settings.store_url, "credit", since=now, until=now + timedelta(hours=1))
    assert later.num_rows == 0
    other = read_events(
        reg.settings.store_url, "credit", since=now - timedelta(hours=1), until=now, version=2
    )
    assert other.num_rows == 0


def test_rows_past_the_pending_limit_are_dropped_and_counted(reg: Registry) -> None:
    log = EventLog(reg.settings.store_url, max_pending_rows=5)
    queue_requests(log, reg, make_credit(4, seed=7))
    queue_requests(log, reg, make_credit(3, seed=8))  # 3 rows more than the 5 allowed
    assert log.dropped_rows == 3
    log.flush()
    assert log.written_rows == 5  # the four rows answered and the one refused request
