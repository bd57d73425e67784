"""Output parts: each unit's scored rows (and rejected rows) written as one file, in place only
when whole.

A part is written on a thread of its own as a `WholeFile` and put in place when the unit is
complete, so a part that exists is whole: on a local disk under a temporary name then renamed
(a job killed mid-unit leaves only a temporary file, which the redone unit replaces), on an
object store as an upload completed only then (a job killed mid-unit leaves no object).
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import pyarrow as pa

from shipyard.batch.jobs import Job
from shipyard.core.batch import PROBA_PREFIX
from shipyard.errors import BatchError
from shipyard.store.objects import WholeFile, open_url

__all__ = ["OUTPUT_FORMATS", "PartWriter", "output_root"]

#: The formats the local engine writes parts in.
OUTPUT_FORMATS = ("parquet", "csv", "jsonl")
_END = object()


def output_root(job: Job) -> tuple[Any, str]:
    """The output's filesystem and folder, made if new."""
    fs, root = open_url(job.output)
    try:
        fs.makedirs(root, exist_ok=True)
    except OSError as exc:
        raise BatchError(f"cannot make the output folder {job.output}: {exc}") from None
    return fs, root


class PartWriter:
    """Write one part's tables on a thread, as a `WholeFile`; `commit` puts it in place.

    Args:
        fs: the output's filesystem.
        path: where the part goes once whole.
        fmt: 'parquet', 'csv' or 'jsonl'.
    """

    def __init__(self, fs: Any, path: str, fmt: str) -> None:
        self.fs, self.path, self.fmt = fs, path, fmt
        self.file = WholeFile(fs, path)
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.rows = 0
        self.finished = False
        self.thread = threading.Thread(target=self._run, name="shipyard-batch-write", daemon=True)
        self.thread.start()

    def write(self, table: pa.Table) -> None:
        """Hand `table` to the writing thread (raising the error that stopped it, if one did)."""
        if self.error is not None:
            raise self.error
        self.rows += table.num_rows
        self.queue.put(table)

    def finish(self) -> None:
        """No more tables: the thread writes what it holds and closes the file."""
        self.finished = True
        self.queue.put(_END)

    def commit(self) -> None:
        """Wait for the file to be written, then put it in place (rename or complete the upload)."""
        self.thread.join()
        if self.error is not None:
            self.file.discard()
            raise self.error
        self.file.commit()

    def abandon(self) -> None:
        """Stop writing and drop what was written: the part is not put in place."""
        if not self.finished:
            self.finish()
        self.thread.join(timeout=30)
        self.file.discard()

    def _run(self) -> None:
        writer: Any = None
        try:
            while (table := self.queue.get()) is not _END:
                writer = writer or _open_writer(self.file.handle, self.fmt, table.schema)
                writer.write_table(table)
            if writer is not None:
                writer.close()  # the format's footer; the file itself stays open until commit
        except BaseException as exc:
            self.error = exc
            while self.queue.get() is not _END:  # let the producer finish its puts
                pass


class _JsonLinesWriter:
    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def write_table(self, table: pa.Table) -> None:
        import orjson

        option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
        self.handle.write(b"".join(orjson.dumps(r, option=option) for r in table.to_pylist()))

    def close(self) -> None:
        return None


def _open_writer(handle: Any, fmt: str, schema: pa.Schema) -> Any:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetWriter(handle, schema, compression="snappy", **_parquet_encodings(schema))
    if fmt == "csv":
        import pyarrow.csv as pcsv

        return pcsv.CSVWriter(handle, schema)
    return _JsonLinesWriter(handle)


def _parquet_encodings(schema: pa.Schema) -> dict[str, Any]:
    """Dictionaries for the columns that repeat (version, labels, text), none for measurements;
    min/max statistics for every column but the class probabilities.

    Probabilities and row numbers almost never repeat: trying a dictionary on them cost four
    times the CPU of writing them plain and made the file larger. Row numbers count up by one,
    which delta encoding stores in almost nothing. A page of probabilities spans nearly all of
    [0, 1], so their statistics would let no reader skip anything, and computing them was 40%
    of the CPU of writing a part.
    """
    repeating = [f.name for f in schema if f.name != "row" and not pa.types.is_floating(f.type)]
    encodings = {"row": "DELTA_BINARY_PACKED"} if "row" in schema.names else {}
    with_statistics = [n for n in schema.names if not n.startswith(PROBA_PREFIX)]
    return {"use_dictionary": repeating, "column_encoding": encodings, "write_statistics": with_statistics}
