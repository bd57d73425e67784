"""A predictor read as numbers: probabilities by class in the explainer's order, a regressor's
value, and the refusal of a classifier without probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression, RidgeClassifier

from shipyard.attribution.model_output import ModelOutput, no_probabilities
from shipyard.core.batch import Batch
from shipyard.errors import UnsupportedExplanationError
from shipyard.flavors.sklearn import SklearnPredictor

NAMES = ("x0", "x1", "x2", "x3")


def columns(x: np.ndarray) -> dict[str, np.ndarray]:
    return {n: x[:, j] for j, n in enumerate(NAMES)}


def classifier(estimator: object, n_classes: int = 3) -> tuple[SklearnPredictor, np.ndarray, object]:
    x, y = make_classification(80, 4, n_informative=3, n_redundant=0, n_classes=n_classes, random_state=0)
    model = estimator.fit(x, y)  # type: ignore[attr-defined]
    meta = {"task": "classification", "classes": list(range(n_classes))}
    return SklearnPredictor(model, meta), x, model


def test_a_classifier_is_its_probabilities_one_output_per_class() -> None:
    predictor, x, model = classifier(LogisticRegression())
    output = ModelOutput(predictor, NAMES, (0, 1, 2), "exact")
    assert output.space == "probability"
    assert output.outputs == ("0", "1", "2")
    found = output(columns(x[:7]))
    assert found.shape == (7, 3) and found.dtype == np.float64
    np.testing.assert_allclose(found, model.predict_proba(x[:7]), rtol=0, atol=1e-12)  # type: ignore[attr-defined]
    batch = Batch.from_columns(columns(x[:7]))
    np.testing.assert_array_equal(output.of_batch(batch), found)


def test_probabilities_follow_the_explainers_order_of_classes() -> None:
    predictor, x, model = classifier(LogisticRegression())
    output = ModelOutput(predictor, NAMES, (2, 0, 1), "permutation")
    assert output.outputs == ("2", "0", "1")
    expected = model.predict_proba(x[:5])[:, [2, 0, 1]]  # type: ignore[attr-defined]
    np.testing.assert_allclose(output(columns(x[:5])), expected, rtol=0, atol=1e-12)


def test_classes_the_model_does_not_predict_are_refused_naming_both() -> None:
    predictor, x, _ = classifier(LogisticRegression())
    output = ModelOutput(predictor, NAMES, (0, 1, 7), "exact")
    with pytest.raises(
        UnsupportedExplanationError, match=r"asked for classes \['0', '1', '7'\].*predicts \['0', '1', '2'\]"
    ):
        output(columns(x[:2]))


def test_a_regressor_is_its_value_in_raw_space() -> None:
    x, y = make_regression(60, 4, random_state=0)
    model = LinearRegression().fit(x, y)
    output = ModelOutput(SklearnPredictor(model, {"task": "regression"}), NAMES, None, "exact")
    assert output.space == "raw" and output.outputs == ("value",)
    found = output(columns(x[:4]))
    assert found.shape == (4, 1)
    np.testing.assert_allclose(found[:, 0], model.predict(x[:4]), rtol=0, atol=1e-9)


def test_a_classifier_without_probabilities_is_refused_naming_the_method_and_a_way_out() -> None:
    predictor, x, _ = classifier(RidgeClassifier(), n_classes=2)
    output = ModelOutput(predictor, NAMES, (0, 1), "lime")
    with pytest.raises(
        UnsupportedExplanationError, match=r"the lime explanation .* no probabilities.*CalibratedClassifierCV"
    ):
        output(columns(x[:3]))
    refusal = no_probabilities("exact")
    assert isinstance(refusal, UnsupportedExplanationError)
    assert "the exact explanation" in str(refusal) and "'permutation'" in str(refusal)


def test_only_the_named_features_reach_the_model_in_their_order() -> None:
    predictor, x, model = classifier(LogisticRegression())
    given = {**columns(x[:3]), "extra": np.array(["a", "b", "c"], dtype=object)}
    output = ModelOutput(predictor, NAMES, (0, 1, 2), "exact")
    np.testing.assert_allclose(output(given), model.predict_proba(x[:3]), rtol=0, atol=1e-12)  # type: ignore[attr-defined]
    batch = Batch.from_columns(given)
    np.testing.assert_allclose(output.of_batch(batch), model.predict_proba(x[:3]), rtol=0, atol=1e-12)  # type: ignore[attr-defined]
