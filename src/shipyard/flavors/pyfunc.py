"""Custom Python models: any object with `predict`, stored with cloudpickle.

Loading such a model runs its code, so both registering and loading need `trust_pickle=True`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.core.batch import Batch, Predictions, Task
from shipyard.errors import PredictionError, UntrustedArtifactError
from shipyard.flavors.base import (
    LoadOptions,
    Predictor,
    SavedModel,
    classes_of,
    classified,
    plain_labels,
    require,
)

__all__ = ["PyFuncFlavor"]

_FILE = "model.cloudpickle"


class PyFuncPredictor:
    """Calls the object's `predict(DataFrame)` and, when it has one, `predict_proba`."""

    def __init__(self, model: Any, meta: dict[str, Any]) -> None:
        self.model = model
        self.classes = classes_of(meta)
        self.scores = self.classes is not None and hasattr(model, "predict_proba")

    def predict(self, batch: Batch) -> Predictions:
        """Predict `batch` (features in contract order)."""
        task: Task = "classification" if self.classes is not None else "regression"
        if batch.n_rows == 0:
            return Predictions.empty(self.classes, scores=self.scores)
        frame = batch.to_pandas()
        try:
            if self.scores and self.classes is not None:
                probabilities = np.asarray(self.model.predict_proba(frame), dtype=np.float64)
                return classified(probabilities, self.classes)
            values = np.asarray(self.model.predict(frame))
        except Exception as exc:
            raise PredictionError(f"the custom model's predict raised: {exc!r}") from exc
        if values.ndim != 1 or len(values) != batch.n_rows:
            raise PredictionError(
                f"the custom model's predict returned shape {values.shape}; expected "
                f"{batch.n_rows} values, one per row"
            )
        return Predictions(task, values, None, self.classes)


class PyFuncFlavor:
    """Custom code; only with `trust_pickle=True`, because loading it runs it."""

    name = "pyfunc"
    suffixes: tuple[str, ...] = ()
    unpickles = True

    def accepts(self, model: object) -> bool:
        """True for any object with a callable `predict`."""
        return callable(getattr(model, "predict", None))

    def save(self, model: object) -> SavedModel:
        """Serialise the object (and its class, when defined in a script) with cloudpickle."""
        cloudpickle = require("cloudpickle", flavor="pyfunc", extra="pyfunc")
        meta: dict[str, Any] = {"framework": "python", "class": type(model).__qualname__}
        classes = getattr(model, "classes_", None)
        if classes is not None:
            meta["classes"] = plain_labels(classes)
            meta["task"] = "classification"
        return SavedModel(self.name, {_FILE: cloudpickle.dumps(model)}, meta)

    def load(self, saved: SavedModel, options: LoadOptions) -> Predictor:
        """Unpickle the object, which runs its code: refused unless `trust_pickle` and signed."""
        return PyFuncPredictor(self.read_file(saved.files[_FILE], options), dict(saved.meta))

    def read_file(self, data: bytes, options: LoadOptions) -> object:
        """Unpickle a custom model: refused unless `trust_pickle` and a verified signature."""
        if not options.trust_pickle:
            raise UntrustedArtifactError(
                "this is a custom Python model (pyfunc); loading it runs its code. Load it with "
                "trust_pickle=True (CLI: --trust-pickle) only if you trust who registered it"
            )
        if not options.signed:
            raise UntrustedArtifactError(
                "this is a custom Python model (pyfunc), and unpickling runs its code: it is loaded only "
                "when its version is signed by a trusted key ('shipyard sign', SHIPYARD_TRUSTED_KEYS)"
            )
        cloudpickle = require("cloudpickle", flavor="pyfunc", extra="pyfunc")
        return cloudpickle.loads(data)
