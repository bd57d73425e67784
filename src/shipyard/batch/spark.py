"""The Spark engine: the same scoring step inside Spark executors, on any Spark master.

Each input is read by Spark (Parquet, CSV with every column as text, JSON Lines), its rows
numbered in file order (Parquet's `_metadata.row_index`; for text files, each partition's offset
from a count of the partitions before it), and scored with `mapInArrow`: every Python worker loads the version
once, from the artifact store by its digest (no metadata store needed on the executors), and
runs `Scorer.score` on each Arrow batch, the step the local engine runs. Scored rows and
rejected rows are written by Spark's committer under `<output>/spark-SSSSS/` and
`<output>/rejects/spark-SSSSS/`; an input is recorded as done (one unit) once both are written, so
a resumed job rewrites only the inputs not yet done.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Generator, Iterator
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from shipyard.batch.engine import Work
from shipyard.batch.jobs import Job, UnitDone
from shipyard.batch.parts import output_root
from shipyard.batch.scoring import Scorer
from shipyard.batch.sources import Source, csv_nulls
from shipyard.core.batch import Batch
from shipyard.errors import BatchError, MissingDependencyError, ShipyardError
from shipyard.registry.loaded import LoadedModel, warm_up
from shipyard.registry.records import ModelVersion

__all__ = ["SparkEngine"]

_ROW = "__shipyard_row"
_PART = "__shipyard_partition"
_REASON = "__shipyard_reason"
_LOADED: dict[tuple[str, str], LoadedModel] = {}  # per Python worker: loaded once


class SparkEngine:
    """Score a job on Spark: each input is one unit, scored by `mapInArrow` on the executors.

    The job's options say where: `spark_master` (`local[*]` by default, `spark://host:7077`,
    `yarn`, ...), and `batch_rows` (rows per Arrow batch).
    """

    formats: ClassVar[tuple[str, ...]] = ("parquet",)

    def units(self, work: Work) -> Generator[UnitDone, None, None]:
        """Score every input of the job not done yet, handing each back once Spark wrote it.

        Raises:
            MissingDependencyError: pyspark is not installed.
            BatchError: Spark failed (the message gives the Python error inside its own), or the
                output folder cannot be made.
        """
        output_root(work.job)
        master = str(work.job.options.get("spark_master") or "local[*]")
        session = _session(work.job, master)
        for index, source in enumerate(work.job.sources):
            if 0 in work.job.done.get(index, frozenset()):
                continue
            try:
                done = _score_source(session, work, index)
            except Exception as exc:  # Spark's own errors (analysis, executors) name the cause in their text
                if isinstance(exc, ShipyardError):
                    raise
                raise BatchError(f"Spark failed on {source.url}: {_cause(str(exc))}") from exc
            yield done


def _session(job: Job, master: str) -> Any:
    """The Spark session for `job` on `master` (Spark's own, made once per process)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise MissingDependencyError(
            "--engine spark needs pyspark; install it with: pip install 'shipyard[spark]'"
        ) from None
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning, module="pyspark")
    # Python workers run this interpreter (the one with shipyard installed) unless told otherwise.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master(master)
        .appName(f"shipyard batch {job.id}")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(job.options["batch_rows"]))
        # Spark's own pattern misses SHIPYARD_ENCRYPTION_KEY and SHIPYARD_MASKING_KEY, which
        # executors get through spark.executorEnv: keep them out of its logs and event files too.
        .config("spark.redaction.regex", _REDACTED)
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def _score_source(session: Any, work: Work, index: int) -> UnitDone:
    """Score input `index` of the job with Spark; its parts are written when this returns."""
    from pyspark.sql import functions as f
    from pyspark.sql.pandas.types import from_arrow_schema

    source, loaded = work.job.sources[index], work.loaded
    frame = _read(session, source)
    columns = list(frame.columns)
    offsets: dict[int, int] = {}
    if source.fmt == "parquet":  # Parquet knows each row's place in its file
        numbered_frame = frame.select("*", f.col("_metadata.row_index").alias(_ROW))
    else:
        # A text file is split into partitions in file order: a row's number is the rows of the
        # partitions before its own plus its place in its partition.
        numbered_frame = frame.withColumn(_PART, f.spark_partition_id())
        counts = dict(numbered_frame.groupBy(_PART).count().collect())
        total = 0
        for part in sorted(counts):
            offsets[int(part)], total = total, total + int(counts[part])
    scorer = work.scorer(index)
    schema = _schema(scorer, columns, frame.schema)
    score = _scorer(
        loaded.version,
        store_url=work.store_url,
        trust_pickle=work.trust_pickle,
        signed=loaded.signed,
        template=scorer,
        schema=schema,
        offsets=offsets,
        text=source.fmt == "csv",
    )
    scored = numbered_frame.mapInArrow(score, from_arrow_schema(schema)).persist()
    try:
        output = work.job.output.rstrip("/")
        good = scored.where(f.col(_REASON).isNull())
        good.select(*_output_columns(scorer)).write.mode("overwrite").parquet(f"{output}/spark-{index:05d}")
        bad = scored.where(f.col(_REASON).isNotNull())
        n_bad = bad.count()
        if n_bad:
            bad.select(f.col("row"), f.lit(source.url).alias("input_file"),
                       f.col(_REASON).alias("reason"), *[f.col(f"in:{c}").alias(c) for c in columns]
                       ).write.mode("overwrite").parquet(f"{output}/rejects/spark-{index:05d}")  # fmt: skip
        total = scored.count()
    finally:
        scored.unpersist()
    return UnitDone(index, 0, total, total - n_bad, n_bad)


