"""The version side of pruning: the rows it is checked on, the rows an ensemble reads, and a
version that predicts with the pruned copy."""

from __future__ import annotations

import warnings
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from shipyard import Registry
from shipyard.core.batch import Batch
from shipyard.edge.calibration import check_rows
from shipyard.edge.ensemble import Ensemble, Tree
from shipyard.edge.prune import prune
from shipyard.edge.pruned_version import ensemble_rows, with_model


@pytest.fixture
def mlp_version(sqlite_registry: Registry) -> tuple[Any, pd.DataFrame, np.ndarray]:
    x, y = make_classification(600, 6, n_informative=4, random_state=0)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(6)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MLPClassifier((32,), max_iter=100, random_state=0).fit(frame[:400], y[:400])
    train = frame[:400].assign(label=y[:400])
    version = sqlite_registry.register(model, name="mlp", train_data=train, target="label")
    return sqlite_registry.load(version.ref), frame[400:], y[400:]


def test_without_a_holdout_the_reference_sample_is_checked_against_the_versions_answers(
    mlp_version: Any,
) -> None:
    loaded, _, _ = mlp_version
    rows, truth, what = check_rows(loaded)
    assert what == "reference sample"
    assert rows.n_rows == loaded.background.n_rows
    assert truth.tolist() == loaded.predict(rows).values.tolist()


def test_a_holdout_is_checked_on_the_rows_the_contract_accepts(mlp_version: Any) -> None:
    loaded, frame, labels = mlp_version
    rows, truth, what = check_rows(loaded, SimpleNamespace(features=frame, labels=labels))
    assert (what, rows.n_rows) == ("holdout", len(frame))
    assert truth.tolist() == labels.tolist()


def test_a_version_predicts_with_the_pruned_copy_and_the_original_is_untouched(mlp_version: Any) -> None:
    loaded, frame, labels = mlp_version
    pruned = prune(
        loaded.model, holdout_x=frame, holdout_y=labels, task="classification", max_metric_drop=0.05
    )
    assert pruned.sparsity is not None and pruned.sparsity > 0
    swapped = with_model(loaded, pruned.model)
    batch = Batch.coerce(frame)
    assert np.allclose(swapped.predict(batch).probabilities, pruned.model.predict_proba(frame))
    assert np.allclose(loaded.predict(batch).probabilities, loaded.model.predict_proba(frame))
    assert swapped.model is pruned.model and loaded.model is not pruned.model


def test_ensemble_rows_give_categories_as_codes_and_unseen_or_missing_as_nan() -> None:
    leaf = Tree(
        feature=np.array([-1]),
        threshold=np.zeros(1),
        left=np.array([-1]),
        right=np.array([-1]),
        missing_left=np.zeros(1, dtype=bool),
        value=np.zeros((1, 1)),
    )
    ensemble = Ensemble(
        trees=(leaf,),
        n_features=2,
        n_outputs=1,
        targets=(None,),
        base=np.zeros(1),
        categories={1: ("red", "blue")},
    )
    rows = Batch.from_columns({"size": [1.5, None, 3.0], "colour": ["blue", "green", None]})
    x = ensemble_rows(ensemble, rows)
    assert x[:, 0].tolist()[0] == 1.5 and np.isnan(x[1, 0]) and x[2, 0] == 3.0
    assert x[0, 1] == 1.0 and np.isnan(x[1, 1]) and np.isnan(x[2, 1])
