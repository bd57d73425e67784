"""Output parts: how they are encoded."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from credit_files import rows, write_parquet
from shipyard import Registry
from shipyard.batch.run import BatchOptions, start_job


def test_parquet_output_keeps_dictionaries_for_repeating_columns_only(
    registry: Registry, tmp_path: Path
) -> None:
    source = write_parquet(rows(500), tmp_path / "in.parquet", row_group=500)
    start_job(
        registry, "credit:1", str(source), str(tmp_path / "out"), BatchOptions(passthrough=("customer",))
    )
    [part] = sorted((tmp_path / "out").glob("part-*.parquet"))
    meta = pq.ParquetFile(part).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    assert "DELTA_BINARY_PACKED" in encodings["row"]
    assert "RLE_DICTIONARY" in encodings["model_version"]
    assert "RLE_DICTIONARY" in encodings["prediction"]
    assert "RLE_DICTIONARY" not in encodings["proba_1"]
