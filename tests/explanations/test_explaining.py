"""`shipyard.explain(ref, rows)` and the answer's shape: the public function, whatever was imported."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_regression
from sklearn.linear_model import LinearRegression

import shipyard
from shipyard import Registry, Settings
from shipyard.errors import UnsupportedExplanationError


def test_explain_a_registered_version(tmp_path: Path) -> None:
    X, y = make_regression(100, 3, random_state=0)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    with Registry(Settings.for_home(tmp_path), actor="tester") as registry:
        registry.register(
            LinearRegression().fit(frame, y), name="lin", train_data=frame.assign(y=y), target="y"
        )
        first = shipyard.explain("lin:1", frame.head(3), registry=registry)
        importlib.import_module("shipyard.explanations.records")  # the package has its own name

        again = shipyard.explain("lin:1", frame.head(3), registry=registry, method="exact")
        with pytest.raises(UnsupportedExplanationError, match="expected one of"):
            shipyard.explain("lin:1", frame.head(3), registry=registry, method="shap")
    assert isinstance(first, shipyard.Explanation)
    linear, exact = first.to_dict(), again.to_dict()
    assert (linear["method"], exact["method"]) == ("linear", "exact")
    # the closed form and the brute force over every coalition agree on a linear model
    np.testing.assert_allclose(linear["attributions"], exact["attributions"], atol=1e-9)
    np.testing.assert_allclose(linear["base_values"], exact["base_values"], atol=1e-9)
    assert linear["outputs"] == exact["outputs"] == ["value"]


def test_before_any_import_it_is_the_function() -> None:
    script = "import shipyard, inspect; print(inspect.isfunction(shipyard.explain))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"
