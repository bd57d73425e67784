"""The path-table TreeSHAP of `tree_paths` against the brute force of `trees.py` on scikit-learn
trees, its per-row fallback and slot-by-slot patterns, categorical splits and `Binning`."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from shipyard.attribution.tree_paths import Binning, PathModel, TreeNodes, build_path_model
from shipyard.attribution.trees import path_dependent_shapley


def binnings_of(trees: list[Any], width: int) -> tuple[Binning | None, ...]:
    """Per column, every threshold the trees split it at."""
    found: list[list[float]] = [[] for _ in range(width)]
    for tree in trees:
        for node in np.flatnonzero(tree.children_left >= 0):
            found[int(tree.feature[node])].append(float(tree.threshold[node]))
    return tuple(Binning(np.unique(np.array(f))) if f else None for f in found)


def nodes_of(tree: Any, binnings: tuple[Binning | None, ...], scale: float = 1.0) -> TreeNodes:
    """A scikit-learn `tree_` in neutral form."""
    left = np.asarray(tree.children_left, dtype=np.intp)
    feature = np.asarray(tree.feature, dtype=np.intp)
    cut = np.full(len(left), -1, dtype=np.intp)
    for node in np.flatnonzero(left >= 0):
        thresholds = binnings[int(feature[node])].thresholds  # type: ignore[union-attr]
        cut[node] = int(np.searchsorted(thresholds, tree.threshold[node]))
    return TreeNodes(
        left=left,
        right=np.asarray(tree.children_right, dtype=np.intp),
        feature=feature,
        cut=cut,
        missing_left=np.asarray(tree.missing_go_to_left, dtype=bool),
        categories={},
        cover=np.asarray(tree.weighted_n_node_samples, dtype=np.float64),
        value=tree.value.reshape(tree.node_count, -1) * scale,
    )


def model_of(trees: list[Any], width: int, *, scale: float = 1.0, **options: Any) -> PathModel:
    binnings = binnings_of(trees, width)
    nodes = [nodes_of(t, binnings, scale) for t in trees]
    return build_path_model(nodes, binnings, np.arange(width, dtype=np.intp), width, **options)


def data(nan: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = make_classification(120, 5, n_informative=4, n_redundant=0, n_classes=3, random_state=0)
    if nan:
        x[::6, 1] = np.nan
        x[2::9, 3] = np.nan
    _, target = make_regression(120, 5, random_state=0)
    return x, y, target


def brute_force(trees: list[Any], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, features, outputs) path-dependent Shapley values of the trees' sum, and the base."""
    phis = []
    base = None
    for row in rows:
        phi, base = path_dependent_shapley(trees, row, combine="sum")
        phis.append(phi)
    assert base is not None
    return np.array(phis), base


def forests(nan: bool) -> list[tuple[str, list[Any], np.ndarray, int]]:
    x, y, target = data(nan)
    regressors = [DecisionTreeRegressor(max_depth=d, random_state=d).fit(x, target + d) for d in (3, 5)]
    classifiers = [DecisionTreeClassifier(max_depth=4, random_state=0).fit(x, y)]
    return [
        ("regression", [t.tree_ for t in regressors], x, 1),
        ("three-classes", [t.tree_ for t in classifiers], x, 3),
    ]


CASES = [(kind, nan) for kind in ("regression", "three-classes") for nan in (False, True)]


def case(kind: str, nan: bool) -> tuple[list[Any], np.ndarray, int]:
    for name, trees, x, outputs in forests(nan):
        if name == kind:
            return trees, x, outputs
    raise AssertionError(kind)


@pytest.mark.parametrize(("kind", "nan"), CASES, ids=[f"{k}-{'nan' if n else 'dense'}" for k, n in CASES])
def test_explaining_rows_gives_the_brute_force_path_dependent_values(kind: str, nan: bool) -> None:
    trees, x, outputs = case(kind, nan)
    model = model_of(trees, 5)
    rows = x[:12]
    values = model.attribute(rows)
    assert values.shape == (12, 5, outputs) and values.dtype == np.float64
    expected, base = brute_force(trees, rows)
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(model.base, base, rtol=0, atol=1e-10)
    assert (model.n_inputs, model.n_outputs) == (5, outputs)


@pytest.mark.parametrize(("kind", "nan"), CASES, ids=[f"{k}-{'nan' if n else 'dense'}" for k, n in CASES])
def test_the_table_cap_and_the_code_budget_fall_back_to_the_same_values(kind: str, nan: bool) -> None:
    trees, x, _ = case(kind, nan)
    rows = x[:12]
    tabled = model_of(trees, 5)
    assert tabled.tabled is not None and not tabled.fallbacks
    per_row = model_of(trees, 5, max_table_features=0)
    assert per_row.tabled is None and per_row.fallbacks
    some = model_of(trees, 5, max_table_features=2)  # small paths tabled, the others per row
    assert some.tabled is not None and some.fallbacks
    by_slot = model_of(trees, 5, code_budget=0)
    assert by_slot.tabled is not None and by_slot.tabled.code_tables is None
    for other in (per_row, some, by_slot):
        np.testing.assert_allclose(other.attribute(rows), tabled.attribute(rows), rtol=0, atol=1e-12)
        np.testing.assert_allclose(other.base, tabled.base, rtol=0, atol=1e-12)


