"""The scikit-learn flavor: skops files with classes, feature names and parameters; no pickle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.svm import SVC

from shipyard.core.batch import Batch
from shipyard.errors import FlavorError, UntrustedArtifactError
from shipyard.flavors.base import LoadOptions
from shipyard.flavors.sklearn import SklearnFlavor, positional_twin

FLAVOR = SklearnFlavor()


def _iris() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y.map({0: "setosa", 1: "versicolor", 2: "virginica"})


def test_only_scikit_learn_models_are_accepted() -> None:
    assert FLAVOR.accepts(LinearRegression())
    assert not FLAVOR.accepts(np.zeros(3))
    assert not FLAVOR.accepts(object())


def test_a_classifier_fitted_on_a_frame_records_its_classes_names_and_parameters() -> None:
    X, y = _iris()
    saved = FLAVOR.save(LogisticRegression(max_iter=500, C=0.5).fit(X, y))
    assert list(saved.files) == ["model.skops"]
    assert saved.meta["task"] == "classification"
    assert saved.meta["classes"] == ["setosa", "versicolor", "virginica"]
    assert saved.meta["frame_input"] is True and saved.meta["feature_names"] == list(X.columns)
    assert saved.meta["params"]["C"] == 0.5


def test_a_loaded_classifier_gives_the_labels_and_probabilities_of_the_original() -> None:
    X, y = _iris()
    model = LogisticRegression(max_iter=500).fit(X, y)
    predictions = FLAVOR.load(FLAVOR.save(model), LoadOptions()).predict(Batch.from_pandas(X))
    assert predictions.values.tolist() == model.predict(X).tolist()
    assert predictions.probabilities is not None
    np.testing.assert_allclose(predictions.probabilities, model.predict_proba(X))
    assert predictions.classes == ("setosa", "versicolor", "virginica")


def test_a_classifier_without_probabilities_gives_labels_only() -> None:
    X, y = _iris()
    model = SVC().fit(X.to_numpy(), y)
    predictor = FLAVOR.load(FLAVOR.save(model), LoadOptions())
    predictions = predictor.predict(Batch.from_pandas(X.head(5)))
    assert predictions.probabilities is None
    assert predictions.values.tolist() == model.predict(X.head(5).to_numpy()).tolist()
    assert predictor.predict(Batch.from_pandas(X.head(0))).probabilities is None


def test_a_regressor_records_no_classes_and_predicts_values() -> None:
    X, _ = _iris()
    model = LinearRegression().fit(X.to_numpy(), np.arange(len(X), dtype=float))
    saved = FLAVOR.save(model)
    assert saved.meta["task"] == "regression" and saved.meta["frame_input"] is False
    predictions = FLAVOR.load(saved, LoadOptions()).predict(Batch.from_pandas(X.head(3)))
    assert predictions.task == "regression"
    np.testing.assert_allclose(predictions.values, model.predict(X.head(3).to_numpy()))


def test_a_version_that_declared_extra_trusted_types_loads_only_signed() -> None:
    X, y = _iris()
    saved = FLAVOR.save(LogisticRegression(max_iter=500).fit(X, y))
    saved.meta["trusted_types"] = ["numpy.float64"]
    with pytest.raises(UntrustedArtifactError, match="only when signed by a trusted key"):
        FLAVOR.load(saved, LoadOptions())
    assert FLAVOR.load(saved, LoadOptions(signed=True)).predict(Batch.from_pandas(X.head(2))).n_rows == 2


def test_bytes_that_are_not_a_skops_file_are_refused() -> None:
    with pytest.raises(FlavorError, match="not a skops model file"):
        FLAVOR.read_file(b"not a zip", LoadOptions())


def _loaded(model: object) -> object:
    return FLAVOR.load(FLAVOR.save(model), LoadOptions())


def test_a_frame_fitted_estimator_that_reads_by_position_is_fed_a_matrix_with_equal_answers() -> None:
    import warnings

    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = _iris()
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y)
    predictor = _loaded(model)
    assert positional_twin(predictor.model) is not None  # type: ignore[attr-defined]
    rows = X.sample(40, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names"
        got = predictor.predict(Batch.coerce(rows))  # type: ignore[attr-defined]
    assert np.array_equal(got.probabilities, model.predict_proba(rows))
    assert list(got.values) == list(model.predict(rows))
    assert list(predictor.model.feature_names_in_) == list(X.columns)  # type: ignore[attr-defined]


def test_estimators_that_select_columns_by_name_or_read_dtypes_keep_the_frame() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _iris()
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    columns = ColumnTransformer([("scaled", StandardScaler(), ["sepal length (cm)"])]).fit(X)
    categories = X.assign(kind=pd.Categorical(np.where(X["petal width (cm)"] > 1, "wide", "narrow")))
    native = HistGradientBoostingClassifier(max_iter=5).fit(categories, y)
    for model in (pipeline, columns, native):
        assert positional_twin(model) is None, type(model).__name__
    assert positional_twin(LogisticRegression().fit(X.to_numpy(), y)) is None  # fitted on a matrix
