"""Which explainer a model gets, and the refusals that name what would work."""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from shipyard.attribution.choose import explainer_for, possible_methods
from shipyard.core.batch import Batch, Predictions
from shipyard.errors import UnsupportedExplanationError
from shipyard.flavors.base import classified
from shipyard.flavors.sklearn import SklearnPredictor


def frame(n_numeric: int, rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    data = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(n_numeric)})
    data["colour"] = rng.choice(["red", "green"], rows).astype(object)
    return data


def fit(model: Any, data: pd.DataFrame, *, regression: bool = False) -> SklearnPredictor:
    target = data["x0"] - data["x1"] + (data["colour"] == "red")
    label: Any = target if regression else (target > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(data, label)
    meta: dict[str, Any] = {"frame_input": True}
    meta |= {"task": "regression"} if regression else {"task": "classification", "classes": [0, 1]}
    return SklearnPredictor(model, meta)


def encoded(estimator: Any, data: pd.DataFrame) -> Any:
    numbers = [c for c in data.columns if c.startswith("x")]
    front = make_column_transformer((OneHotEncoder(), ["colour"]), (StandardScaler(), numbers))
    return make_pipeline(front, estimator)


def choose(predictor: SklearnPredictor, data: pd.DataFrame, method: str = "auto", **options: Any) -> Any:
    background = Batch.coerce(data.head(30))
    classes = None if predictor.classes is None else tuple(predictor.classes)
    return explainer_for(
        predictor,
        names=tuple(data.columns),
        classes=classes,
        frame_input=True,
        background=options.get("background", background),
        method=method,
    )


def test_auto_picks_tree_shap_for_boosting_behind_a_one_hot_front() -> None:
    data = frame(3)
    predictor = fit(encoded(HistGradientBoostingClassifier(max_iter=10), data), data)
    assert choose(predictor, data).method == "tree_shap"


def test_auto_picks_the_linear_closed_form_for_linear_models() -> None:
    data = frame(3)
    assert choose(fit(encoded(LogisticRegression(), data), data), data).method == "linear"
    assert choose(fit(encoded(Ridge(), data), data, regression=True), data).method == "linear"


def test_auto_picks_exact_shapley_for_a_small_mlp_and_sampling_past_twelve_features() -> None:
    small, large = frame(5), frame(13)
    mlp = MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, random_state=0)
    assert choose(fit(encoded(mlp, small), small), small).method == "exact"
    mlp = MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, random_state=0)
    assert choose(fit(encoded(mlp, large), large), large).method == "permutation"


def test_a_front_that_mixes_features_is_explained_on_the_raw_features() -> None:
    data = frame(4)
    model = encoded(LogisticRegression(), data)
    model.steps.insert(1, ("pca", PCA(n_components=2)))
    assert choose(fit(model, data), data).method == "exact"


def test_exact_past_twelve_features_is_refused_at_once_naming_sampling() -> None:
    data = frame(500, rows=40)
    predictor = fit(encoded(MLPClassifier(hidden_layer_sizes=(4,), max_iter=5), data), data)
    started = time.perf_counter()
    with pytest.raises(UnsupportedExplanationError, match="permutation"):
        choose(predictor, data, "exact")
    assert time.perf_counter() - started < 2.0


def test_tree_shap_of_an_mlp_is_refused_naming_the_methods_it_can_have() -> None:
    data = frame(3)
    predictor = fit(encoded(MLPClassifier(hidden_layer_sizes=(4,), max_iter=20), data), data)
    with pytest.raises(UnsupportedExplanationError, match=r"tree_shap.*\['exact', 'permutation', 'lime'\]"):
        choose(predictor, data, "tree_shap")


def test_an_unknown_method_is_refused_with_the_list() -> None:
    data = frame(3)
    with pytest.raises(UnsupportedExplanationError, match="expected one of"):
        choose(fit(encoded(LogisticRegression(), data), data), data, "magic")


def test_without_a_background_only_tree_shap_remains() -> None:
    data = frame(3)
    predictor = fit(encoded(HistGradientBoostingClassifier(max_iter=5), data), data)
    names = tuple(data.columns)
    assert possible_methods(predictor, names=names, classes=(0, 1), frame_input=True, background=None) == [
        "tree_shap"
    ]
    with pytest.raises(UnsupportedExplanationError, match="background sample"):
        choose(predictor, data, "exact", background=None)


class TextScorer:
    """A model that is not scikit-learn's, as an ONNX session or a custom model is, given the raw
    features, text among them: it has no front to put the background through."""

    model = object()

    def predict(self, batch: Batch) -> Predictions:
        red = np.asarray(batch.columns["colour"], dtype=object) == "red"
        share = np.where(red, 0.8, 0.3) + 0.01 * np.asarray(batch.columns["x0"], dtype=np.float64)
        return classified(np.column_stack([1 - share, share]), (0, 1))


def test_a_model_that_is_not_scikit_learns_with_text_features_is_explained_model_agnostically() -> None:
    data = frame(3)
    background = Batch.coerce(data.head(30))
    names = tuple(data.columns)
    scorer = TextScorer()
    chosen = explainer_for(scorer, names=names, classes=(0, 1), frame_input=False, background=background)
    assert chosen.method == "exact"
    assert possible_methods(
        scorer, names=names, classes=(0, 1), frame_input=False, background=background
    ) == [
        "exact",
        "permutation",
        "lime",
    ]
