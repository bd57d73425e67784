"""A pipeline's front: the estimator's columns, each mapped to the contract feature it comes from,
for every column-wise transformer kind, and no front when a step mixes features."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.impute import KNNImputer, SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    PolynomialFeatures,
    RobustScaler,
    StandardScaler,
)

from shipyard.attribution.pipelines import Front, front_of
from shipyard.core.batch import Batch

NAMES = ("colour", "size", "city", "age")


def frame(n: int = 80, seed: int = 0) -> pd.DataFrame:
    """Two text and two numeric columns; 'purple' is rare (an infrequent category)."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], n).astype(object)
    colour[:2] = "purple"
    return pd.DataFrame(
        {
            "colour": colour,
            "size": rng.normal(size=n),
            "city": rng.choice(["a", "b"], n).astype(object),
            "age": rng.uniform(0, 80, n),
        }
    )


def target(df: pd.DataFrame) -> np.ndarray:
    return np.asarray((df["size"] + (df["colour"] == "red") - (df["city"] == "a")) > 0.3, dtype=int)


def ct(*transformers: Any, remainder: Any = "drop") -> ColumnTransformer:
    return ColumnTransformer(list(transformers), remainder=remainder)


def fitted(model: Any, df: pd.DataFrame | None = None) -> Any:
    df = frame() if df is None else df
    return model.fit(df, target(df))


def front(model: Any) -> Front:
    result = front_of(model, names=NAMES, frame_input=True)
    assert result is not None
    return result


def assert_column_wise(model: Any, result: Front, df: pd.DataFrame | None = None) -> None:
    """The mapping is what the transform does: changing one feature moves only its columns."""
    df = frame() if df is None else df
    batch = Batch.from_pandas(df)
    before = dense(result.transform(batch))
    assert before.shape == (len(df), len(result.columns))
    owner = np.asarray(result.feature_of)
    for j, name in enumerate(NAMES):
        changed = df.copy()
        changed[name] = changed[name].sample(frac=1.0, random_state=1).to_numpy()
        after = dense(result.transform(Batch.from_pandas(changed)))
        moved = np.flatnonzero(np.any(np.abs(after - before) > 0, axis=0))
        assert set(owner[moved]) <= {j}, (name, [result.columns[c] for c in moved])


def dense(x: Any) -> np.ndarray:
    if hasattr(x, "toarray"):
        x = x.toarray()
    return np.asarray(x, dtype=np.float64)


def test_a_bare_estimator_has_the_identity_front() -> None:
    x = np.random.default_rng(0).normal(size=(30, 3))
    model = LinearRegression().fit(x, x @ [1.0, 2.0, 3.0])
    result = front_of(model, names=("a", "b", "c"), frame_input=False)
    assert result is not None
    assert result.estimator is model
    assert result.columns == ("a", "b", "c") and result.feature_of == (0, 1, 2)
    assert result.mapping(("a", "b", "c")) == {"a": ("a",), "b": ("b",), "c": ("c",)}
    batch = Batch.from_columns({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]})
    np.testing.assert_array_equal(result.transform(batch), x)


def test_one_hot_and_scaler_map_each_category_to_its_feature() -> None:
    model = fitted(
        make_pipeline(
            ct(("cat", OneHotEncoder(), ["colour", "city"]), ("num", StandardScaler(), ["size", "age"])),
            LogisticRegression(),
        )
    )
    result = front(model)
    assert result.mapping(NAMES) == {
        "colour": ("cat__colour_blue", "cat__colour_green", "cat__colour_purple", "cat__colour_red"),
        "size": ("num__size",),
        "city": ("cat__city_a", "cat__city_b"),
        "age": ("num__age",),
    }
    assert result.estimator is model[-1]
    assert_column_wise(model, result)


Case = Callable[[], tuple[Any, dict[str, tuple[str, ...]]]]


def _drop_first() -> tuple[Any, dict[str, tuple[str, ...]]]:
    model = make_pipeline(
        ct(("cat", OneHotEncoder(drop="first"), ["colour", "city"]), remainder="passthrough"), Ridge()
    )
    return model, {
        "colour": ("cat__colour_green", "cat__colour_purple", "cat__colour_red"),
        "size": ("remainder__size",),
        "city": ("cat__city_b",),
        "age": ("remainder__age",),
    }


