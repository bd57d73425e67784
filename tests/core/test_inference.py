"""Inferring a contract from training data: dtypes, ranges, categories, missing values."""

from __future__ import annotations

import pandas as pd
import pytest

from shipyard import Batch, Contract, ContractError, DType
from shipyard.core.inference import infer_contract


def test_inference_reads_dtype_range_categories_and_missing(contract: Contract) -> None:
    age, income, country, vip = contract.features
    assert (age.dtype, age.min, age.max, age.nullable) == (DType.INT, 20, 50, False)
    assert (income.dtype, income.nullable, income.on_missing) == (DType.FLOAT, True, "pass")
    assert country.categories == ("DE", "ES", "FR")
    assert vip.dtype is DType.BOOL
    assert contract.classes == (0, 1)


def test_unsupported_training_column_type_is_refused_with_its_name() -> None:
    frame = pd.DataFrame({"when": pd.to_datetime(["2026-01-01", "2026-01-02"])})
    with pytest.raises(ContractError, match="'when'"):
        infer_contract(Batch.from_pandas(frame), task="regression")
