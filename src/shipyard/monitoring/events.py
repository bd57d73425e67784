"""The prediction log: every served prediction, appended off the hot path to Parquet segments.

Serving hands over one `EventBatch` per model call (a list append, nothing more). A background
thread turns what has gathered into Arrow tables and writes one segment per model, version and
day under `<store>/events/<model>/date=YYYY-MM-DD/`. Each segment is written under a temporary
name and renamed, so a crash leaves whole segments only. Features and outputs are struct columns
(`features.age`, `outputs.prediction`), so no feature name can collide with the event's own fields.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shipyard.core.batch import Batch, Predictions
from shipyard.security.masking import Masker
from shipyard.store.artifacts import Cipher, read_sealed, write_sealed
from shipyard.store.objects import open_url
from shipyard.store.permissions import DEFAULT_FILE_MODE, make_folders

__all__ = ["EVENT_FIELDS", "EventBatch", "EventLog", "LoggedRequest", "find_requests", "read_events"]

log = logging.getLogger(__name__)

#: The fixed columns of every segment, before the `features` and `outputs` structs.
EVENT_FIELDS = (
    "time",
    "request_id",
    "row",
    "model",
    "version",
    "protocol",
    "status",
    "latency_ms",
    "error",
)


@dataclass(frozen=True, slots=True)
class EventBatch:
    """The requests of one model call, as serving hands them to the log.

    Args:
        time: when the call finished, in seconds since the epoch.
        model: the model's name.
        version: the version that answered.
        request_ids: one id per request.
        rows: the row count of each request.
        protocols: the transport of each request ('rest', 'mlflow', 'oip-rest', 'oip-grpc').
        latencies_ms: each request's time from arrival to answer.
        statuses: 'ok' or 'rejected' per request; rejected requests carry no rows below.
        errors: the reason per request (None when served).
        features: the rows of the served requests, in request order, as the model saw them.
        predictions: the outputs of those rows.
        masked: the pii features and how to keep them ('hash' or 'redact'); they are masked
            before anything is written.
    """

    time: float
    model: str
    version: int
    request_ids: Sequence[str]
    rows: Sequence[int]
    protocols: Sequence[str]
    latencies_ms: Sequence[float]
    statuses: Sequence[str]
    errors: Sequence[str | None]
    features: Batch
    predictions: Predictions | None
    masked: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """What the prediction log holds about one request id.

    Args:
        model: the model that answered (a deployment's model, not the deployment's name).
        version: the version that answered.
        rows: the rows served (0 when the request was rejected).
        status: 'ok' or 'rejected'.
    """

    model: str
    version: int
    rows: int
    status: str


class EventLog:
    """Append events from the hot path; a background thread writes them as Parquet segments.

    Args:
        store_url: the artifact store's URL; events go under `<store_url>/events/`.
        worker: a name for this process, part of every segment's file name.
        flush_seconds: how often the background thread writes what has gathered.
        max_pending_rows: rows held in memory before new events are dropped (and counted).
        cipher: seal each segment at rest (with its key file beside it); None to write plain Parquet.
        masker: masks the pii features of each batch (see `EventBatch.masked`) before writing.
        file_mode: the mode of segments on a local disk (their folders get the matching mode;
            owner-only by default); None to leave it to the umask.
    """

    def __init__(
        self,
        store_url: str,
        *,
        worker: str = "0",
        flush_seconds: float = 1.0,
        max_pending_rows: int = 1_000_000,
        cipher: Cipher | None = None,
        masker: Masker | None = None,
        file_mode: int | None = DEFAULT_FILE_MODE,
    ) -> None:
        self.fs, root = open_url(store_url)
        self.file_mode = file_mode
        self.root = f"{root.rstrip('/')}/events"
        self.cipher = cipher
        self.masker = masker
        self.worker = worker
        self.flush_seconds = flush_seconds
        self.max_pending_rows = max_pending_rows
        self.dropped_rows = 0
        self.written_rows = 0
        self._pending: list[EventBatch] = []
        self._pending_rows = 0
        self._seq = 0
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> EventLog:
        """Start the background writer (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="shipyard-events", daemon=True)
            self._thread.start()
        return self

    def append(self, batch: EventBatch) -> None:
        """Queue one model call's events; never blocks and never raises."""
        rows = max(batch.features.n_rows, 1)
        if self._pending_rows + rows > self.max_pending_rows:
            self.dropped_rows += rows
            return
        self._pending_rows += rows
        self._pending.append(batch)

    def flush(self) -> list[str]:
        """Write every queued event now; returns the paths of the segments written."""
        with self._write_lock:
            pending, self._pending = self._pending, []
            self._pending_rows = 0
            if not pending:
                return []
            groups: dict[tuple[str, int, str], list[EventBatch]] = {}
            for b in pending:
                day = datetime.fromtimestamp(b.time, UTC).strftime("%Y-%m-%d")
                groups.setdefault((b.model, b.version, day), []).append(b)
            paths = []
            for (model, version, day), batches in groups.items():
                table = events_table(batches, masker=self.masker)
                paths.append(self._write(model, version, day, table))
                self.written_rows += table.num_rows
            return paths

    def pending(self, ids: Iterable[str]) -> dict[str, LoggedRequest]:
        """The requests among `ids` still waiting in this log's buffer (not yet in a segment)."""
        wanted = set(ids)
        found: dict[str, LoggedRequest] = {}
        for b in list(self._pending):  # a copy: the writer swaps the list, never edits it in place
            for rid, n, status in zip(b.request_ids, b.rows, b.statuses, strict=True):
                if rid in wanted:
                    found[rid] = LoggedRequest(b.model, b.version, n if status == "ok" else 0, status)
        return found

    def find(self, ids: Iterable[str], *, lookback: timedelta) -> dict[str, LoggedRequest]:
        """The requests among `ids` in this log: its buffer first, then the segments of `lookback`."""
        wanted = set(ids)
        found = self.pending(wanted)
        rest = wanted - set(found)
        if rest:
            found.update(_find(self.fs, self.root, rest, lookback=lookback, cipher=self.cipher))
        return found

    def close(self) -> None:
        """Stop the writer and flush what is left (the SIGTERM path)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                self.flush()
            except Exception:  # the writer must outlive a full disk or a bad batch; say so and go on
                log.exception("could not write prediction log segment under %s", self.root)

    def _write(self, model: str, version: int, day: str, table: pa.Table) -> str:
        self._seq += 1
        folder = f"{self.root}/{model}/date={day}"
        stamp = time.strftime("%H%M%S", time.gmtime())
        name = f"{stamp}-v{version}-{self.worker}-{os.getpid()}-{self._seq:06d}.parquet"
        final = f"{folder}/{name}"
        make_folders(self.fs, folder, file_mode=self.file_mode)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        write_sealed(
            self.fs,
            final,
            buffer.getvalue(),
            name=_segment_name(model, day, name),
            cipher=self.cipher,
            file_mode=self.file_mode,
        )
        return final


def read_events(
    store_url: str,
    model: str,
    *,
    since: datetime,
    until: datetime,
    version: int | None = None,
    cipher: Cipher | None = None,
) -> pa.Table:
    """The logged events of `model` with since <= time < until, oldest first.

    Only the day folders the window touches are read; segments being written (temporary names)
    are skipped. Segments of one model may differ in their feature columns (a new version with
    new features); their union is returned, absent fields null. Sealed segments are opened
    with `cipher`.

    Raises:
        EncryptionError: a segment is sealed and `cipher` is None or holds another key.
    """
    fs, root = open_url(store_url)
    folder = f"{root.rstrip('/')}/events/{model}"
    tables: list[pa.Table] = []
    day = since.astimezone(UTC).date()
    last = until.astimezone(UTC).date()
    while day <= last:
        path = f"{folder}/date={day.isoformat()}"
        day += timedelta(days=1)
        files = _segments(fs, path)
        if version is not None:
            files = [f for f in files if f"-v{version}-" in f.rsplit("/", 1)[-1]]
        blobs = _fetch(fs, files)
        for file in files:
            sealed_as = _segment_name(model, path.rsplit("date=", 1)[1], file.rsplit("/", 1)[-1])
            blob = read_sealed(
                fs, file, blobs[file], name=sealed_as, cipher=cipher, what=f"prediction log segment {file}"
            )
            tables.append(pq.read_table(io.BytesIO(blob)))
    if not tables:
        return pa.table({"time": pa.array([], pa.timestamp("us", tz="UTC"))})
    table = pa.concat_tables(tables, promote_options="permissive")
    start = pa.scalar(since.astimezone(UTC), pa.timestamp("us", tz="UTC"))
    stop = pa.scalar(until.astimezone(UTC), pa.timestamp("us", tz="UTC"))
    keep = pc.and_(pc.greater_equal(table["time"], start), pc.less(table["time"], stop))
    if version is not None:
        keep = pc.and_(keep, pc.equal(table["version"], version))
    table = table.filter(keep)
    return table.take(pc.sort_indices(table, [("time", "ascending")]))


def find_requests(
    store_url: str, ids: Iterable[str], *, lookback: timedelta, cipher: Cipher | None = None
) -> dict[str, LoggedRequest]:
    """The requests among `ids` in the prediction log of every model, over the last `lookback`.

    Days are read newest first, and only the columns that say who answered; the search stops
    once every id is found, so labels for recent requests cost one day's ids. An id that two
    requests shared (callers may send their own `X-Request-ID`) names the newest.

    Raises:
        EncryptionError: a segment is sealed and `cipher` is None or holds another key.
    """
    fs, root = open_url(store_url)
    return _find(fs, f"{root.rstrip('/')}/events", set(ids), lookback=lookback, cipher=cipher)


def _segments(fs: Any, folder: str) -> list[str]:
    """The whole segments in a day's `folder`, oldest first (temporary names skipped); none if
    it does not exist. One listing, read page by page on an object store."""
    try:
        listed = fs.ls(folder, detail=False)
    except FileNotFoundError:
        return []
    names = ((f, f.rsplit("/", 1)[-1]) for f in listed)
    return sorted(f for f, name in names if not name.startswith(".") and name.endswith(".parquet"))


def _fetch(fs: Any, files: list[str]) -> dict[str, bytes]:
    """The bytes of `files`, by path: fetched together, which an object store does concurrently
    (a day of many replicas' segments would otherwise be one round trip after another)."""
    if not files:
        return {}
    blobs: dict[str, bytes] = fs.cat(files)
    return {file: blobs[file] for file in files}


def _find(
    fs: Any, root: str, wanted: set[str], *, lookback: timedelta, cipher: Cipher | None
) -> dict[str, LoggedRequest]:
    found: dict[str, LoggedRequest] = {}
    if not wanted or not fs.isdir(root):
        return found
    models = [p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)]
    today = datetime.now(UTC).date()
    day = today
    while wanted and day >= today - timedelta(days=max(lookback.days, 0)):
        for model in models:
            files = _segments(fs, f"{root}/{model}/date={day.isoformat()}")
            blobs = _fetch(fs, files)
            for file in files:
                blob = read_sealed(
                    fs,
                    file,
                    blobs[file],
                    name=_segment_name(model, day.isoformat(), file.rsplit("/", 1)[-1]),
                    cipher=cipher,
                    what=f"prediction log segment {file}",
                )
                table = pq.read_table(io.BytesIO(blob), columns=["request_id", "row", "version", "status"])
                hits = table.filter(pc.is_in(table["request_id"], pa.array(sorted(wanted), pa.string())))
                for rid, row, version, status in zip(
                    hits["request_id"].to_pylist(),
                    hits["row"].to_pylist(),
                    hits["version"].to_pylist(),
                    hits["status"].to_pylist(),
                    strict=True,
                ):
                    # A request is one event per row; files are read oldest first within a day.
                    rows = (row + 1) if status == "ok" and row is not None else 0
                    old = found.get(rid)
                    if old is not None and old.model == model and old.version == version and status == "ok":
                        rows = max(rows, old.rows)
                    found[rid] = LoggedRequest(model, int(version), rows, str(status))
        wanted -= set(found)
        day -= timedelta(days=1)
    return found


