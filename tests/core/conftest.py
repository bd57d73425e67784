"""Fixtures of the core tests: a small training frame and the contract inferred from it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shipyard import Batch, Contract
from shipyard.core.inference import infer_contract


@pytest.fixture
def frame() -> pd.DataFrame:
    """Four rows: an int, a float with a missing value, a category and a bool."""
    return pd.DataFrame(
        {
            "age": [20, 30, 40, 50],
            "income": [1000.0, np.nan, 3500.0, 4000.0],
            "country": ["DE", "FR", "DE", "ES"],
            "vip": [True, False, True, False],
        }
    )


@pytest.fixture
def contract(frame: pd.DataFrame) -> Contract:
    """The contract inferred from `frame` for a binary classifier."""
    return infer_contract(Batch.from_pandas(frame), task="classification", target="y", classes=[0, 1])
