"""Tabular files: read rows from CSV, Parquet and JSON Lines; write results atomically."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.batch import Batch
from shipyard.core.contract import Contract
from shipyard.core.dtypes import DType
from shipyard.errors import InputError
from shipyard.store.files import atomic_path

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["FORMATS", "json_lines", "read_rows", "write_table"]

FORMATS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


def _format_of(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{path} has suffix {path.suffix!r}; expected one of {sorted(FORMATS)} "
            "(CSV, Parquet or JSON Lines)"
        )
    return fmt


def read_rows(path: str | os.PathLike[str], *, contract: Contract | None = None) -> Batch:
    """Read a CSV, Parquet or JSON Lines file into a `Batch`.

    With a contract, CSV columns of string features are read as text (so '007' stays '007'),
    and numeric columns are left to the contract to parse, so a bad cell is reported with its
    row instead of failing the whole file.

    Raises:
        InputError: the file is missing, empty, or not of its suffix's format.
    """
    file = Path(path)
    fmt = _format_of(file)
    if not file.is_file():
        raise InputError(f"input file {file} does not exist")
    if file.stat().st_size == 0:
        raise InputError(f"input file {file} is empty; expected a header and at least one row")
    try:
        if fmt == "csv":
            return Batch.from_arrow(_read_csv(file, contract))
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return Batch.from_arrow(pq.read_table(file))
        return _read_jsonl(file)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot read {file} as {fmt}: {exc}") from None


def _read_csv(file: Path, contract: Contract | None) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    column_types: dict[str, Any] = {}
    if contract is not None:
        column_types = {f.name: pa.string() for f in contract.features if f.dtype is DType.STRING}
    convert = pcsv.ConvertOptions(column_types=column_types, strings_can_be_null=True)
    table = pcsv.read_csv(file, convert_options=convert)
    if table.num_columns == 0:
        raise InputError(f"input file {file} has no columns; expected a header row")
    return table


def _read_jsonl(file: Path) -> Batch:
    with file.open("rb") as handle:
        records = list(json_lines(handle, str(file)))
    if not records:
        raise InputError(f"input file {file} has no rows")
    return Batch.from_records(records)


def json_lines(handle: Iterable[bytes | str], where: str) -> Iterator[dict[str, Any]]:
    """The objects of a JSON Lines stream, one per non-blank line.

    Raises:
        InputError: a line is not JSON, or not an object; the message names `where` and the line.
    """
    import orjson

    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InputError(f"{where} line {number} is not JSON: {exc}") from None
        if not isinstance(record, dict):
            raise InputError(
                f"{where} line {number} is a JSON {type(record).__name__}; expected one object "
                "of feature: value per line"
            )
        yield record


def write_table(table: pa.Table, path: str | os.PathLike[str]) -> Path:
    """Write `table` to CSV, Parquet or JSON Lines by suffix, via a temporary name and a rename.

    Raises:
        InputError: the suffix names no supported format.
    """
    file = Path(path)
    fmt = _format_of(file)
    with atomic_path(file) as tmp:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, tmp)
        elif fmt == "csv":
            import pyarrow.csv as pcsv

            pcsv.write_csv(table, tmp)
        else:
            with tmp.open("w", encoding="utf-8") as handle:
                for row in table.to_pylist():
                    handle.write(json.dumps(row, default=str) + "\n")
    return file
