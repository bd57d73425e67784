"""`Scorer`: one batch through the version's scoring step, laid out as scored and rejected rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard import Registry
from shipyard.batch.scoring import Scorer
from shipyard.core.batch import Batch
from shipyard.errors import UnresumableJobError
from shipyard.registry.loaded import LoadedModel


@pytest.fixture
def loaded(sqlite_registry: Registry, credit: pd.DataFrame, credit_pipeline: Any) -> LoadedModel:
    sqlite_registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    return sqlite_registry.load("credit:1")


def applications(credit: pd.DataFrame, n: int, *, bad: tuple[int, ...] = ()) -> Batch:
    """`n` credit applications with a customer id; rows in `bad` carry an income that is not a number."""
    frame = credit.drop(columns=["default"]).head(n).reset_index(drop=True)
    frame["customer"] = [f"c{i}" for i in range(n)]
    if bad:
        frame["income"] = frame["income"].astype(object)
        frame.loc[list(bad), "income"] = "unknown"
    return Batch.from_pandas(frame)


def test_valid_rows_are_scored_with_their_file_row_numbers_and_nothing_is_rejected(
    loaded: LoadedModel, credit: pd.DataFrame
) -> None:
    scorer = Scorer(loaded, input_url="file:///in.parquet", passthrough=("customer",))
    batch = applications(credit, 4)
    good, bad = scorer.score(batch, np.arange(100, 104))
    assert bad is None
    assert good is not None
    assert good.column_names == ["row", "model_version", "customer", "prediction", "proba_0", "proba_1"]
    assert good["row"].to_pylist() == [100, 101, 102, 103]
    assert good["customer"].to_pylist() == ["c0", "c1", "c2", "c3"]
    assert set(good["model_version"].to_pylist()) == {"credit:1"}
    direct = loaded.predict(batch)
    np.testing.assert_allclose(good["proba_1"].to_numpy(), direct.probabilities[:, 1])


def test_rows_that_fail_the_contract_are_set_aside_with_their_reasons(
    loaded: LoadedModel, credit: pd.DataFrame
) -> None:
    scorer = Scorer(loaded, input_url="file:///in.parquet", passthrough=("customer",))
    good, bad = scorer.score(applications(credit, 5, bad=(1, 3)), np.arange(500, 505))
    assert good is not None and bad is not None
    assert good["row"].to_pylist() == [500, 502, 504]
    assert good["customer"].to_pylist() == ["c0", "c2", "c4"]
    assert bad["row"].to_pylist() == [501, 503]
    assert set(bad["input_file"].to_pylist()) == {"file:///in.parquet"}
    assert bad["income"].to_pylist() == ["unknown", "unknown"]
    reasons = bad["reason"].to_pylist()
    assert "of row 501 " in reasons[0] and "of row 503 " in reasons[1]  # the file's rows
    assert all("'unknown': expected a number" in r for r in reasons)


def test_a_batch_the_contract_rejects_whole_has_no_scored_rows(
    loaded: LoadedModel, credit: pd.DataFrame
) -> None:
    good, bad = Scorer(loaded, input_url="in.csv").score(applications(credit, 2, bad=(0, 1)), np.arange(2))
    assert good is None
    assert bad is not None and bad.num_rows == 2


def test_a_pii_feature_is_never_written_in_clear_in_the_rejects(
    sqlite_registry: Registry, loaded: LoadedModel, credit: pd.DataFrame
) -> None:
    contract = loaded.contract.replace_feature("country", pii=True)
    sqlite_registry.edit_contract("credit:1", contract)
    masked = sqlite_registry.load("credit:2")
    _, bad = Scorer(masked, input_url="in.csv").score(applications(credit, 3, bad=(2,)), np.arange(3))
    assert bad is not None
    assert bad["country"].to_pylist() == ["<pii>"]


def test_a_passthrough_column_the_input_lacks_makes_the_job_unresumable(
    loaded: LoadedModel, credit: pd.DataFrame
) -> None:
    scorer = Scorer(loaded, input_url="in.csv", passthrough=("account",))
    with pytest.raises(UnresumableJobError, match="--passthrough column 'account' is not in in.csv"):
        scorer.score(applications(credit, 2), np.arange(2))


def test_several_inputs_name_each_row_s_input(loaded: LoadedModel, credit: pd.DataFrame) -> None:
    scorer = Scorer(loaded, input_url="2026-11-01.csv", name_input=True)
    good, _ = scorer.score(applications(credit, 2), np.arange(2))
    assert good is not None
    assert good["input_file"].to_pylist() == ["2026-11-01.csv", "2026-11-01.csv"]


def test_the_empty_output_has_the_output_s_columns(loaded: LoadedModel) -> None:
    empty = Scorer(loaded, input_url="in.csv", passthrough=("customer",)).empty()
    assert empty.num_rows == 0
    assert empty.column_names == ["row", "model_version", "customer", "prediction", "proba_0", "proba_1"]