def _if_binary() -> tuple[Any, dict[str, tuple[str, ...]]]:
    model = make_pipeline(
        ct(("cat", OneHotEncoder(drop="if_binary", handle_unknown="ignore"), ["colour", "city"])), Ridge()
    )
    colours = ("cat__colour_blue", "cat__colour_green", "cat__colour_purple", "cat__colour_red")
    return model, {"colour": colours, "size": (), "city": ("cat__city_b",), "age": ()}


def _infrequent() -> tuple[Any, dict[str, tuple[str, ...]]]:
    encoder = OneHotEncoder(min_frequency=5, handle_unknown="infrequent_if_exist", sparse_output=False)
    model = make_pipeline(ct(("cat", encoder, ["colour", "city"]), ("num", "passthrough", ["age"])), Ridge())
    colours = ("cat__colour_blue", "cat__colour_green", "cat__colour_red", "cat__colour_infrequent_sklearn")
    return model, {
        "colour": colours,
        "size": (),
        "city": ("cat__city_a", "cat__city_b"),
        "age": ("num__age",),
    }


def _ordinal_and_scalers() -> tuple[Any, dict[str, tuple[str, ...]]]:
    model = make_pipeline(
        ct(
            ("ord", OrdinalEncoder(), ["colour", "city"]),
            ("minmax", MinMaxScaler(), ["size"]),
            ("robust", RobustScaler(), ["age"]),
        ),
        MaxAbsScaler(),
        Ridge(),
    )
    return model, {
        "colour": ("ord__colour",),
        "size": ("minmax__size",),
        "city": ("ord__city",),
        "age": ("robust__age",),
    }


def _indicator() -> tuple[Any, dict[str, tuple[str, ...]]]:
    model = make_pipeline(
        ct(("num", SimpleImputer(add_indicator=True), ["size", "age"]), ("cat", OneHotEncoder(), ["city"])),
        StandardScaler(),
        Ridge(),
    )
    return model, {
        "colour": (),
        "size": ("num__size", "num__missingindicator_size"),
        "city": ("cat__city_a", "cat__city_b"),
        "age": ("num__age",),
    }


def _nested() -> tuple[Any, dict[str, tuple[str, ...]]]:
    impute_then_encode = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder())
    model = make_pipeline(
        ct(
            ("cat", impute_then_encode, ["colour"]),
            ("drop_city", "drop", ["city"]),
            remainder=StandardScaler(),
        ),
        Ridge(),
    )
    colours = ("cat__colour_blue", "cat__colour_green", "cat__colour_purple", "cat__colour_red")
    return model, {"colour": colours, "size": ("remainder__size",), "city": (), "age": ("remainder__age",)}


def _function() -> tuple[Any, dict[str, tuple[str, ...]]]:
    model = make_pipeline(
        ct(
            ("log", FunctionTransformer(np.log1p, feature_names_out="one-to-one"), ["age"]),
            ("keep", "passthrough", ["size"]),
        ),
        Ridge(),
    )
    return model, {"colour": (), "size": ("keep__size",), "city": (), "age": ("log__age",)}


def _one_feature_pca() -> tuple[Any, dict[str, tuple[str, ...]]]:
    # PCA of one feature's own columns mixes nothing across features.
    model = make_pipeline(
        ct(
            ("cat", make_pipeline(OneHotEncoder(sparse_output=False), PCA(2)), ["colour"]),
            ("n", "passthrough", ["age"]),
        ),
        Ridge(),
    )
    return model, {"colour": ("cat__pca0", "cat__pca1"), "size": (), "city": (), "age": ("n__age",)}


CASES: dict[str, Case] = {
    "drop_first_remainder_passthrough": _drop_first,
    "if_binary_ignore_unknown_remainder_drop": _if_binary,
    "infrequent": _infrequent,
    "ordinal_scalers_pipeline_level": _ordinal_and_scalers,
    "imputer_indicator": _indicator,
    "nested_pipeline_and_drop": _nested,
    "function_one_to_one": _function,
    "one_feature_pca": _one_feature_pca,
}


