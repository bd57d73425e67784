"""Credit applications as input files for batch jobs, and their output parts read back."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def rows(n: int, *, seed: int = 1, bad: tuple[int, ...] = ()) -> pd.DataFrame:
    """Credit applications; rows in `bad` carry an income that is not a number."""
    from shipyard.datasets import make_credit

    frame = make_credit(n, seed=seed).drop(columns="default")
    frame["customer"] = [f"c{i}" for i in range(n)]
    if bad:
        frame["income"] = frame["income"].astype(object)
        frame.loc[list(bad), "income"] = "unknown"
    return frame


def write_parquet(frame: pd.DataFrame, path: Path, *, row_group: int) -> Path:
    table = pa.Table.from_pandas(frame.astype({"income": str}) if frame["income"].dtype == object else frame,
                                 preserve_index=False)  # fmt: skip
    pq.write_table(table, path, row_group_size=row_group)
    return path


def read_parts(folder: Path, pattern: str = "part-*.parquet") -> pd.DataFrame:
    parts = sorted(folder.glob(pattern))
    return pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)
