"""Decoding of JSON request bodies into columns, and encoding of answers, for the REST APIs.

Each decoder turns one protocol's body into `(columns, n_rows)`: column name to the values the
caller sent, untouched, so the contract (not the transport) decides what is acceptable. Each
raises `InputError` naming the key that is wrong, what it held and what was expected.
"""

from __future__ import annotations

from typing import Any

import orjson

from shipyard.core.batch import Batch, Predictions
from shipyard.core.contract import Contract
from shipyard.core.echo import echo
from shipyard.errors import InputError
from shipyard.serving.served import Answer

__all__ = [
    "decode_mlflow",
    "decode_mlflow_csv",
    "decode_ours",
    "encode_mlflow",
    "encode_ours",
    "json_kind",
    "parse_json",
    "probabilities_by_class",
    "rows_to_columns",
]

Columns = dict[str, Any]


def parse_json(body: bytes) -> Any:
    """The JSON value of a request body.

    Raises:
        InputError: the body is not JSON; a bare NaN or Infinity (which Python's `json` and
            pandas write, but JSON has not) is named, with the fix.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        literal = _non_json_number(body, exc.pos)
        if literal == "NaN":
            raise InputError(
                f"the request body is not valid JSON: NaN is not JSON (at character {exc.pos}); send null "
                "for a missing value (Python's json.dumps writes NaN unless allow_nan=False)"
            ) from None
        if literal is not None:
            raise InputError(
                f"the request body is not valid JSON: {literal} is not JSON (at character {exc.pos}); "
                "JSON numbers are finite: send a finite number, or null for a missing value"
            ) from None
        raise InputError(f"the request body is not valid JSON: {exc}") from None


def _non_json_number(body: bytes, pos: int) -> str | None:
    """The NaN or Infinity literal where orjson stopped (`pos` counts characters, not bytes)."""
    text = body.decode("utf-8", errors="replace")
    if pos >= 1 and text.startswith("-Infinity", pos - 1):  # orjson stops just after the sign
        return "-Infinity"
    for literal in ("NaN", "Infinity"):
        if text.startswith(literal, pos):
            return literal
    return None


def decode_ours(body: Any, contract: Contract) -> tuple[Columns, int]:
    """Read `{"instances": [{...}, ...]}` (rows) or `{"inputs": {"col": [...]}}` (columns).

    Raises:
        InputError: the body has neither key, both, or values of the wrong shape.
    """
    if not isinstance(body, dict):
        raise InputError(
            f"the request body is a JSON {json_kind(body)}; expected an object with 'instances' "
            '(a list of rows, e.g. {"instances": [{"age": 41}]}) or \'inputs\' (an object of columns)'
        )
    has_rows, has_columns = "instances" in body, "inputs" in body
    if has_rows == has_columns:
        keys = sorted(body)
        raise InputError(
            f"the request body has keys {echo(keys)}; expected exactly one of 'instances' (a list of rows) "
            "or 'inputs' (an object of column name to values)"
        )
    if has_rows:
        return rows_to_columns(body["instances"], contract, where="'instances'")
    return _columns(body["inputs"], where="'inputs'")


def encode_ours(answer: Answer, model: str) -> dict[str, Any]:
    """Our answer: request id, model, version, predictions and, for classifiers, probabilities by class."""
    p = answer.predictions
    out: dict[str, Any] = {
        "request_id": answer.request_id,
        "model": model,
        "version": answer.version.version,
        "predictions": p.values.tolist(),
    }
    by_class = probabilities_by_class(p)
    if by_class is not None:
        out["probabilities"] = by_class
    return out


def probabilities_by_class(predictions: Predictions) -> list[dict[str, float]] | None:
    """Each row's probabilities as class label (text) to probability; None without them."""
    if predictions.probabilities is None or predictions.classes is None:
        return None
    keys = [str(c) for c in predictions.classes]
    return [dict(zip(keys, row, strict=True)) for row in predictions.probabilities.tolist()]