@pytest.mark.parametrize("case", sorted(CASES), ids=str)
def test_mapping_of_each_transformer_kind(case: str) -> None:
    model, expected = CASES[case]()
    df = frame()
    if case == "imputer_indicator":
        df.loc[[3, 7], "size"] = np.nan
    if case == "nested_pipeline_and_drop":
        df.loc[[4], "colour"] = np.nan
    model = fitted(model, df)
    result = front(model)
    assert result.mapping(NAMES) == expected
    assert len(result.columns) == model[-1].n_features_in_
    assert_column_wise(model, result, df)


@pytest.mark.filterwarnings("ignore:Skipping features without any observed values")
def test_an_all_missing_column_dropped_by_the_imputer_maps_to_nothing() -> None:
    df = frame()
    df["age"] = np.nan
    model = fitted(
        make_pipeline(
            ct(("num", SimpleImputer(), ["size", "age"]), ("cat", OneHotEncoder(), ["city"])), Ridge()
        ),
        df,
    )
    result = front(model)
    assert result.mapping(NAMES)["age"] == ()
    assert result.mapping(NAMES)["size"] == ("num__size",)
    assert len(result.columns) == model[-1].n_features_in_


def test_unseen_categories_are_ignored_by_the_transform() -> None:
    model = fitted(make_pipeline(ct(("cat", OneHotEncoder(handle_unknown="ignore"), ["colour"])), Ridge()))
    result = front(model)
    unseen = frame(5, seed=3).assign(colour="violet")
    assert not dense(result.transform(Batch.from_pandas(unseen))).any()


def test_numpy_input_with_column_positions() -> None:
    # Without names in the model, its columns are named from the contract's.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    model = make_pipeline(
        ColumnTransformer([("s", StandardScaler(), [2, 0])], remainder="passthrough"),
        StandardScaler(),
        Ridge(),
    ).fit(x, x.sum(axis=1))
    result = front_of(model, names=("a", "b", "c"), frame_input=False)
    assert result is not None
    assert result.feature_of == (2, 0, 1)
    assert result.mapping(("a", "b", "c")) == {"a": ("s__a",), "b": ("remainder__b",), "c": ("s__c",)}


def test_pandas_output_between_steps() -> None:
    model = make_pipeline(
        ct(
            ("cat", OneHotEncoder(sparse_output=False), ["city"]), ("num", StandardScaler(), ["age"])
        ).set_output(transform="pandas"),
        StandardScaler(),
        Ridge(),
    )
    result = front(fitted(model))
    assert result.mapping(NAMES)["city"] == ("cat__city_a", "cat__city_b")
    assert_column_wise(model, result)


MIXING: dict[str, Callable[[], Any]] = {
    "pca": lambda: make_pipeline(ct(("num", "passthrough", ["size", "age"])), PCA(2), Ridge()),
    "polynomial": lambda: make_pipeline(
        ct(("num", "passthrough", ["size", "age"])), PolynomialFeatures(2), Ridge()
    ),
    "pca_in_column_transformer": lambda: make_pipeline(ct(("num", PCA(1), ["size", "age"])), Ridge()),
    "knn_imputer": lambda: make_pipeline(ct(("num", KNNImputer(), ["size", "age"])), Ridge()),
    "function_of_rows": lambda: make_pipeline(
        ct(
            (
                "num",
                FunctionTransformer(lambda x: np.asarray(x)[:, ::-1], feature_names_out="one-to-one"),
                ["size", "age"],
            )
        ),
        Ridge(),
    ),
}


@pytest.mark.parametrize("case", sorted(MIXING), ids=str)
def test_a_step_that_mixes_features_has_no_front(case: str) -> None:
    model = fitted(MIXING[case]())
    assert front_of(model, names=NAMES, frame_input=True) is None


def test_a_model_given_other_columns_than_the_contract_has_no_front() -> None:
    model = fitted(make_pipeline(ct(("num", StandardScaler(), ["size", "age"])), Ridge()))
    assert front_of(model, names=("size", "age", "colour"), frame_input=True) is None
    x = np.zeros((5, 2))
    bare = LinearRegression().fit(x, np.arange(5.0))
    assert front_of(bare, names=("a", "b", "c"), frame_input=False) is None