def test_internal_columns_sum_onto_their_input_column_and_values_add_up() -> None:
    trees, x, _ = case("regression", False)
    binnings = binnings_of(trees, 5)
    nodes = [nodes_of(t, binnings) for t in trees]
    columns = np.array([0, 0, 1, 1, 2], dtype=np.intp)  # five internal columns, three inputs
    merged = build_path_model(nodes, binnings, columns, 3)
    alone = model_of(trees, 5).attribute(x[:8])
    found = merged.attribute(x[:8])
    assert found.shape == (8, 3, 1)
    np.testing.assert_allclose(found[:, 0], alone[:, 0] + alone[:, 1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(found[:, 2], alone[:, 4], rtol=0, atol=1e-12)
    prediction = sum(t.predict(x[:8].astype(np.float32)).reshape(8, -1) for t in trees)
    np.testing.assert_allclose(found.sum(axis=1) + merged.base, prediction, rtol=0, atol=1e-9)


def test_a_tree_that_is_one_leaf_is_all_base_and_no_rows_give_an_empty_answer() -> None:
    x = np.zeros((10, 2))
    stump = DecisionTreeRegressor().fit(x, np.full(10, 4.0)).tree_
    model = model_of([stump], 2)
    assert model.tabled is None and not model.fallbacks and model.slots == 0
    np.testing.assert_array_equal(model.base, [4.0])
    np.testing.assert_array_equal(model.attribute(np.ones((3, 2))), np.zeros((3, 2, 1)))
    trees, _, _ = case("three-classes", False)
    assert model_of(trees, 5).attribute(np.zeros((0, 5))).shape == (0, 5, 3)


def categorical_tree() -> tuple[TreeNodes, tuple[Binning | None, ...]]:
    """Root: column 0 categorical, codes {1, 2} left; left child: column 1 <= 0.5 (missing right)."""
    binnings = (Binning(None), Binning(np.array([0.5])))
    left_codes = np.zeros(257, dtype=bool)
    left_codes[[1, 2]] = True
    nodes = TreeNodes(
        left=np.array([1, 3, -1, -1, -1], dtype=np.intp),
        right=np.array([2, 4, -1, -1, -1], dtype=np.intp),
        feature=np.array([0, 1, -2, -2, -2], dtype=np.intp),
        cut=np.array([-1, 0, -1, -1, -1], dtype=np.intp),
        missing_left=np.zeros(5, dtype=bool),
        categories={0: left_codes},
        cover=np.array([10.0, 6.0, 4.0, 2.0, 4.0]),
        value=np.array([[0.0], [0.0], [5.0], [1.0], [3.0]]),
    )
    return nodes, binnings


def expected_value(row: np.ndarray, coalition: set[int]) -> float:
    """The categorical tree's path-dependent value, written out."""
    low = 1.0 if (not np.isnan(row[1]) and row[1] <= 0.5) else 3.0
    left = (2 * 1.0 + 4 * 3.0) / 6 if 1 not in coalition else low
    if 0 not in coalition:
        return (6 * left + 4 * 5.0) / 10
    code = row[0]
    goes_left = not np.isnan(code) and code >= 0 and int(code) % 256 in (1, 2)
    return left if goes_left else 5.0


def test_a_categorical_split_gives_the_shapley_values_of_its_value_function() -> None:
    nodes, binnings = categorical_tree()
    model = build_path_model([nodes], binnings, np.arange(2, dtype=np.intp), 2)
    rows = np.array([[1.0, 0.2], [2.0, 0.9], [0.0, 0.2], [np.nan, np.nan], [258.0, 0.1], [2.0, np.nan]])
    values = model.attribute(rows)
    for r, row in enumerate(rows):
        v = {s: expected_value(row, set(s)) for s in itertools.chain([()], [(0,), (1,)], [(0, 1)])}
        phi0 = 0.5 * ((v[(0,)] - v[()]) + (v[(0, 1)] - v[(1,)]))
        phi1 = 0.5 * ((v[(1,)] - v[()]) + (v[(0, 1)] - v[(0,)]))
        np.testing.assert_allclose(values[r, :, 0], [phi0, phi1], rtol=0, atol=1e-12)
        assert values[r].sum() + model.base[0] == pytest.approx(v[(0, 1)], abs=1e-12)
    assert model.base[0] == pytest.approx(expected_value(rows[0], set()), abs=1e-12)
    per_row = build_path_model([nodes], binnings, np.arange(2, dtype=np.intp), 2, max_table_features=0)
    np.testing.assert_allclose(per_row.attribute(rows), values, rtol=0, atol=1e-12)


def test_numeric_binning_puts_a_threshold_in_its_own_bin_and_nan_last() -> None:
    binning = Binning(np.array([1.0, 2.0]))
    assert binning.n_bins == 4
    values = np.array([0.5, 1.0, 1.5, 2.0, 3.0, -np.inf, np.inf, np.nan])
    found = binning.bins(values)
    assert found.dtype == np.intp
    # bins up to a threshold's index go left (value <= threshold), as the trees split
    assert found.tolist() == [0, 0, 1, 1, 2, 0, 2, 3]


def test_categorical_binning_reads_codes_as_the_model_casts_them() -> None:
    binning = Binning(None)
    assert binning.n_bins == 257
    values = np.array([0.0, 3.0, 3.7, 255.0, 256.0, 300.0, -1.0, np.nan, 2.0**40])
    # truncation, wrap-around past 255, negative and NaN missing (bin 256)
    assert binning.bins(values).tolist() == [0, 3, 3, 255, 0, 44, 256, 256, 0]
