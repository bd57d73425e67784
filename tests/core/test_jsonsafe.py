"""The one conversion of results and parameters to JSON-safe data."""

from __future__ import annotations

import json
import math

import numpy as np

from shipyard.core.jsonsafe import json_safe
from shipyard.flavors.base import jsonable


def test_non_finite_numbers_become_none_and_numpy_scalars_python_ones() -> None:
    value = {"a": float("nan"), "b": np.float32(0.5), "c": (np.int64(3), float("inf")), 4: "x"}
    assert json_safe(value) == {"a": None, "b": 0.5, "c": [3, None], "4": "x"}
    assert type(json_safe(np.int64(3))) is int


def test_keep_nan_and_other_serve_model_parameters() -> None:
    out = json_safe({"missing": float("nan"), "f": len}, keep_nan=True, other=repr)
    assert math.isnan(out["missing"])
    assert out["f"] == repr(len)


def test_objects_are_kept_unless_told_otherwise() -> None:
    thing = object()
    assert json_safe([thing])[0] is thing
    assert json_safe([thing], other=str) == [str(thing)]


def test_flavor_parameters_go_through_the_same_conversion() -> None:
    params = {"alpha": np.float64(0.1), "layers": (3, 4), "missing": float("nan"), "fn": print}
    out = jsonable(params)
    assert out["alpha"] == 0.1 and out["layers"] == [3, 4] and out["fn"] == repr(print)
    assert math.isnan(out["missing"])
    json.dumps(out)
