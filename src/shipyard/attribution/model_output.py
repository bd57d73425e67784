"""A predictor read as numbers: the output space model-agnostic explainers attribute.

A classifier whose predictions carry probabilities is explained in 'probability' space, one
output per class (named `str(label)`); a regressor in 'raw' space, one output named 'value'.
A classifier without probabilities has nothing continuous to attribute and is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from shipyard.attribution.base import Floats, Space
from shipyard.core.batch import Batch, Predictions
from shipyard.errors import UnsupportedExplanationError
from shipyard.flavors.base import Predictor

__all__ = ["ModelOutput", "no_probabilities"]


def no_probabilities(method: str) -> UnsupportedExplanationError:
    """The refusal for a classifier whose predictions carry no probabilities."""
    return UnsupportedExplanationError(
        f"the {method} explanation attributes each class's probability, but this classifier's "
        "predictions carry no probabilities (its model has no predict_proba); the model-agnostic "
        "methods 'exact', 'permutation' and 'lime' all need them: register a model that gives "
        "probabilities (e.g. CalibratedClassifierCV(SVC(), ensemble=False); SVC(probability=True) "
        "before scikit-learn 1.11)"
    )


@dataclass(frozen=True)
class ModelOutput:
    """The predictor as a function of feature columns, in its explained output space.

    Args:
        predictor: the loaded model.
        names: the contract features, in the order the predictor takes them.
        classes: a classifier's class labels, or None for a regressor.
        method: the explainer's method, named in refusals.
    """

    predictor: Predictor
    names: tuple[str, ...]
    classes: tuple[Any, ...] | None
    method: str

    @property
    def space(self) -> Space:
        """'probability' for a classifier, 'raw' for a regressor."""
        return "raw" if self.classes is None else "probability"

    @property
    def outputs(self) -> tuple[str, ...]:
        """Each output's name: a class label as text, or 'value'."""
        return ("value",) if self.classes is None else tuple(str(c) for c in self.classes)

    def __call__(self, columns: Mapping[str, npt.NDArray[Any]]) -> Floats:
        """(rows, outputs): the model's output on rows given as columns.

        Raises:
            UnsupportedExplanationError: a classifier gave no probabilities.
        """
        n = len(columns[self.names[0]]) if self.names else 0
        return self.read(self.predictor.predict(Batch({k: columns[k] for k in self.names}, n)))

    def of_batch(self, batch: Batch) -> Floats:
        """(rows, outputs): the model's own output on a batch of contract features."""
        return self.read(self.predictor.predict(batch.select(self.names)))

    def read(self, predictions: Predictions) -> Floats:
        """The predictions as (rows, outputs) floats in `space`.

        Raises:
            UnsupportedExplanationError: a classifier gave no probabilities.
        """
        if self.classes is None and predictions.task == "regression":
            return np.asarray(predictions.values, dtype=np.float64).reshape(-1, 1)
        if predictions.probabilities is None:
            raise no_probabilities(self.method)
        scores = np.asarray(predictions.probabilities, dtype=np.float64)
        return _in_order(scores, predictions.classes, self.classes)


def _in_order(scores: Floats, given: Sequence[Any] | None, wanted: Sequence[Any] | None) -> Floats:
    """Probability columns in the order of `wanted` (the explainer's classes)."""
    if wanted is None or given is None or tuple(given) == tuple(wanted):
        return scores
    where = {str(c): j for j, c in enumerate(given)}
    missing = [str(c) for c in wanted if str(c) not in where]
    if missing:
        raise UnsupportedExplanationError(
            f"the explainer was asked for classes {[str(c) for c in wanted]}, but the model "
            f"predicts {[str(c) for c in given]}; pass the model's own classes"
        )
    return scores[:, [where[str(c)] for c in wanted]]