def _cause(text: str) -> str:
    """The Python error inside a Spark error's text (its last `SomethingError: ...` line)."""
    found = re.findall(r"^\s*(?:[\w]+\.)*(\w+(?:Error|Exception): .+)$", text, flags=re.MULTILINE)
    return found[-1].strip() if found else text.strip().splitlines()[0]


def _read(session: Any, source: Source) -> Any:
    if source.fmt == "parquet":
        return session.read.parquet(source.url)
    if source.fmt == "csv":
        return session.read.option("header", True).option("inferSchema", False).csv(source.url)
    return session.read.json(source.url)


def _output_columns(scorer: Scorer) -> list[str]:
    return list(scorer.empty().schema.names)


def _schema(scorer: Scorer, columns: list[str], spark_schema: Any) -> pa.Schema:
    """What the executors return: the output's columns, the reason, and each input as text."""
    probe = scorer.scored(
        Batch.from_records([dict.fromkeys(scorer.passthrough, "")]) if scorer.passthrough else Batch({}, 1),
        None,
        [0],
        warm_up(scorer.loaded),
    )
    fields = [
        pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
        for f in probe.schema
    ]
    for name in scorer.passthrough:
        spark_type = spark_schema[name].dataType.typeName()
        kind = {"long": pa.int64(), "integer": pa.int64(), "double": pa.float64(), "boolean": pa.bool_()}
        fields = [
            pa.field(name, kind.get(spark_type, pa.string())) if fd.name == name else fd for fd in fields
        ]
    fields.append(pa.field(_REASON, pa.string()))
    fields += [pa.field(f"in:{c}", pa.string()) for c in columns]
    return pa.schema(fields)


_REDACTED = r"(?i)secret|password|token|access[.]?key|encryption|masking|api.?key"


def _scorer(
    version: ModelVersion,
    *,
    store_url: str,
    trust_pickle: bool,
    signed: bool,
    template: Scorer,
    schema: pa.Schema,
    offsets: dict[int, int],
    text: bool,
) -> Any:
    """The function each executor runs on its Arrow batches (pickled with what it needs)."""
    input_url, passthrough, name_input = template.input_url, template.passthrough, template.name_input
    explain = template.explain

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        key = (version.artifact_digest, store_url)
        loaded = _LOADED.get(key)
        if loaded is None:
            from dataclasses import replace

            from shipyard.config import Settings
            from shipyard.registry.registry import artifact_store, load_version

            # The executor's own environment gives the master key (spark.executorEnv...), never the task.
            store = artifact_store(replace(Settings.from_env(), store_url=store_url))
            # The driver's load verified the signature (a pyfunc model needs one), or refused it.
            loaded = _LOADED[key] = load_version(version, store, trust_pickle=trust_pickle, signed=signed)
        scorer = Scorer(
            loaded, input_url=input_url, passthrough=passthrough, name_input=name_input, explain=explain
        )
        seen = 0  # rows of this partition so far (text inputs)
        for given in batches:
            if given.num_rows == 0:
                continue
            record_batch = csv_nulls(given) if text else given  # missing cells as the local engine reads them
            if _ROW in record_batch.schema.names:
                row = record_batch.column(_ROW).to_numpy()
                batch = Batch.from_arrow(record_batch.drop_columns([_ROW]))
            else:
                start = offsets[int(record_batch.column(_PART)[0].as_py())] + seen
                row = np.arange(start, start + record_batch.num_rows, dtype=np.int64)
                seen += record_batch.num_rows
                batch = Batch.from_arrow(record_batch.drop_columns([_PART]))
            good, bad = scorer.score(batch, row)
            for table, rejected in ((good, False), (bad, True)):
                if table is not None and table.num_rows:
                    yield _conform(table, schema, rejected)

    return score


def _plain(kind: pa.DataType) -> pa.DataType:
    return kind.value_type if pa.types.is_dictionary(kind) else kind


def _conform(table: pa.Table, schema: pa.Schema, rejected: bool) -> pa.RecordBatch:
    """A scored or rejected table laid out as `schema`, the other side's columns null."""
    n = table.num_rows
    columns = []
    for field in schema:
        name = field.name
        if rejected and name == "row":
            source = table.column("row")
        elif rejected and name == _REASON:
            source = table.column("reason")
        elif rejected and name.startswith("in:"):
            source = table.column(name[3:]) if name[3:] in table.column_names else None
        elif not rejected and name in table.column_names and name != _REASON and not name.startswith("in:"):
            source = table.column(name)
        else:
            source = None
        if source is None:
            columns.append(pa.nulls(n, field.type))
            continue
        array = source.combine_chunks() if isinstance(source, pa.ChunkedArray) else source
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        columns.append(array.cast(field.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)
