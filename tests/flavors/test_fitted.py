"""`check_fitted`: a scikit-learn model read from a file is refused when its fitted trees point
outside their arrays or its text vectorizers read files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import skops.io as sio

from shipyard import Registry, UntrustedArtifactError


def _bad_tree(X: pd.DataFrame, y: pd.Series) -> Any:
    """A decision tree whose root splits on a feature one past the input's last."""
    from sklearn.tree import DecisionTreeClassifier

    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    state = model.tree_.__getstate__()
    nodes = state["nodes"].copy()
    nodes["feature"][0] = X.shape[1]
    model.tree_.__setstate__(state | {"nodes": nodes})
    return model


def _looping_boosted_trees(X: pd.DataFrame, y: pd.Series) -> Any:
    """Gradient boosting whose first tree's root is its own left child: predicting never ends."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(X, y)
    model._predictors[0][0].nodes["left"][0] = 0
    return model


@pytest.mark.parametrize("craft", [_bad_tree, _looping_boosted_trees])
def test_a_tree_that_points_outside_its_arrays_is_refused_before_it_predicts(
    tmp_path: Path, sqlite_registry: Registry, cancer: pd.DataFrame, craft: Callable[..., Any]
) -> None:
    path = tmp_path / "model.skops"
    sio.dump(craft(cancer.drop(columns=["label"]), cancer["label"]), path)
    with pytest.raises(UntrustedArtifactError, match=r"the fitted tree at \S+ is malformed"):
        sqlite_registry.register_file(path, name="crafted", train_data=cancer, target="label")
    assert sqlite_registry.list_models() == []


@pytest.mark.parametrize("source", ["filename", "file"])
def test_a_text_vectorizer_that_reads_files_is_refused(
    tmp_path: Path, sqlite_registry: Registry, source: str
) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    frame = pd.DataFrame(
        {"text": ["good day", "bad day", "good night", "bad night"] * 5, "y": [1, 0, 1, 0] * 5}
    )
    model = make_pipeline(ColumnTransformer([("words", TfidfVectorizer(), "text")]), LogisticRegression())
    model.fit(frame[["text"]], frame["y"])
    model[0].transformers_[0][1].input = source  # would read /etc/passwd for a request saying so
    sio.dump(model, tmp_path / "model.skops")
    with pytest.raises(UntrustedArtifactError, match=f"has input='{source}'"):
        sqlite_registry.register_file(tmp_path / "model.skops", name="text", train_data=frame, target="y")
    model[0].transformers_[0][1].input = "content"
    sio.dump(model, tmp_path / "model.skops")
    sqlite_registry.register_file(tmp_path / "model.skops", name="text", train_data=frame, target="y")
