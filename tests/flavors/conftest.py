"""Fixtures of the flavor tests: a custom Python model, which only the pyfunc flavor takes."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest


class Custom:
    """A model of custom code: it predicts its first column."""

    def predict(self, frame: pd.DataFrame) -> Any:
        return frame.iloc[:, 0].to_numpy()


@pytest.fixture
def custom_model() -> Custom:
    """A custom Python model (pickled by cloudpickle, so loading it runs its code)."""
    return Custom()
