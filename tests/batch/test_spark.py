"""The Spark engine in local mode gives the local engine's results on the same input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from tests.batch.test_batch import rows, write_parquet

from shipyard import Registry
from shipyard.batch.run import BatchOptions, start_job

pytest.importorskip("pyspark")
pytestmark = pytest.mark.slow


@pytest.fixture
def registry(sqlite_registry: Registry, credit: pd.DataFrame, credit_pipeline: Any) -> Registry:
    sqlite_registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    return sqlite_registry


def read(folder: Path) -> pd.DataFrame:
    parts = sorted(folder.glob("*.parquet"))  # this folder's parts only, not rejects/
    frame = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    return frame.astype({"model_version": str}) if "model_version" in frame else frame


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_spark_in_local_mode_scores_like_the_local_engine(
    registry: Registry, tmp_path: Path, fmt: str
) -> None:
    frame = rows(3000, bad=(11, 2900))
    if fmt == "parquet":
        source = write_parquet(frame, tmp_path / "in.parquet", row_group=1000)
    else:  # cells that mean missing, which Spark's CSV reader alone would keep as text
        frame.loc[[5, 6], "income"] = ["NA", "n/a"]
        source = tmp_path / "in.csv"
        frame.to_csv(source, index=False)
    options = {"passthrough": ("customer",), "max_reject_share": 0.5}
    local = start_job(registry, "credit:1", str(source), str(tmp_path / "local"), BatchOptions(**options)).job
    spark = start_job(
        registry, "credit:1", str(source), str(tmp_path / "spark"),
        BatchOptions(**options, engine="spark", spark_master="local[2]"),
    ).job  # fmt: skip
    assert (spark.state, spark.rows) == ("succeeded", 3000)
    assert (local.rows, local.scored, local.rejected) == (spark.rows, spark.scored, spark.rejected)
    ours = read(tmp_path / "local").sort_values("row", ignore_index=True)
    theirs = read(tmp_path / "spark" / "spark-00000").sort_values("row", ignore_index=True)
    pd.testing.assert_frame_equal(ours, theirs[ours.columns], check_dtype=False)
    rejected = read(tmp_path / "spark" / "rejects" / "spark-00000").sort_values("row", ignore_index=True)
    local_rejected = read(tmp_path / "local" / "rejects").sort_values("row", ignore_index=True)
    assert rejected["reason"].tolist() == local_rejected["reason"].tolist()
    unknown = rejected[rejected["reason"].str.contains("'unknown': expected a number")]
    assert unknown["row"].tolist() == [11, 2900]
    assert unknown["customer"].tolist() == ["c11", "c2900"]
    assert not rejected["reason"].str.contains("'NA'|'n/a'").any()  # missing, not text


def test_an_executor_failure_fails_the_job_with_its_python_cause(registry: Registry, tmp_path: Path) -> None:
    from dataclasses import asdict

    from shipyard.batch.engine import run_job
    from shipyard.batch.jobs import Jobs
    from shipyard.batch.sources import discover
    from shipyard.errors import BatchError

    source = write_parquet(rows(200), tmp_path / "in.parquet", row_group=100)
    loaded = registry.load("credit:1")
    jobs = Jobs(registry.meta, actor="t")
    options = asdict(BatchOptions(engine="spark", spark_master="local[1]")) | {"passthrough": []}
    job = jobs.create(ref="credit:1", model="credit", version=1, sources=discover(str(source)),
                      output=str(tmp_path / "out"), options=options)  # fmt: skip
    cause = r"Spark failed on .*in\.parquet: StoreError: artifact \w+ is missing"
    with pytest.raises(BatchError, match=cause):
        run_job(jobs, job, loaded, store_url=str(tmp_path / "no-store"))  # executors find no artifact
    assert jobs.get(job.id).state == "failed"
