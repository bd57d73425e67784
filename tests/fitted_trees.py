"""Small fitted tree models of every family the edge export reads, and the rows that try them:
random rows, rows with missing values, rows exactly at every split threshold, the min and max."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn import ensemble, tree
from sklearn.datasets import make_classification, make_regression

from shipyard.edge.ensemble import Ensemble

Factory = Callable[[], Any]


def _with_missing(x: np.ndarray, seed: int) -> np.ndarray:
    x = x.copy()
    x[np.random.default_rng(seed).random(x.shape) < 0.08] = np.nan
    return x


def binary() -> tuple[np.ndarray, np.ndarray]:
    x, y = make_classification(240, 5, n_informative=3, n_redundant=1, random_state=1)
    return _with_missing(x, 1), y


def multiclass() -> tuple[np.ndarray, np.ndarray]:
    x, y = make_classification(240, 5, n_informative=4, n_redundant=0, n_classes=3, random_state=2)
    return _with_missing(x, 2), y


def regression() -> tuple[np.ndarray, np.ndarray]:
    x, y = make_regression(240, 5, noise=5.0, random_state=3)
    return _with_missing(x, 3), y / 10


NAN_FREE = ("GradientBoostingClassifier", "GradientBoostingRegressor")
"""Models that refuse missing values (they are fitted and tried without them)."""

CLASSIFIERS: dict[str, Factory] = {
    "tree": lambda: tree.DecisionTreeClassifier(max_depth=6, random_state=0),
    "extra_tree": lambda: tree.ExtraTreeClassifier(max_depth=8, random_state=0),
    "forest": lambda: ensemble.RandomForestClassifier(12, max_depth=6, random_state=0),
    "extra_trees": lambda: ensemble.ExtraTreesClassifier(8, max_depth=6, random_state=0),
    "boosting": lambda: ensemble.GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=0),
    "boosting_zero_init": lambda: ensemble.GradientBoostingClassifier(
        n_estimators=10, init="zero", random_state=0
    ),
    "histogram": lambda: ensemble.HistGradientBoostingClassifier(max_iter=15, random_state=0),
}
REGRESSORS: dict[str, Factory] = {
    "tree": lambda: tree.DecisionTreeRegressor(max_depth=6, random_state=0),
    "extra_tree": lambda: tree.ExtraTreeRegressor(max_depth=8, random_state=0),
    "forest": lambda: ensemble.RandomForestRegressor(10, max_depth=6, random_state=0),
    "extra_trees": lambda: ensemble.ExtraTreesRegressor(8, max_depth=6, random_state=0),
    "boosting": lambda: ensemble.GradientBoostingRegressor(n_estimators=15, loss="huber", random_state=0),
    "histogram": lambda: ensemble.HistGradientBoostingRegressor(max_iter=15, random_state=0),
}
TARGETS = {
    "binary": binary,
    "multiclass": multiclass,
    "strings": lambda: (binary()[0], np.array(["no", "yes"])[binary()[1]]),
}


def fit(model: Any, data: tuple[np.ndarray, np.ndarray]) -> tuple[Any, np.ndarray]:
    """The fitted model and its training matrix (without missing values if it refuses them)."""
    x, y = data
    if type(model).__name__ in NAN_FREE:
        x = np.nan_to_num(x)
    return model.fit(x, y), x


def trying_rows(ensemble: Ensemble, x: np.ndarray, *, missing: bool = True, seed: int = 0) -> np.ndarray:
    """Rows that try an export: training rows, rows with missing values, one row per finite
    split threshold with that column exactly at it, and the columns' min and max."""
    rng = np.random.default_rng(seed)
    parts = [x[:60]]
    if missing:
        holes = x[60:100].copy()
        holes[rng.random(holes.shape) < 0.3] = np.nan
        parts.append(holes)
    for column, thresholds in ensemble.split_points().items():
        points = thresholds[np.isfinite(thresholds)]
        at = x[rng.integers(0, len(x), len(points))].copy()
        at[:, column] = points
        parts.append(at)
    parts.append(np.vstack([np.nanmin(x, axis=0), np.nanmax(x, axis=0)]))
    found = np.vstack(parts)
    return found if missing else np.nan_to_num(found)


def categorical_frame(n: int = 500, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A frame with a numeric column first, a pandas categorical column of strings, a numeric
    column and a numeric categorical column (non-contiguous values), with missing values in
    each; and a score that depends on all of them."""
    rng = np.random.default_rng(seed)
    letters = rng.choice(np.array(list("abcdefghijkl"), dtype=object), n)
    letters[rng.random(n) < 0.1] = np.nan
    levels = rng.choice([3.0, 7.0, 10.0, 11.5, 20.0], n)
    levels[rng.random(n) < 0.1] = np.nan
    a = rng.normal(size=n)
    a[rng.random(n) < 0.1] = np.nan
    frame = pd.DataFrame(
        {"a": a, "letter": pd.Categorical(letters), "b": rng.normal(size=n), "level": levels}
    )
    score = (
        np.nan_to_num(a)
        + np.isin(letters, list("abcfh")) * 1.5
        - (levels == 7.0)
        + pd.isna(letters) * 1.0
        + np.isnan(levels) * 0.7
    )
    return frame, score


def unseen_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with missing and never-seen categories, and levels never seen or negative."""
    rows = frame.copy()
    letters = rows["letter"].astype(object)
    letters[0:30] = np.nan
    letters[30:60] = "zzz"
    rows["letter"] = letters
    rows.loc[60:90, "level"] = 99.0
    rows.loc[90:100, "level"] = -3.0
    rows.loc[100:110, "level"] = np.nan
    return rows


def as_codes(ensemble: Ensemble, rows: pd.DataFrame) -> np.ndarray:
    """The ensemble's input matrix: string categories as their codes (NaN if unknown)."""
    columns = []
    for position, name in enumerate(rows.columns):
        if position in ensemble.categories:
            code = {value: float(i) for i, value in enumerate(ensemble.categories[position])}
            columns.append(np.array([code.get(v, np.nan) for v in rows[name].astype(object)]))
        else:
            columns.append(rows[name].to_numpy(dtype=np.float64))
    return np.column_stack(columns)
