"""What validation gives back: violations shown capped, accepted and rejected rows, parts of a batch."""

from __future__ import annotations

import numpy as np

from shipyard import Batch, Contract, DType, Feature


def test_a_huge_value_is_echoed_capped() -> None:
    contract = Contract(features=(Feature(name="n", dtype=DType.INT),), task="regression")
    result = contract.validate(Batch.from_columns({"n": ["x" * 1_000_000]}))
    (violation,) = result.violations
    assert violation.to_dict()["value"] == "x" * 80 + "... (1000000 characters)"
    assert len(str(violation)) < 200


def test_a_part_of_a_validation_is_renumbered_and_reasons_carry_the_offset() -> None:
    feature = Feature(name="n", dtype=DType.INT, min=0, max=9, on_out_of_range="reject")
    contract = Contract(features=(feature,), task="regression")
    result = contract.validate(Batch.from_columns({"n": np.array([1, 50, 2, 60])}))
    assert result.accepted_rows.tolist() == [0, 2] and result.rejected_rows.tolist() == [1, 3]
    part = result.part(2, 4)
    assert part.batch.n_rows == 2 and [v.row for v in part.violations] == [1]
    assert list(result.reasons_by_row(offset=100)) == [1, 3]
    assert "row 101" in result.reasons_by_row(offset=100)[1][0]
