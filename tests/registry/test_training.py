"""What registering reads from the training data: features and target, task and classes, the
feature names the model was trained on, and the reference profile."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from shipyard import Contract, ContractError
from shipyard.core.batch import Batch
from shipyard.core.inference import infer_contract
from shipyard.flavors.base import LoadOptions
from shipyard.flavors.sklearn import SklearnFlavor
from shipyard.registry.training import (
    check_feature_names,
    reference_profile,
    split_training,
    task_and_classes,
)


def test_the_target_is_split_from_the_features() -> None:
    features, labels = split_training(pd.DataFrame({"a": [1, 2], "y": [0, 1], "b": [3, 4]}), "y")
    assert features is not None and features.names == ("a", "b")
    assert labels is not None and labels.tolist() == [0, 1]
    features, labels = split_training({"a": [1]}, None)
    assert features is not None and features.names == ("a",) and labels is None
    assert split_training(None, None) == (None, None)


@pytest.mark.parametrize(
    ("data", "target", "message"),
    [
        (None, "y", "target 'y' was given without train_data"),
        (pd.DataFrame({"y": []}), "y", "the training data has no rows"),
        (pd.DataFrame({"a": [1]}), "y", r"target 'y' is not a column of the training data; it has \['a'\]"),
    ],
)
def test_training_data_without_rows_or_its_target_is_refused(data: Any, target: str, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        split_training(data, target)


@pytest.mark.parametrize(
    ("labels", "task", "classes"),
    [
        (np.array([0, 1, 1, 0]), "classification", [0, 1]),
        (np.array(["b", "a", None], dtype=object), "classification", ["a", "b"]),
        (np.array([0.5, 1.5, 2.0]), "regression", None),
        (np.arange(50), "regression", None),  # more than 20 integers: a quantity, not classes
    ],
)
def test_the_task_is_told_from_the_labels(labels: np.ndarray, task: str, classes: list[Any] | None) -> None:
    assert task_and_classes({}, None, labels, None) == (task, classes)


def test_a_given_task_the_model_s_own_and_its_classes_come_before_the_labels() -> None:
    labels = np.array([0.5, 1.5])
    assert task_and_classes({}, "classification", np.array([2, 1]), None) == ("classification", [1, 2])
    assert task_and_classes({"task": "classification", "classes": ["x"]}, None, labels, None) == (
        "classification",
        ["x"],
    )
    assert task_and_classes({"task": "regression"}, None, np.array([0, 1]), None) == ("regression", None)


def test_a_task_that_cannot_be_told_or_is_unknown_is_refused() -> None:
    with pytest.raises(ContractError, match="cannot tell whether the model classifies or regresses"):
        task_and_classes({}, None, None, None)
    with pytest.raises(ContractError, match="task is 'ranking'; expected 'classification' or 'regression'"):
        task_and_classes({}, "ranking", None, None)  # type: ignore[arg-type]


def _contract() -> Contract:
    return infer_contract(Batch.from_columns({"a": [1.0, 2.0], "b": [3.0, 4.0]}), task="regression")


def test_the_model_s_feature_names_must_be_the_contract_s_in_order() -> None:
    check_feature_names(None, _contract())
    check_feature_names(["a", "b"], _contract())
    with pytest.raises(ContractError, match=r"trained on features \['b', 'a'\], but the contract"):
        check_feature_names(["b", "a"], _contract())


def test_the_reference_profile_holds_the_inputs_and_the_model_s_outputs() -> None:
    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(frame, [0, 0, 1, 1])
    flavor = SklearnFlavor()
    predictor = flavor.load(flavor.save(model), LoadOptions())
    contract = infer_contract(Batch.from_pandas(frame), task="classification", classes=[0, 1])
    profile = reference_profile("m", contract, Batch.from_pandas(frame), predictor)
    assert profile.rows == 4
    assert set(profile.outputs) == {"prediction", "proba_0", "proba_1"}


class Broken:
    def predict(self, batch: Batch) -> Any:
        raise ValueError("wrong columns")


def test_a_model_that_fails_on_its_own_training_data_is_named() -> None:
    with pytest.raises(
        ContractError, match=r"model 'm' failed to predict its own training data \(wrong columns\)"
    ):
        reference_profile("m", _contract(), Batch.from_columns({"a": [1.0], "b": [3.0]}), Broken())