def _segment_name(model: str, day: str, file: str) -> str:
    """A segment's name inside the store, the associated data of its encryption."""
    return f"events/{model}/date={day}/{file}"


def events_table(batches: Sequence[EventBatch], *, masker: Masker | None = None) -> pa.Table:
    """One Arrow table of the events of `batches` (all of one model version); pii features are
    masked (without a masker, left out).

    A served request is one event per row; a rejected one is one event without row or features.
    The per-request fields are gathered per batch (list extends, no loop per request) and spread
    over the events by one Arrow `take`.
    """
    times: list[float] = []
    request_ids: list[str] = []
    rows: list[int] = []
    protocols: list[str] = []
    statuses: list[str] = []
    latencies: list[float] = []
    errors: list[str | None] = []
    feature_parts: list[Batch] = []
    output_parts: list[Predictions] = []
    for b in batches:
        times.extend([b.time] * len(b.request_ids))
        request_ids.extend(b.request_ids)
        rows.extend(b.rows)
        protocols.extend(b.protocols)
        statuses.extend(b.statuses)
        latencies.extend(b.latencies_ms)
        errors.extend(b.errors)
        if b.features.n_rows:
            feature_parts.append(b.features)
            if b.predictions is not None:
                output_parts.append(b.predictions)
    served = np.asarray(statuses, dtype=object) == "ok"
    counts = np.where(served, np.asarray(rows, dtype=np.int64), 1)
    request = np.repeat(np.arange(len(request_ids)), counts)  # per event: its request
    first = np.cumsum(counts) - counts  # per request: its first event
    row_numbers = np.arange(len(request)) - first[request]  # per event: its row in its request
    event_served = served[request]
    index = np.cumsum(event_served) - 1  # per event: its row in the concatenated features, or -1
    index[~event_served] = -1
    missing = ~event_served
    per_request = pa.table(
        {
            "time": pa.array((np.asarray(times) * 1e6).astype(np.int64)).cast(pa.timestamp("us", tz="UTC")),
            "request_id": pa.array(request_ids, pa.string()),
            "protocol": pa.array(protocols, pa.string()),
            "status": pa.array(statuses, pa.string()),
            "latency_ms": pa.array(latencies, pa.float64()),
            "error": pa.array(errors, pa.string()),
        }
    ).take(pa.array(request))
    head = batches[0]
    n_events = len(request)
    columns: dict[str, Any] = {
        "time": per_request["time"],
        "request_id": per_request["request_id"],
        "row": pa.array(row_numbers.astype(np.int32), pa.int32(), mask=missing),
        "model": pa.array([head.model] * n_events, pa.string()),
        "version": pa.array(np.full(n_events, head.version, dtype=np.int64), pa.int64()),
        "protocol": per_request["protocol"],
        "status": per_request["status"],
        "latency_ms": per_request["latency_ms"],
        "error": per_request["error"],
    }
    # A call whose every request was rejected has no feature columns; Parquet cannot hold an
    # empty struct, so such a segment has no `features` column (readers take the union).
    features = dict(Batch.concat(feature_parts).columns) if feature_parts else {}
    masks = head.masked
    if masks and masker is not None:
        features = masker.columns(features, masks)
    elif masks:
        features = {n: c for n, c in features.items() if n not in masks}
    if features:
        columns["features"] = _struct(features, index, missing)
    outputs = Predictions.concat(output_parts).to_columns() if output_parts else {}
    if outputs:
        columns["outputs"] = _struct(outputs, index, missing)
    return pa.table(columns)


def _struct(columns: dict[str, np.ndarray[Any, Any]], index: np.ndarray[Any, Any], missing: Any) -> pa.Array:
    """A struct column with one entry per event; rejected requests' entries are null."""
    # Columns exist only when some request was served, so row 0 is a safe stand-in under the mask.
    safe = np.where(missing, 0, index)
    arrays = [pa.array(values[safe], from_pandas=True) for values in columns.values()]
    mask = pa.array(missing) if missing.any() else None
    return pa.StructArray.from_arrays(arrays, names=list(columns), mask=mask)
