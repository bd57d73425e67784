"""Labels that arrive after the prediction, joined to the prediction log by request id and row.

Labels come one request at a time (`POST /v1/feedback`) or in bulk (`shipyard feedback load`);
either way one call is one transaction, so a label that was accepted is stored and a call that
fails stores nothing. Labels are kept as JSON text, so `1`, `"fraud"` and `0.5` keep their type
until they are matched to the model's classes. A later label for the same request and row
supersedes an earlier one.

Before they are stored, labels are checked (`LabelCheck`): the request id must be a request
the prediction log holds (served, not rejected, with that row), and the label must fit the
version that answered: one of a classifier's classes, or a finite number for a regressor. A
label that passes is stored as the class itself (`"1"` for a classifier of `0`/`1` is stored
as `1`), so reports need no guessing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from shipyard.core.batch import Batch
from shipyard.core.refs import ModelRef
from shipyard.errors import FeedbackError, NotFoundError
from shipyard.monitoring.events import EventLog, LoggedRequest
from shipyard.security.access import Action
from shipyard.security.context import Context, HasContext, context_of
from shipyard.store.metadata import MetadataStore, utcnow
from shipyard.store.schema import feedback

if TYPE_CHECKING:
    from shipyard.core.contract import Contract

__all__ = [
    "LOOKBACK",
    "FeedbackStore",
    "Label",
    "LabelCheck",
    "RefusedLabel",
    "decode_labels",
    "fit_label",
    "labels_from_batch",
    "parse_feedback",
    "refusal",
    "server_check",
]

MAX_REQUEST_ID = 128
#: How far back the prediction log is searched for the request a label is for.
LOOKBACK = timedelta(days=30)
_INSERT_CHUNK = 10_000
_SHOWN = 20  # refused labels named in an error's message (all of them are in `FeedbackError.refused`)


@dataclass(frozen=True, slots=True)
class Label:
    """The true outcome of one served row.

    Args:
        request_id: the id the server answered with (`request_id` in the response).
        row: the row of that request (0 for one-row requests).
        label: the true class or value.
        where: the item or file row it came from, to name in errors (`item 2`, `row 7`).
    """

    request_id: str
    row: int
    label: Any
    where: str = ""


@dataclass(frozen=True, slots=True)
class RefusedLabel:
    """A label that cannot be used, and why.

    Args:
        where: the item or file row it came from.
        request_id: its request id.
        row: its row within the request.
        label: the label as it arrived.
        reason: why it was refused, in words.
        expected: what would have fitted (the classes, or 'a finite number'), when known.
        kind: what is wrong: 'unknown_request', 'rejected_request', 'row', 'label', or 'input'
            (the item itself is malformed: no id, no label).
    """

    where: str
    request_id: str
    row: int
    label: Any
    reason: str
    expected: Any = None
    kind: str = "label"

    def to_dict(self) -> dict[str, Any]:
        """The refusal as JSON-safe data."""
        return {
            "where": self.where,
            "request_id": self.request_id,
            "row": self.row,
            "label": self.label,
            "reason": self.reason,
            "expected": self.expected,
            "kind": self.kind,
        }

    def __str__(self) -> str:
        return (
            f"{self.where}: request {self.request_id!r} row {self.row}, label {self.label!r}: {self.reason}"
        )


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
                at = f"{where}: labels[{row}]"
                out.append(Label(request_id, row, _scalar(value, at), at))
            continue
        row = item.get("row", 0)
        if not isinstance(row, int) or isinstance(row, bool) or row < 0:
            raise FeedbackError(f"{where}: row must be a whole number >= 0; got {row!r}")
        out.append(Label(request_id, row, _scalar(item["label"], f"{where}: label"), where))
    return out


def labels_from_batch(
    data: Batch, *, id_column: str, label_column: str, row_column: str | None = None, source: str = "the file"
) -> tuple[list[Label], list[RefusedLabel]]:
    """Labels from the columns of a table (a CSV, Parquet or JSON Lines file), and the rows refused.

    Every row is read; a row without an id or a label, or with a bad row number, is refused
    with its row number (counted from 1, after the header) rather than stopping the read.

    Raises:
        FeedbackError: a column is missing.
    """
    wanted = [id_column, label_column] + ([row_column] if row_column else [])
    absent = [c for c in wanted if c not in data.columns]
    if absent:
        raise FeedbackError(f"{source} has no column {absent[0]!r}; its columns are {list(data.names)}")
    ids = pd.Series(data.columns[id_column], dtype=object).tolist()
    values = pd.Series(data.columns[label_column], dtype=object).tolist()
    rows: list[Any] = (
        pd.Series(data.columns[row_column], dtype=object).tolist() if row_column else [0] * data.n_rows
    )
    good: list[Label] = []
    refused: list[RefusedLabel] = []
    for i, (rid, row, raw) in enumerate(zip(ids, rows, values, strict=True)):
        where = f"row {i + 1}"
        rid_text = "" if rid is None or (isinstance(rid, float) and math.isnan(rid)) else str(rid)
        value = raw.item() if hasattr(raw, "item") else raw
        number = pd.to_numeric(pd.Series([row], dtype=object), errors="coerce").iloc[0]
        reason = None
        if not rid_text:
            reason = f"it has no {id_column!r}"
        elif len(rid_text) > MAX_REQUEST_ID:
            reason = f"its {id_column!r} is longer than {MAX_REQUEST_ID} characters; is it a request id?"
        elif pd.isna(number) or number < 0 or number % 1 != 0:
            reason = f"its {row_column!r} is {row!r}; expected a whole number >= 0"
        elif value is None or (isinstance(value, float) and math.isnan(value)):
            reason = f"it has no {label_column!r}"
        elif isinstance(value, float) and not math.isfinite(value):
            reason = "the label is not a finite number"
        elif isinstance(value, Mapping | list):
            reason = "the label is not a single class or value"
        if reason is not None:
            row_number = 0 if pd.isna(number) else int(number)
            refused.append(RefusedLabel(where, rid_text, row_number, value, reason, kind="input"))
        else:
            good.append(Label(rid_text, int(number), value, where))
    return good, refused


def fit_label(value: Any, contract: Contract) -> tuple[Any, str | None]:
    """The label as the model's own class or value, or None and why it does not fit.

    A classifier's label must equal one of its classes. Values of another type are matched
    only when exactly one class is equal to them: the text `"1"` is the class `1` and the
    number `1` the class `"1"`; `1.0` is `1`; `true`/`false` match only true/false classes
    (never `1`/`0`). A regressor's label must be a finite number (numeric text is read as one).
    """
    if contract.task == "regression":
        number = _number(value)
        if number is None or not math.isfinite(number):
            return None, f"a regressor's label must be a finite number; got {value!r}"
        return number, None
    classes = contract.classes
    if classes is None:  # a classifier whose classes were never recorded: any class is taken as is
        return value, None
    exact = [c for c in classes if _same(value, c)]
    if len(exact) == 1:
        return exact[0], None
    loose = [c for c in classes if _alike(value, c)]
    if len(loose) == 1:
        return loose[0], None
    if len(loose) > 1:
        return None, f"{value!r} could be any of the classes {loose}; send the class itself"
    return None, f"{value!r} is not one of the classes {list(classes)}"


class LabelCheck:
    """Checks labels against the prediction log and the versions that answered.

    Args:
        meta: the metadata store (for the contract of the version that answered).
        find: the requests among some ids that the prediction log holds.
        lookback: how far back `find` searches, to say so in refusals.
    """

    def __init__(
        self,
        meta: MetadataStore,
        *,
        find: Callable[[set[str]], Mapping[str, LoggedRequest]],
        lookback: timedelta = LOOKBACK,
    ) -> None:
        self.meta = meta
        self.find = find
        self.lookback = lookback
        self.settle_seconds = 0.0
        self._contracts: dict[tuple[str, int], Contract | None] = {}

    def check(self, labels: Sequence[Label]) -> tuple[list[Label], list[RefusedLabel]]:
        """The labels that fit (as the model's classes) and those refused, each with its reason."""
        found = self.find({x.request_id for x in labels}) if labels else {}
        good: list[Label] = []
        refused: list[RefusedLabel] = []
        for x in labels:
            served = found.get(x.request_id)
            reason, kind = self._why_not(x, served)
            expected = None
            if reason is None:
                assert served is not None
                contract = self._contract(served)
                assert contract is not None
                value, reason = fit_label(x.label, contract)
                expected = _expected(contract)
                if reason is None:
                    good.append(Label(x.request_id, x.row, value, x.where))
                    continue
                reason = f"{reason} ({served.model}:{served.version} answered this request)"
            refused.append(RefusedLabel(x.where, x.request_id, x.row, x.label, reason, expected, kind))
        return good, refused

    def _why_not(self, label: Label, served: LoggedRequest | None) -> tuple[str | None, str]:
        if served is None:
            days = self.lookback.days
            return (
                f"no request with this id is in the prediction log of the last {days} days; send the "
                "request_id a prediction's response carried (requests the server did not log, "
                "--log-sample, cannot be labelled)",
                "unknown_request",
            )
        ref = f"{served.model}:{served.version}"
        if served.status != "ok":
            return f"the request was rejected by {ref}, so it has no prediction to label", "rejected_request"
        if label.row >= served.rows:
            return f"row {label.row} is past the request's {served.rows} row(s) (counted from 0)", "row"
        if self._contract(served) is None:
            return f"{ref} answered this request but is no longer in the registry", "unknown_request"
        return None, "label"

    def _contract(self, served: LoggedRequest) -> Contract | None:
        from shipyard.registry.queries import read_version, resolve

        key = (served.model, served.version)
        if key not in self._contracts:
            try:
                with self.meta.read() as conn:
                    version = read_version(
                        conn, resolve(conn, ModelRef(served.model, version=served.version))
                    )
                self._contracts[key] = version.contract
            except NotFoundError:
                self._contracts[key] = None
        return self._contracts[key]


def server_check(meta: MetadataStore, log: EventLog | None, *, lookback: timedelta = LOOKBACK) -> LabelCheck:
    """The check of a server's `/v1/feedback`: its own unwritten requests, then the log's segments.

    Raises:
        FeedbackError: the server writes no prediction log, so no label can be matched.
    """
    if log is None:
        raise FeedbackError(
            "this server writes no prediction log (--no-log), so labels cannot be matched to its "
            "predictions; serve with the log on"
        )
    check = LabelCheck(meta, find=lambda ids: log.find(ids, lookback=lookback), lookback=lookback)
    # Another worker's requests reach the log's segments within one flush: a server looks once
    # more after that long before it calls an id unknown.
    check.settle_seconds = log.flush_seconds + 0.5
    return check


def refusal(refused: Sequence[RefusedLabel], *, total: int, source: str) -> FeedbackError:
    """The error that names every refused label (the first ones in the message, all in `refused`)."""
    lines = [str(r) for r in refused[:_SHOWN]]
    more = f"\n  ... and {len(refused) - _SHOWN} more" if len(refused) > _SHOWN else ""
    return FeedbackError(
        f"{len(refused)} of {total} label(s) from {source} cannot be used, so none were stored:\n  "
        + "\n  ".join(lines)
        + more,
        refused=[r.to_dict() for r in refused],
    )


class FeedbackStore:
    """Labels in the metadata store.

    Args:
        context: who acts (adding labels needs the feedback role, reading them the reader
            role), and the metadata store; or anything holding one, such as a `Registry`.
    """

    def __init__(self, context: Context | HasContext) -> None:
        self.context = context_of(context)
        self.meta = self.context.meta

    def add(self, labels: Sequence[Label], *, source: str, actor: str | None = None) -> int:
        """Store `labels` in one transaction; returns how many were stored.

        Args:
            labels: the labels.
            source: where they came from (a file, 'api').
            actor: who sent them, when not the context's actor (a server names each request's
                principal).

        Raises:
            PermissionDeniedError: the principal may not send labels.
        """
        self.context.allow(Action.FEEDBACK)
        if not labels:
            return 0
        actor = self.context.actor if actor is None else actor
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

        Raises:
            PermissionDeniedError: the principal may not read.
        """
        self.context.allow(Action.READ)
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
        """How many labels are stored, superseded ones included.

        Raises:
            PermissionDeniedError: the principal may not read.
        """
        self.context.allow(Action.READ)
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


def _expected(contract: Contract) -> Any:
    if contract.task == "regression":
        return "a finite number"
    return None if contract.classes is None else list(contract.classes)


def _kind(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, int | float | np.integer | np.floating):
        return "number"
    return "text" if isinstance(value, str) else "other"


def _same(value: Any, cls: Any) -> bool:
    """Equal and of one kind (so `True` is not the class `1`)."""
    return _kind(value) == _kind(cls) and bool(value == cls)


def _alike(value: Any, cls: Any) -> bool:
    """Equal once text is read as the class's kind: `"1"` and `1`, `1` and `"1"`, `"true"` and True."""
    kinds = (_kind(value), _kind(cls))
    if kinds == ("text", "number"):
        number = _number(value)
        return number is not None and number == cls
    if kinds == ("number", "text"):
        number = _number(cls)
        return number is not None and number == value
    if kinds == ("text", "bool"):
        return str(value).strip().lower() == str(bool(cls)).lower()
    return False


def _number(value: Any) -> float | None:
    if _kind(value) == "number":
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None