def decode_mlflow(body: Any, contract: Contract) -> tuple[Columns, int]:
    """Read MLflow's scoring formats: `dataframe_split`, `dataframe_records`, `instances`, `inputs`.

    Raises:
        InputError: none or several of the formats, or a malformed one.
    """
    formats = ("dataframe_split", "dataframe_records", "instances", "inputs")
    if not isinstance(body, dict):
        raise InputError(
            f"the request body is a JSON {json_kind(body)}; expected an object with one of {list(formats)}"
        )
    present = [k for k in formats if k in body]
    unknown = sorted(set(body) - set(formats) - {"params"})
    if len(present) != 1 or unknown:
        raise InputError(
            f"the request body has keys {echo(sorted(body))}; expected exactly one of {list(formats)} "
            "(and optionally 'params'), as MLflow's scoring server reads them"
        )
    key = present[0]
    value = body[key]
    if key == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise InputError(
                "'dataframe_split' must be an object with 'columns' (names) and 'data' (a list of rows); "
                f"got a {json_kind(value)}"
            )
        names = value.get("columns")
        data = value["data"]
        if names is None:
            names = list(contract.names)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InputError(f"'dataframe_split.columns' is {echo(names)}; expected a list of column names")
        for i, row in enumerate(data):
            if not isinstance(row, list) or len(row) != len(names):
                raise InputError(
                    f"row {i} of 'dataframe_split.data' is {_short(row)}; expected a list of {len(names)} "
                    f"values, one per column {names}"
                )
        if not data:
            return {n: [] for n in names}, 0
        return {n: [row[j] for row in data] for j, n in enumerate(names)}, len(data)
    if key == "dataframe_records":
        return rows_to_columns(value, contract, where="'dataframe_records'")
    if key == "instances":
        return rows_to_columns(value, contract, where="'instances'")
    if isinstance(value, dict):
        return _columns(value, where="'inputs'")
    return rows_to_columns(value, contract, where="'inputs'")


def decode_mlflow_csv(body: bytes) -> tuple[Columns, int]:
    """Read a CSV body with a header row, as MLflow's scoring server accepts with `text/csv`.

    Raises:
        InputError: the body is not CSV with a header.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        table = pacsv.read_csv(pa.BufferReader(body))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InputError(
            f"the CSV body cannot be read: {exc}; expected a header row, then one row per line"
        ) from None
    batch = Batch.from_arrow(table)
    return dict(batch.columns), batch.n_rows


def encode_mlflow(answer: Answer) -> dict[str, Any]:
    """MLflow's answer shape: `{"predictions": [...]}`."""
    return {"predictions": answer.predictions.values.tolist()}


def rows_to_columns(rows: Any, contract: Contract, *, where: str) -> tuple[Columns, int]:
    """Turn a list of row objects (or of value lists in contract order) into columns.

    A feature absent from every row is left out, so the contract reports the missing column; a
    feature absent from some rows is a missing value (None) in those rows.

    Raises:
        InputError: `rows` is not a list of objects or of lists of the right length.
    """
    if not isinstance(rows, list):
        raise InputError(f"{where} is a JSON {json_kind(rows)}; expected a list of rows")
    n = len(rows)
    if n == 0:
        return {}, 0
    first = rows[0]
    if isinstance(first, dict):
        for i, row in enumerate(rows):
            if type(row) is not dict:
                raise InputError(
                    f"row {i} of {where} is a JSON {json_kind(row)}; expected an object of feature: value"
                )
        if n == 1:
            return {k: [v] for k, v in first.items()}, 1
        keys: dict[str, None] = {}
        for row in rows:
            keys.update(dict.fromkeys(row))
        return {k: [row.get(k) for row in rows] for k in keys}, n
    if isinstance(first, list):
        names = contract.names
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != len(names):
                raise InputError(
                    f"row {i} of {where} is {_short(row)}; expected an object of feature: value, or a "
                    f"list of {len(names)} values in the contract's order {list(names)}"
                )
        return {name: [row[j] for row in rows] for j, name in enumerate(names)}, n
    if len(contract.names) == 1:
        return {contract.names[0]: list(rows)}, n
    raise InputError(
        f"row 0 of {where} is {_short(first)}; expected an object of feature: value, e.g. "
        f"{{{', '.join(repr(x) + ': ...' for x in contract.names[:3])}}}"
    )


def _columns(value: Any, *, where: str) -> tuple[Columns, int]:
    if not isinstance(value, dict):
        raise InputError(
            f"{where} is a JSON {json_kind(value)}; expected an object of column name to a list of values"
        )
    lengths: dict[str, int] = {}
    for name, column in value.items():
        if not isinstance(column, list):
            raise InputError(
                f"column {echo(name)} of {where} is a JSON {json_kind(column)}; expected a list of values"
            )
        lengths[name] = len(column)
    if len(set(lengths.values())) > 1:
        shown = echo(lengths, limit=200)
        raise InputError(f"the columns of {where} differ in length ({shown}); expected one length for all")
    return dict(value), next(iter(lengths.values()), 0)


def json_kind(value: Any) -> str:
    """The JSON type of a decoded value, as an error message names it ('object', 'array', ...)."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    return type(value).__name__


def _short(value: Any) -> str:
    """What a value is, without its content (which may be personal data): its shape, not its text."""
    if isinstance(value, list):
        return f"a list of {len(value)} values"
    return f"a JSON {json_kind(value)}"
