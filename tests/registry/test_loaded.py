"""A loaded version: the one scoring step (`score`), its rejection policies, `predict`, and the
context its errors carry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from homes import copy_home
from shipyard import ContractViolationError, PredictionError, Registry
from shipyard.core.batch import Batch, Predictions
from shipyard.core.contract import Validation
from shipyard.registry.loaded import LoadedModel, example_row, warm_up
from shipyard.security.signing import SigningKey


@pytest.fixture
def loaded(request: pytest.FixtureRequest, tmp_path: Path, credit_v1_home: Path) -> LoadedModel:
    """credit:1 loaded from the `sqlite_registry`, opened on a copy of a home where it was registered once."""
    copy_home(credit_v1_home, tmp_path / "home")
    registry: Registry = request.getfixturevalue("sqlite_registry")
    return registry.load("credit:1")


@pytest.fixture
def rows(credit: pd.DataFrame) -> pd.DataFrame:
    """Five applications; the second and the fourth break the contract (an age of 2.5 years)."""
    frame = credit.drop(columns=["default"]).head(5).copy()
    frame["age"] = frame["age"].astype(np.float64)
    frame.loc[[1, 3], "age"] = 2.5
    return frame


def test_score_quarantines_the_rows_that_fail_by_default(loaded: LoadedModel, rows: pd.DataFrame) -> None:
    scored = loaded.score(rows)
    assert scored.accepted.tolist() == [0, 2, 4]
    assert not scored.whole
    assert sorted({v.row for v in scored.validation.violations}) == [1, 3]
    assert scored.batch.n_rows == 3
    assert scored.predictions is not None
    alone = loaded.predict(rows.iloc[[0, 2, 4]])
    assert scored.predictions.values.tolist() == alone.values.tolist()
    np.testing.assert_allclose(scored.predictions.probabilities, alone.probabilities)


def test_score_of_valid_rows_predicts_them_all_in_contract_order(
    loaded: LoadedModel, credit: pd.DataFrame
) -> None:
    frame = credit.drop(columns=["default"]).head(4)
    scored = loaded.score(frame[list(reversed(frame.columns))])
    assert scored.whole
    assert scored.accepted.tolist() == [0, 1, 2, 3]
    assert scored.batch is scored.validation.batch
    assert scored.batch.names == loaded.contract.names
    assert scored.predictions is not None
    assert scored.predictions.n_rows == 4


def test_score_predicts_nothing_when_no_row_is_accepted(loaded: LoadedModel, rows: pd.DataFrame) -> None:
    scored = loaded.score(rows.iloc[[1, 3]])
    assert scored.accepted.size == 0
    assert scored.batch.n_rows == 0
    assert scored.predictions is None


def test_score_of_no_rows_is_zero_predictions_of_the_models_shape(loaded: LoadedModel) -> None:
    empty = Batch({name: np.empty(0) for name in loaded.contract.names}, 0)
    scored = loaded.score(empty)
    assert scored.whole
    assert scored.predictions is not None
    assert scored.predictions.n_rows == 0
    assert scored.predictions.classes == tuple(loaded.contract.classes or ())


def test_the_caller_s_policy_chooses_the_rows(loaded: LoadedModel, rows: pd.DataFrame) -> None:
    def first_good(validation: Validation) -> Any:
        return validation.accepted_rows[:1]

    scored = loaded.score(rows, accept=first_good)
    assert scored.accepted.tolist() == [0]
    assert scored.predictions is not None
    assert scored.predictions.n_rows == 1


def test_a_policy_that_raises_stops_before_the_model(loaded: LoadedModel, rows: pd.DataFrame) -> None:
    def whole_or_nothing(validation: Validation) -> Any:
        validation.raise_if_invalid("the request")
        return np.arange(validation.batch.n_rows)

    with pytest.raises(ContractViolationError, match="the request"):
        loaded.score(rows, accept=whole_or_nothing)


def test_predict_rejects_a_request_whole_with_every_violation(
    loaded: LoadedModel, rows: pd.DataFrame
) -> None:
    with pytest.raises(ContractViolationError, match="credit:1") as caught:
        loaded.predict(rows)
    assert [(v.row, v.feature) for v in caught.value.violations] == [(1, "age"), (3, "age")]


def test_predict_of_no_rows_answers_with_nothing(loaded: LoadedModel, rows: pd.DataFrame) -> None:
    assert loaded.predict(rows.iloc[:0]).n_rows == 0


def test_the_example_row_passes_the_contract_and_warms_the_model_up(loaded: LoadedModel) -> None:
    assert loaded.validate([example_row(loaded.contract)]).ok
    assert warm_up(loaded).n_rows == 1


class BreaksOnThree:
    """A custom model that fails on batches of exactly three rows (and only those)."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if len(frame) == 3:
            raise ValueError("three is a crowd")
        return frame["a"].to_numpy()


def test_a_flavor_s_error_names_the_model_version_and_rows(
    sqlite_registry: Registry, signing_key: SigningKey
) -> None:
    frame = pd.DataFrame({"a": np.arange(20.0), "y": np.arange(20.0)})
    sqlite_registry.register(BreaksOnThree(), name="fragile", train_data=frame, target="y", trust_pickle=True)
    sqlite_registry.signatures.sign("fragile:1", signing_key)
    fragile = sqlite_registry.load("fragile:1", trust_pickle=True)
    with pytest.raises(PredictionError) as caught:
        fragile.predict(frame[["a"]].head(3))
    error = caught.value
    assert error.context == {"model": "fragile", "version": 1, "rows": 3}
    assert "three is a crowd" in str(error)
    assert str(error).endswith("(model='fragile', version=1, rows=3)")
    assert isinstance(error.__cause__, ValueError)  # the flavor's error, not wrapped twice
    assert fragile.predict(frame[["a"]].head(4)).n_rows == 4


class Exploding:
    """A predictor whose framework raises something that is not a Shipyard error."""

    def predict(self, batch: Batch) -> Predictions:
        raise MemoryError("the framework ran out of memory")


def test_a_framework_exception_becomes_a_prediction_error_with_the_context(
    loaded: LoadedModel, rows: pd.DataFrame
) -> None:
    broken = LoadedModel(loaded.version, Exploding())
    with pytest.raises(PredictionError) as caught:
        broken.score(rows)
    assert caught.value.context == {"model": "credit", "version": 1, "rows": 3}
    assert "ran out of memory" in str(caught.value)
    assert isinstance(caught.value.__cause__, MemoryError)
