"""The prediction log on S3: segments written whole, read back by window and by request id, past
a listing's first page, and seen when another process writes them."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
from tests.s3.s3servers import BUCKET, S3Server, keys

from shipyard import Batch
from shipyard.core.batch import Predictions
from shipyard.monitoring.events import EventBatch, EventLog, find_requests, read_events

#: More segments than one listing page holds (S3 returns at most 1,000 keys a page).
SEGMENTS = 1050


def served(ids: list[str]) -> EventBatch:
    """One model call answering one row per request id, as serving hands it to the log."""
    n = len(ids)
    return EventBatch(
        time=time.time() - 60,
        model="credit",
        version=1,
        request_ids=ids,
        rows=[1] * n,
        protocols=["rest"] * n,
        latencies_ms=[4.0] * n,
        statuses=["ok"] * n,
        errors=[None] * n,
        features=Batch.from_columns({"age": np.arange(30, 30 + n), "income": np.full(n, 5e4)}),
        predictions=Predictions("classification", np.arange(n) % 2),
    )


def test_segments_are_written_whole_and_read_back(s3: S3Server, store_url: str) -> None:
    log = EventLog(store_url)
    ids = [f"r{i}" for i in range(6)]
    log.append(served(ids))
    [segment] = log.flush()
    assert "/events/credit/date=" in segment and segment.endswith(".parquet")
    assert keys(s3, store_url) == [segment.removeprefix(f"{BUCKET}/")]  # no temporary object
    now = datetime.now(UTC)
    table = read_events(store_url, "credit", since=now - timedelta(hours=1), until=now)
    assert table["request_id"].to_pylist() == ids
    assert table["features"].combine_chunks().field("age").to_pylist() == list(range(30, 36))
    found = find_requests(store_url, [*ids, "never-sent"], lookback=timedelta(days=1))
    assert sorted(found) == ids and {r.rows for r in found.values()} == {1}
    assert log.find(ids[:2], lookback=timedelta(days=1)).keys() == set(ids[:2])


def test_a_listing_past_its_first_page_and_segments_of_other_processes_are_read(
    s3: S3Server, store_url: str
) -> None:
    log = EventLog(store_url)
    log.append(served(["r0", "r1"]))
    [segment] = log.flush()
    now = datetime.now(UTC)
    window = {"since": now - timedelta(hours=1), "until": now + timedelta(minutes=1)}
    assert read_events(store_url, "credit", **window).num_rows == 2  # listed: nothing may be cached
    # Other replicas' segments of version 2, written behind this process's back: small objects,
    # put concurrently (fsspec's `pipe` of many files sends them together). Their names sort
    # before this one's, which the listing's second page then holds.
    folder = segment.rsplit("/", 1)[0]
    body = log.fs.cat_file(segment)
    log.fs.pipe({f"{folder}/000000-v2-other-{i:04d}.parquet": body for i in range(SEGMENTS - 1)})
    listed = keys(s3, f"{folder.removeprefix(BUCKET + '/')}/")
    assert len(listed) == SEGMENTS and listed.index(segment.removeprefix(f"{BUCKET}/")) >= 1000
    assert read_events(store_url, "credit", version=1, **window).num_rows == 2  # found on page 2
