"""Labels that arrive after the prediction, joined to the prediction log by request id and row.

Labels come one request at a time (`POST /v1/feedback`) or in bulk (`shipyard feedback load`);
either way one call is one transaction, so a label that was accepted is stored and a call that
fails stores nothing. Labels are kept as JSON text, so `1`, `"fraud"` and `0.5` keep their type
until they are matched to the model's classes. A later label for the same request and row
supersedes an earlier one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from shipyard.core.batch import Batch
from shipyard.errors import FeedbackError
from shipyard.store.metadata import MetadataStore, utcnow
from shipyard.store.schema import feedback

__all__ = ["FeedbackStore", "Label", "decode_labels", "labels_from_batch", "parse_feedback"]

MAX_REQUEST_ID = 128
_INSERT_CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class Label:
    """The true outcome of one served row.

    Args:
        request_id: the id the server answered with (`request_id` in the response).
        row: the row of that request (0 for one-row requests).
        label: the true class or value.
    """

    request_id: str
    row: int
    label: Any


def parse_feedback(payload: Any) -> list[Label]:
    """Labels from a feedback body: one object or a list of them.

    Each object is `{"request_id": "...", "label": 1}`, optionally with `"row": 2` for a request
    of several rows, or `{"request_id": "...", "labels": [1, 0, 1]}` for all of its rows.

    Raises:
        FeedbackError: the body is not of that shape; the message names the item and the key.
    """
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise FeedbackError("the feedback body is an empty list; expected at least one label")
    out: list[Label] = []
    for i, item in enumerate(items):
        where = f"item {i}" if isinstance(payload, list) else "the body"
        if not isinstance(item, dict):
            raise FeedbackError(
                f"{where} is {type(item).__name__}; expected an object like "
                '{"request_id": "...", "label": 1}'
            )
        unknown = set(item) - {"request_id", "label", "labels", "row"}
        if unknown:
            raise FeedbackError(
                f"{where} has unknown keys {sorted(unknown)}; expected request_id, label or labels, row"
            )
        request_id = item.get("request_id")
        if not isinstance(request_id, str) or not request_id or len(request_id) > MAX_REQUEST_ID:
            raise FeedbackError(
                f"{where}: request_id must be the non-empty text the server answered with (at most "
                f"{MAX_REQUEST_ID} characters); got {request_id!r}"
            )
        if ("label" in item) == ("labels" in item):
            raise FeedbackError(f"{where}: give exactly one of 'label' (one row) or 'labels' (every row)")
        if "labels" in item:
            labels = item["labels"]
            if not isinstance(labels, list) or not labels or "row" in item:
                raise FeedbackError(f"{where}: 'labels' must be a non-empty list, one per row, without 'row'")
            for row, value in enumerate(labels):
                out.append(Label(request_id, row, _scalar(value, f"{where}: labels[{row}]")))
            continue
        row = item.get("row", 0)
        if not isinstance(row, int) or isinstance(row, bool) or row < 0:
            raise FeedbackError(f"{where}: row must be a whole number >= 0; got {row!r}")
        out.append(Label(request_id, row, _scalar(item["label"], f"{where}: label")))
    return out


def labels_from_batch(
    data: Batch, *, id_column: str, label_column: str, row_column: str | None = None, source: str = "the file"
) -> list[Label]:
    """Labels from the columns of a table (a CSV, Parquet or JSON Lines file).

    Raises:
        FeedbackError: a column is missing, or a row has no id or no label; the message names
            the row (counted from 1, after the header).
    """
    wanted = [id_column, label_column] + ([row_column] if row_column else [])
    absent = [c for c in wanted if c not in data.columns]
    if absent:
        raise FeedbackError(f"{source} has no column {absent[0]!r}; its columns are {list(data.names)}")
    ids = pd.Series(data.columns[id_column], dtype=object)
    labels = pd.Series(data.columns[label_column], dtype=object)
    bad_id = ids.isna() | (ids.astype(str).str.len() == 0)
    if bad_id.any():
        raise FeedbackError(f"{source}: row {int(np.flatnonzero(bad_id)[0]) + 1} has no {id_column!r}")
    bad_label = labels.isna()
    if bad_label.any():
        raise FeedbackError(f"{source}: row {int(np.flatnonzero(bad_label)[0]) + 1} has no {label_column!r}")
    if row_column:
        rows = pd.to_numeric(pd.Series(data.columns[row_column], dtype=object), errors="coerce")
        bad_row = rows.isna() | (rows < 0) | (rows % 1 != 0)
        if bad_row.any():
            first = int(np.flatnonzero(bad_row)[0])
            raise FeedbackError(
                f"{source}: row {first + 1} has {row_column!r} = {data.columns[row_column][first]!r}; "
                "expected a whole number >= 0"
            )
        row_numbers = rows.astype(np.int64).tolist()
    else:
        row_numbers = [0] * data.n_rows
    long_ids = ids.astype(str).str.len() > MAX_REQUEST_ID
    if long_ids.any():
        raise FeedbackError(
            f"{source}: row {int(np.flatnonzero(long_ids)[0]) + 1} has a {id_column!r} longer than "
            f"{MAX_REQUEST_ID} characters; is it the request id the server answered with?"
        )
    return [
        Label(str(i), int(r), _plain(v))
        for i, r, v in zip(ids.tolist(), row_numbers, labels.tolist(), strict=True)
    ]


class FeedbackStore:
    """Labels in the metadata store.

    Args:
        meta: the metadata store (shared with the registry).
    """

    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta

    def add(self, labels: Sequence[Label], *, source: str, actor: str) -> int:
        """Store `labels` in one transaction; returns how many were stored."""
        if not labels:
            return 0
        now = utcnow()
        rows = [
            {
                "request_id": x.request_id,
                "row": x.row,
                "label": json.dumps(x.label),
                "received_at": now,
                "source": source[:256],
                "actor": actor[:128],
            }
            for x in labels
        ]

        def change(conn: sa.Connection) -> int:
            for start in range(0, len(rows), _INSERT_CHUNK):
                conn.execute(feedback.insert(), rows[start : start + _INSERT_CHUNK])
            return len(rows)

        return self.meta.write(change)

    def labels(self, *, since: datetime | None = None, request_ids: Iterable[str] | None = None) -> pa.Table:
        """The newest label per request and row: columns request_id, row, label (JSON), received_at.

        Args:
            since: only labels received from then on (labels arrive after their prediction, so
                the start of a window of predictions bounds the labels that can match it).
            request_ids: only labels of these requests.
        """
        query = sa.select(
            feedback.c.id, feedback.c.request_id, feedback.c.row, feedback.c.label, feedback.c.received_at
        )
        if since is not None:
            query = query.where(feedback.c.received_at >= since)
        wanted = None if request_ids is None else set(request_ids)
        with self.meta.read() as conn:
            result = conn.execute(query.order_by(feedback.c.id)).all()
        frame = pd.DataFrame(result, columns=["id", "request_id", "row", "label", "received_at"])
        if wanted is not None:
            frame = frame[frame["request_id"].isin(wanted)]
        frame = frame.drop_duplicates(["request_id", "row"], keep="last").drop(columns="id")
        return pa.Table.from_pandas(frame, preserve_index=False).cast(
            pa.schema(
                [
                    ("request_id", pa.string()),
                    ("row", pa.int32()),
                    ("label", pa.string()),
                    ("received_at", pa.timestamp("us", tz="UTC")),
                ]
            )
        )

    def count(self) -> int:
        """How many labels are stored, superseded ones included."""
        with self.meta.read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(feedback)).scalar_one())


def decode_labels(texts: Sequence[str | None]) -> list[Any]:
    """The labels of `FeedbackStore.labels` as Python values (None where there is none)."""
    return [None if t is None else json.loads(t) for t in texts]


def _scalar(value: Any, where: str) -> Any:
    if isinstance(value, bool | int | str) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise FeedbackError(
        f"{where} is {value!r}; expected a class (number, text or true/false) or a finite number"
    )


def _plain(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and not math.isfinite(value):
        raise FeedbackError(f"a label is {value!r}; expected a finite number or a class")
    if isinstance(value, Mapping | list):
        raise FeedbackError(f"a label is {value!r}; expected a single class or value")
    return value
