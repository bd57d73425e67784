"""The batch part of `shipyard demo`: a file scored in batch, with its bad rows quarantined."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.cli.render import console, table
from shipyard.registry import Registry

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["batch_demo"]


def batch_demo(reg: Registry, rows: pd.DataFrame) -> None:
    """Write `rows` to Parquet with three bad incomes, score it by batch, show the rejects."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from shipyard.batch.run import BatchOptions, start_job

    folder = reg.settings.home / "batch"
    folder.mkdir(parents=True, exist_ok=True)
    frame = rows.drop(columns=["default"]).reset_index(drop=True)
    frame["application"] = [f"a{i:05d}" for i in range(len(frame))]
    frame["income"] = frame["income"].astype(object)
    frame.loc[[17, 1234, 3999], "income"] = "unknown"  # not numbers: these rows are rejected
    source = folder / "applications.parquet"
    table_ = pa.Table.from_pandas(frame.astype({"income": str}), preserve_index=False)
    pq.write_table(table_, source, row_group_size=1000)
    output = folder / "scored"
    console.print(
        f"\n15. [bold]shipyard batch run credit@staging --input {source.name} --output scored/ "
        "--passthrough application --overwrite[/]"
    )
    summary = start_job(  # overwrite: the folder is the demo's own, and an earlier demo left its parts
        reg,
        "credit@staging",
        str(source),
        str(output),
        BatchOptions(passthrough=("application",)),
        overwrite=True,
    )
    job = summary.job
    console.print(
        f"   job {job.id}: {job.rows:,} rows = {job.scored:,} scored + {job.rejected:,} rejected, "
        f"{job.units_done} parts, {summary.rate:,.0f} rows/s; output in {output}"
    )
    rejects = [
        r for part in sorted((output / "rejects").glob("*.parquet")) for r in pq.read_table(part).to_pylist()
    ]
    table("   quarantined rows (rejects/)", ["row", "application", "reason"],
          [(r["row"], r["application"], r["reason"]) for r in rejects])  # fmt: skip
    console.print(f"   resume a stopped job with 'shipyard batch resume {job.id}' (every row written once)")
