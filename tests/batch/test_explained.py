"""`--explain`: each scored row's attributions as columns of the output, on every engine, kept by
a resume; rejected rows get none."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from credit_files import read_parts
from shipyard import Registry
from shipyard.batch.engine import Work
from shipyard.batch.explained import explain_names
from shipyard.batch.jobs import Jobs
from shipyard.batch.local import LocalEngine
from shipyard.batch.run import BatchOptions, resume_job, start_job
from shipyard.batch.sources import discover
from shipyard.errors import BatchError
from shipyard.explanations.explaining import explain_rows
from shipyard.security.context import Context

FEATURES = ("a", "b", "c")


def table(n: int, *, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(size=n) for name in FEATURES})
    frame["y"] = (frame["a"] - 0.5 * frame["b"] + 0.2 * rng.normal(size=n) > 0).astype(int)
    frame["v"] = 2.0 * frame["a"] + frame["c"]
    return frame


@pytest.fixture
def small(sqlite_registry: Registry) -> Registry:
    """A classifier 'clf:1' and a regressor 'reg:1' on three numeric features, fitted on 60 rows."""
    train = table(60)
    X = train[list(FEATURES)]
    sqlite_registry.register(LogisticRegression().fit(X, train["y"]), name="clf",
                             train_data=train.drop(columns="v"), target="y")  # fmt: skip
    sqlite_registry.register(LinearRegression().fit(X, train["v"]), name="reg",
                             train_data=train.drop(columns="y"), target="v")  # fmt: skip
    return sqlite_registry


def inputs(n: int, bad: tuple[int, ...] = ()) -> pd.DataFrame:
    frame = table(n, seed=1)[list(FEATURES)]
    frame["id"] = [f"r{i}" for i in range(n)]
    if bad:
        frame["b"] = frame["b"].astype(object)
        frame.loc[list(bad), "b"] = "oops"
    return frame


def test_explained_rows_carry_one_attribution_per_feature_and_class_that_add_up(
    small: Registry, tmp_path: Path
) -> None:
    frame = inputs(40, bad=(3,))
    frame.to_csv(tmp_path / "in.csv", index=False)
    options = BatchOptions(
        explain=True, explain_method="exact", passthrough=("id",), max_reject_share=0.5, batch_rows=16
    )  # exact: per-class probabilities (auto gives the linear model's one log-odds output)
    job = start_job(small, "clf:1", str(tmp_path / "in.csv"), str(tmp_path / "out"), options).job
    assert (job.state, job.scored, job.rejected) == ("succeeded", 39, 1)
    assert job.options["explain"] is True and job.options["explain_method"] == "exact"
    out = read_parts(tmp_path / "out").sort_values("row", ignore_index=True)
    names = explain_names(FEATURES, ("0", "1"))
    assert names[:3] == ["shap_0_a", "shap_0_b", "shap_0_c"] and names[-3:] == [
        "shap_base_0", "shap_base_1", "shap_additivity_error",
    ]  # fmt: skip
    assert set(names) <= set(out.columns) and 3 not in out["row"].tolist()  # the rejected row: none
    for k in ("0", "1"):
        total = out[[f"shap_{k}_{f}" for f in FEATURES]].sum(axis=1) + out[f"shap_base_{k}"]
        np.testing.assert_allclose(total, out[f"proba_{k}"], atol=1e-9)
    assert (out["shap_additivity_error"] <= 1e-6).all()
    expected = explain_rows(
        small.load("clf:1"), frame.drop(index=3)[list(FEATURES)].astype(float), method="exact"
    )
    assert expected.attributions is not None
    np.testing.assert_allclose(out["shap_1_a"], expected.attributions.values[:, 0, 1], atol=1e-12)


def test_a_single_output_has_shap_feature_columns_and_unexplained_jobs_have_none(
    small: Registry, tmp_path: Path
) -> None:
    inputs(30).to_parquet(tmp_path / "in.parquet")
    start_job(small, "reg:1", str(tmp_path / "in.parquet"), str(tmp_path / "out"),
              BatchOptions(explain=True, explain_method="exact"))  # fmt: skip
    out = read_parts(tmp_path / "out")
    assert [c for c in out.columns if c.startswith("shap_")] == explain_names(FEATURES, ("value",))
    total = out[["shap_a", "shap_b", "shap_c"]].sum(axis=1) + out["shap_base"]
    np.testing.assert_allclose(total, out["prediction"], atol=1e-9)
    start_job(small, "reg:1", str(tmp_path / "in.parquet"), str(tmp_path / "plain"))
    assert not [c for c in read_parts(tmp_path / "plain").columns if c.startswith("shap_")]
    with pytest.raises(BatchError, match="--explain-method is 'shapley'; expected one of auto"):
        BatchOptions(explain=True, explain_method="shapley")


def test_a_resumed_job_keeps_explaining(small: Registry, tmp_path: Path) -> None:
    inputs(30).to_csv(tmp_path / "in.csv", index=False)
    context = Context(small.settings, small.meta, small.principal, "t")
    jobs, loaded = Jobs(context), small.load("clf:1")
    options = asdict(BatchOptions(explain=True, unit_rows=10, batch_rows=5)) | {"passthrough": []}
    job = jobs.create(ref="clf:1", model="clf", version=1, sources=discover(str(tmp_path / "in.csv")),
                      output=str(tmp_path / "out"), options=options)  # fmt: skip
    units = LocalEngine().units(Work(job, loaded))
    jobs.unit_done(job, next(units))  # one unit in place, then the process stops
    units.close()
    jobs.finish(job, "failed", "interrupted")
    resumed = resume_job(small, job.id).job
    assert (resumed.state, resumed.rows, resumed.units_done) == ("succeeded", 30, 3)
    parts = sorted((tmp_path / "out").glob("part-*.parquet"))
    assert len(parts) == 3
    for part in parts:  # the part written before the stop and those written by the resume alike
        assert {"shap_a", "shap_base", "shap_additivity_error"} <= set(pd.read_parquet(part).columns)


@pytest.mark.slow
def test_spark_explains_like_the_local_engine(small: Registry, tmp_path: Path) -> None:
    pytest.importorskip("pyspark")
    inputs(50, bad=(7,)).astype({"b": str}).to_parquet(tmp_path / "in.parquet")
    options = {"explain": True, "explain_method": "exact", "passthrough": ("id",), "max_reject_share": 0.5}
    start_job(small, "clf:1", str(tmp_path / "in.parquet"), str(tmp_path / "local"), BatchOptions(**options))
    spark = start_job(small, "clf:1", str(tmp_path / "in.parquet"), str(tmp_path / "spark"),
                      BatchOptions(**options, engine="spark", spark_master="local[1]")).job  # fmt: skip
    assert (spark.state, spark.scored, spark.rejected) == ("succeeded", 49, 1)
    ours = read_parts(tmp_path / "local").sort_values("row", ignore_index=True)
    theirs = read_parts(tmp_path / "spark" / "spark-00000", "*.parquet").sort_values("row", ignore_index=True)
    assert set(explain_names(FEATURES, ("0", "1"))) <= set(theirs.columns)
    pd.testing.assert_frame_equal(
        ours.astype({"model_version": str}),
        theirs[ours.columns].astype({"model_version": str}),
        check_dtype=False,
    )
