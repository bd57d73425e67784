"""Merged requests: each read as rows before it queues, merged end to end, and rejected whole
(with its own rows named) when one of its rows fails, while the others are predicted."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from shipyard.core.contract import Contract, Feature
from shipyard.core.dtypes import DType
from shipyard.errors import ContractViolationError, InputError
from shipyard.serving.merging import WholeRequests, merge
from shipyard.serving.served import Pending

CONTRACT = Contract(
    features=(
        Feature(name="age", dtype=DType.INT, min=18, max=90, on_out_of_range="reject"),
        Feature(name="score", dtype=DType.FLOAT),
    ),
    task="regression",
)


def pending(age: list[Any], score: list[Any]) -> Pending:
    columns = {"age": np.asarray(age), "score": np.asarray(score, dtype=float)}
    future: asyncio.Future[Any] = asyncio.new_event_loop().create_future()
    return Pending(columns, len(age), "r", "test", 0.0, False, future)


def test_requests_merge_end_to_end_in_the_contracts_order() -> None:
    batch = merge(CONTRACT, [pending([20, 30], [0.5, 1.5]), pending([40], [2.5])])
    assert batch.n_rows == 3
    assert np.asarray(batch.columns["age"]).tolist() == [20, 30, 40]
    assert list(batch.columns) == ["age", "score"]


def test_a_request_with_a_failing_row_is_rejected_whole_naming_its_own_rows() -> None:
    jobs = [pending([20, 30], [0.5, 1.5]), pending([40, 200], [2.5, 3.5]), pending([50], [4.5])]
    policy = WholeRequests(jobs, "m:1")
    accepted = policy(CONTRACT.validate(merge(CONTRACT, jobs)))
    assert accepted.tolist() == [0, 1, 4]  # the first and the last request, not the second's good row
    assert policy.good == [0, 2]
    [(job, error)] = policy.rejected
    assert job is jobs[1]
    assert isinstance(error, ContractViolationError)
    assert [(v.row, v.feature) for v in error.violations] == [(1, "age")]  # its row 1, not the batch's 3


def test_a_merged_call_that_passes_accepts_every_row_without_a_copy() -> None:
    jobs = [pending([20], [0.5]), pending([30], [1.5])]
    policy = WholeRequests(jobs, "m:1")
    accepted = policy(CONTRACT.validate(merge(CONTRACT, jobs)))
    assert accepted.tolist() == [0, 1]
    assert (policy.good, policy.rejected) == ([0, 1], [])


def test_one_value_per_row_refuses_columns_of_another_length() -> None:
    from shipyard.serving.merging import one_value_per_row

    class Loaded:
        contract = CONTRACT

    with pytest.raises(InputError, match="feature 'age' has 2 value"):
        one_value_per_row(Loaded(), {"age": [20, 30], "score": [0.5, 1.5]}, 1)  # type: ignore[arg-type]


FLOATS = Contract(
    features=(Feature(name="a", dtype=DType.FLOAT), Feature(name="b", dtype=DType.FLOAT)), task="regression"
)


def json_pending(**columns: list[Any]) -> Pending:
    future: asyncio.Future[Any] = asyncio.new_event_loop().create_future()
    return Pending(columns, len(next(iter(columns.values()))), "r", "test", 0.0, False, future)


def test_json_numbers_merge_into_one_matrix_that_the_model_is_handed_as_it_is() -> None:
    jobs = [json_pending(a=[0.5, 1.5], b=[2.5, 3.5]), json_pending(a=[4.5], b=[5.5])]
    batch = merge(FLOATS, jobs)
    assert batch.block is not None
    assert batch.to_numpy().tolist() == [[0.5, 2.5], [1.5, 3.5], [4.5, 5.5]]
    valid = FLOATS.validate(batch).batch
    assert valid.to_numpy() is batch.block  # validated without a copy, and not stacked again
    with pytest.raises(ValueError, match="read-only"):
        valid.to_numpy()[0, 0] = 9.0  # the matrix is the batch's columns: nobody writes through it


def test_integers_text_or_missing_values_take_the_columns_path() -> None:
    for jobs in (
        [json_pending(a=[1, 2], b=[0.5, 1.5])],  # JSON integers keep their type for the contract
        [json_pending(a=[0.5], b=[None])],
        [json_pending(a=[0.5], b=["x"])],
    ):
        batch = merge(FLOATS, jobs)
        assert batch.block is None
        assert FLOATS.validate(batch).batch.block is None


def test_an_integer_feature_drops_the_matrix_for_its_whole_values() -> None:
    batch = merge(CONTRACT, [json_pending(age=[20.0, 30.0], score=[0.5, 1.5])])
    assert batch.block is not None
    valid = CONTRACT.validate(batch)
    assert valid.ok and valid.batch.block is None
    assert valid.batch.columns["age"].dtype == np.int64


def test_two_dimensional_tensors_merge_into_one_matrix_without_being_split() -> None:
    from shipyard.core.batch import MatrixColumns

    future: asyncio.Future[Any] = asyncio.new_event_loop().create_future()
    first = np.array([[0.5, 1.5], [2.5, 3.5]])
    jobs = [
        Pending(MatrixColumns(("a", "b"), first), 2, "r1", "oip-grpc", 0.0, False, future),
        Pending(MatrixColumns(("a", "b"), np.array([[4.5, 5.5]])), 1, "r2", "oip-grpc", 0.0, False, future),
    ]
    batch = merge(FLOATS, jobs)
    assert batch.block is not None
    assert batch.to_numpy().tolist() == [[0.5, 1.5], [2.5, 3.5], [4.5, 5.5]]
    assert FLOATS.validate(batch).batch.to_numpy() is batch.block
    mixed = merge(FLOATS, [jobs[0], json_pending(a=[4.5], b=[5.5])])  # with a JSON request: by columns
    assert mixed.block is None and mixed.to_numpy().tolist() == [[0.5, 1.5], [2.5, 3.5], [4.5, 5.5]]
