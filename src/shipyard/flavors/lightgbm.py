"""LightGBM models (scikit-learn wrappers and Boosters) in LightGBM's own text format."""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.core.batch import Batch, Predictions
from shipyard.errors import FlavorError, PredictionError
from shipyard.flavors.base import (
    LoadOptions,
    Predictor,
    SavedModel,
    by_class,
    classes_of,
    classified,
    jsonable,
    module_of,
    require,
    task_meta,
)

__all__ = ["LightGBMFlavor"]

_FILE = "model.txt"


def _lgb() -> Any:
    return require("lightgbm", flavor="lightgbm", extra="lightgbm")


class LightGBMPredictor:
    """Predicts with a LightGBM Booster; string features become its pandas categoricals."""

    def __init__(self, booster: Any, meta: dict[str, Any]) -> None:
        self.model = booster
        self.classes = classes_of(meta)
        categorical = getattr(booster, "pandas_categorical", None) or []
        self._categories = [list(c) for c in categorical]

    def predict(self, batch: Batch) -> Predictions:
        """Predict `batch` (features in contract order)."""
        if batch.n_rows == 0:
            return Predictions.empty(self.classes)
        features = self._features(batch)
        try:
            raw = np.asarray(self.model.predict(features), dtype=np.float64)
        except Exception as exc:
            raise PredictionError(f"the LightGBM model failed to predict: {exc}") from exc
        if self.classes is None:
            return Predictions("regression", raw)
        probabilities = by_class(raw)
        return classified(probabilities, self.classes)

    def _features(self, batch: Batch) -> Any:
        strings = [n for n, c in batch.columns.items() if c.dtype == object]
        if not strings:
            return batch.to_numpy()
        import pandas as pd

        frame = batch.to_pandas().copy()
        for name, categories in zip(strings, self._categories, strict=False):
            frame[name] = pd.Categorical(frame[name], categories=categories)
        return frame


class LightGBMFlavor:
    """LightGBM in its native text format; nothing executable is stored."""

    name = "lightgbm"
    suffixes = (".lgb", ".txt")
    unpickles = False

    def accepts(self, model: object) -> bool:
        """True for LightGBM scikit-learn wrappers and Boosters."""
        return module_of(model) == "lightgbm" and (
            hasattr(model, "booster_") or type(model).__name__ == "Booster"
        )

    def save(self, model: object) -> SavedModel:
        """Save the booster as text with the wrapper's classes."""
        lgb = _lgb()
        booster: Any = model.booster_ if hasattr(model, "booster_") else model
        meta: dict[str, Any] = {"framework": "lightgbm", "framework_version": lgb.__version__}
        meta.update(task_meta(getattr(model, "classes_", None)))
        if hasattr(model, "get_params"):
            meta["params"] = jsonable(model.get_params())
        return SavedModel(self.name, {_FILE: booster.model_to_string().encode()}, meta)

    def load(self, saved: SavedModel, options: LoadOptions) -> Predictor:
        """Load the booster from its text."""
        booster = self.read_file(saved.files[_FILE], options)
        return LightGBMPredictor(booster, dict(saved.meta))

    def read_file(self, data: bytes, options: LoadOptions) -> object:
        """Read a LightGBM model text file as a Booster."""
        lgb = _lgb()
        try:
            return lgb.Booster(model_str=data.decode())
        except (UnicodeDecodeError, lgb.basic.LightGBMError) as exc:
            raise FlavorError(f"the data is not a LightGBM model ({exc})") from None
