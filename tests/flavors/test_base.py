"""What every flavor shares: labels from probabilities, and the model package's zip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shipyard.errors import FlavorError
from shipyard.flavors.base import SavedModel, by_class, classified, labels_of, pack, unpack


def test_each_row_s_label_is_its_most_probable_class() -> None:
    probabilities = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6]])
    labels = labels_of(probabilities, ("low", "mid", "high"))
    assert labels.tolist() == ["mid", "low", "high"]
    assert labels.dtype == object


def test_labels_keep_the_dtype_of_a_numpy_array_of_classes() -> None:
    labels = labels_of(np.array([[0.9, 0.1], [0.3, 0.7]]), np.array([0, 1]))
    assert labels.tolist() == [0, 1]
    assert labels.dtype.kind == "i"


def test_a_binary_model_s_one_column_becomes_two_negative_first() -> None:
    np.testing.assert_allclose(by_class(np.array([0.25, 0.9])), [[0.75, 0.25], [0.1, 0.9]])
    matrix = np.array([[0.2, 0.8]])
    np.testing.assert_allclose(by_class(matrix), matrix)


def test_classified_predictions_carry_labels_probabilities_and_classes() -> None:
    predictions = classified(by_class(np.array([0.2, 0.6])), (0, 1))
    assert predictions.task == "classification"
    assert predictions.values.tolist() == [0, 1]
    assert predictions.classes == (0, 1)
    assert predictions.probabilities is not None and predictions.probabilities.shape == (2, 2)


def test_a_package_s_bytes_depend_only_on_its_content_and_read_back() -> None:
    saved = SavedModel("sklearn", {"b.bin": b"2", "a.bin": b"1"}, {"task": "regression"})
    again = SavedModel("sklearn", {"a.bin": b"1", "b.bin": b"2"}, {"task": "regression"})
    assert pack(saved) == pack(again)
    read = unpack(pack(saved))
    assert (read.flavor, dict(read.files), dict(read.meta)) == (
        "sklearn",
        dict(saved.files),
        {"task": "regression"},
    )


def test_bytes_that_are_not_a_package_are_refused() -> None:
    with pytest.raises(FlavorError, match="not a Shipyard model package"):
        unpack(b"not a zip")


def test_missing_framework_names_the_extra_to_install(tmp_path: Path) -> None:
    script = (
        "import sys; sys.modules['xgboost'] = None\n"
        "from shipyard.flavors import flavor_named\n"
        "from shipyard.flavors.base import LoadOptions\n"
        "try:\n"
        "    flavor_named('xgboost').read_file(b'x', LoadOptions())\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert "MissingDependencyError" in out
    assert "pip install 'shipyard[xgboost]'" in out
