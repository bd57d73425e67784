"""A batch job on S3: inputs read from `s3://`, parts and rejects written there whole (local engine),
and a part abandoned mid-upload never seen."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.s3.s3servers import BUCKET, S3Server, keys

from credit_files import rows
from shipyard import Registry, Settings
from shipyard.batch.parts import PartWriter
from shipyard.batch.run import BatchOptions, start_job
from shipyard.store.objects import open_url


@pytest.fixture(scope="module")
def reg(
    tmp_path_factory: pytest.TempPathFactory, small_credit: pd.DataFrame, small_model: Any
) -> Iterator[Registry]:
    """credit:1 in a local registry; the job's files are on S3."""
    with Registry(Settings.for_home(tmp_path_factory.mktemp("home")), actor="tester") as registry:
        registry.register(small_model, name="credit", train_data=small_credit, target="default")
        yield registry


def test_a_job_reads_its_input_from_s3_and_writes_its_parts_there(
    s3: S3Server, store_url: str, reg: Registry
) -> None:
    fs, root = open_url(store_url)
    frame = rows(300, seed=3)
    parquet = io.BytesIO()
    frame.to_parquet(parquet, row_group_size=100)
    bad = frame.head(20).astype({"income": object})
    bad.loc[[2, 7], "income"] = "unknown"
    fs.pipe(
        {f"{root}/in/a.parquet": parquet.getvalue(), f"{root}/in/b.csv": bad.to_csv(index=False).encode()}
    )
    summary = start_job(
        reg, "credit:1", f"{store_url}/in/*", f"{store_url}/out", BatchOptions(unit_rows=10, workers=1)
    )
    assert (summary.job.state, summary.job.rows, summary.job.rejected) == ("succeeded", 320, 2)
    written = keys(s3, f"{store_url}/out/")
    parts = sorted(k for k in written if k.rsplit("/", 2)[-2] == "out")
    assert len(parts) == 3 + 2  # three row groups of a.parquet, two units of b.csv
    assert [k for k in written if k.rsplit("/", 1)[-1].startswith(".")] == []  # nothing temporary
    out = pd.concat([pq.read_table(io.BytesIO(fs.cat_file(f"{BUCKET}/{k}"))).to_pandas() for k in parts])
    assert len(out) == 318
    expected = reg.load("credit:1").predict(frame.drop(columns="customer"))
    scored = out.iloc[:300]
    assert list(scored["prediction"]) == list(expected.values)
    [rejects] = [k for k in written if "/rejects/" in k]
    assert len(pq.read_table(io.BytesIO(fs.cat_file(f"{BUCKET}/{rejects}")))) == 2


def test_an_abandoned_part_leaves_no_object_and_no_upload(s3: S3Server, store_url: str) -> None:
    fs, root = open_url(store_url)
    writer = PartWriter(fs, f"{root}/out/part-00000-000000.parquet", "parquet")
    noise = pa.table({"x": np.random.default_rng(0).random(1_500_000)})  # 12 MB: uploaded in parts
    writer.write(noise)
    writer.finish()
    writer.thread.join()
    prefix = store_url.removeprefix(f"s3://{BUCKET}/")
    uploads = s3.client().list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", [])
    assert len(uploads) == 1  # under way, not complete: nothing to list yet
    assert keys(s3, store_url) == []
    writer.abandon()  # a unit that failed: its part is not put in place
    assert keys(s3, store_url) == []
    assert s3.client().list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", []) == []
