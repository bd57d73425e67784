"""LIME on real scikit-learn pipelines with string features: seeded, local, and honest about its gap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.svm import SVC

from shipyard.attribution.agnostic import AgnosticExplainer
from shipyard.attribution.lime import LimeExplainer
from shipyard.core.batch import Batch
from shipyard.errors import InputError, UnsupportedExplanationError
from shipyard.flavors.sklearn import SklearnPredictor


def frame(n_rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "up": rng.normal(size=n_rows),
            "down": rng.normal(size=n_rows),
            "count": rng.integers(0, 10, n_rows),
            "colour": rng.choice(["red", "green", "blue"], n_rows).astype(object),
        }
    )


def monotone() -> tuple[SklearnPredictor, pd.DataFrame]:
    """A regressor rising in `up`, falling in `down`, +4 for red: signs anyone can check."""
    data = frame()
    target = 3 * data["up"] - 2 * data["down"] + 4 * (data["colour"] == "red")
    encoder = OneHotEncoder(handle_unknown="ignore")  # a missing colour (None) is no colour
    front = ColumnTransformer([("cat", encoder, ["colour"])], remainder="passthrough")
    model = make_pipeline(front, LinearRegression()).fit(data, target)
    return SklearnPredictor(model, {"frame_input": True, "task": "regression"}), data


def lime(predictor: SklearnPredictor, data: pd.DataFrame, **options: object) -> LimeExplainer:
    return LimeExplainer(
        predictor,
        names=tuple(data.columns),
        classes=predictor.classes,
        background=Batch.from_pandas(data.iloc[:100]),
        **options,  # type: ignore[arg-type]
    )


def test_the_same_request_gives_identical_bytes_and_another_seed_differs() -> None:
    predictor, data = monotone()
    batch = Batch.from_pandas(data.iloc[150:154])
    first = lime(predictor, data, samples=400).explain(batch)
    again = lime(predictor, data, samples=400).explain(batch)
    other = lime(predictor, data, samples=400, seed=1).explain(batch)
    assert first.values.tobytes() == again.values.tobytes() and first.base.tobytes() == again.base.tobytes()
    assert first.values.tobytes() != other.values.tobytes()
    alone = lime(predictor, data, samples=400).explain(batch.take([2]))
    np.testing.assert_allclose(alone.values[0], first.values[2], rtol=0, atol=1e-12)


def test_signs_agree_with_exact_shapley_on_a_monotone_model() -> None:
    predictor, data = monotone()
    batch = Batch.from_pandas(data.iloc[150:160])
    got = lime(predictor, data).explain(batch)
    exact = AgnosticExplainer(
        predictor, names=tuple(data.columns), classes=None, background=Batch.from_pandas(data.iloc[:100])
    ).explain(batch)
    assert got.method == "lime" and not got.exact and got.space == "raw" and got.outputs == ("value",)
    clear = np.abs(exact.values) > 0.5  # features that clearly push the row one way
    assert clear.sum() >= 15
    assert (np.sign(got.values[clear]) == np.sign(exact.values[clear])).all()


def test_values_and_base_add_up_to_the_local_model_and_the_gap_is_the_error() -> None:
    predictor, data = monotone()
    batch = Batch.from_pandas(data.iloc[150:155])
    got = lime(predictor, data, samples=300).explain(batch)
    local = got.values.sum(axis=1) + got.base
    assert got.error is not None
    np.testing.assert_allclose(got.error, np.abs(local - got.output).max(axis=1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.additivity, got.error, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.output[:, 0], predictor.predict(batch).values, rtol=0, atol=0)


def test_a_classifier_without_probabilities_is_refused_naming_the_methods() -> None:
    data = frame()
    front = ColumnTransformer([("cat", OneHotEncoder(), ["colour"])], remainder="passthrough")
    model = make_pipeline(front, SVC()).fit(data, (data["up"] > 0).astype(int))
    predictor = SklearnPredictor(model, {"frame_input": True, "task": "classification", "classes": [0, 1]})
    with pytest.raises(
        UnsupportedExplanationError, match=r"no probabilities.*'exact', 'permutation'.*CalibratedClassifierCV"
    ):
        lime(predictor, data).explain(Batch.from_pandas(data.iloc[:2]))


def test_a_classifier_with_probabilities_gets_one_output_per_class() -> None:
    data = frame()
    front = ColumnTransformer([("cat", OneHotEncoder(), ["colour"])], remainder="passthrough")
    model = make_pipeline(front, CalibratedClassifierCV(SVC(), ensemble=False)).fit(
        data, (data["up"] > 0).astype(int)
    )
    predictor = SklearnPredictor(model, {"frame_input": True, "task": "classification", "classes": [0, 1]})
    got = lime(predictor, data, samples=200).explain(Batch.from_pandas(data.iloc[150:152]))
    assert got.space == "probability" and got.outputs == ("0", "1") and got.values.shape == (2, 4, 2)
    # The two probabilities sum to one, so their local models mirror each other.
    np.testing.assert_allclose(got.values[..., 0], -got.values[..., 1], rtol=0, atol=1e-9)


def test_none_is_a_category_of_its_own_in_the_background_and_in_rows() -> None:
    predictor, data = monotone()
    data.loc[::7, "colour"] = None
    background = Batch.from_pandas(data.iloc[:100])
    assert any(v is None for v in background.columns["colour"])
    explainer = LimeExplainer(
        predictor, names=tuple(data.columns), classes=None, background=background, samples=300
    )
    batch = Batch.from_pandas(data.iloc[[0, 151]])  # row 0's colour is None
    got = explainer.explain(batch)
    assert np.isfinite(got.values).all() and got.values.shape == (2, 4, 1)
    # Made red, the same row's colour clearly pushes up (red is worth 4).
    red = Batch({**batch.columns, "colour": np.array(["red", "red"], dtype=object)}, 2)
    assert (explainer.explain(red).values[:, 3, 0] > 1.0).all()


def test_too_few_samples_are_refused() -> None:
    predictor, data = monotone()
    with pytest.raises(InputError, match="at least 2 samples"):
        lime(predictor, data, samples=1)
