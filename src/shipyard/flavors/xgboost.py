"""XGBoost models (scikit-learn wrappers and Boosters) in XGBoost's own UBJSON format."""

from __future__ import annotations

import os
import tempfile
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

__all__ = ["XGBoostFlavor", "fitted_categories"]

_FILE = "model.ubj"
_WRAPPERS = {"XGBClassifier", "XGBRegressor", "XGBRFClassifier", "XGBRFRegressor", "XGBRanker"}


def _xgb() -> Any:
    return require("xgboost", flavor="xgboost", extra="xgboost")


class XGBoostPredictor:
    """Predicts with an XGBoost scikit-learn wrapper or Booster."""

    def __init__(self, model: Any, meta: dict[str, Any]) -> None:
        self.model = model
        self.classes = classes_of(meta)
        self.frame_input = bool(meta.get("frame_input", False))
        self._categories = fitted_categories(model) if self.frame_input else {}
        booster = model.get_booster() if hasattr(model, "get_booster") else model
        self._names = tuple(getattr(booster, "feature_names", None) or ())

    def predict(self, batch: Batch) -> Predictions:
        """Predict `batch` (features in contract order)."""
        xgb = _xgb()
        if batch.n_rows == 0:
            return Predictions.empty(self.classes)
        features = self._features(batch)
        try:
            if isinstance(self.model, xgb.Booster):
                raw = self.model.inplace_predict(features)
            elif self.classes is not None:
                raw = self.model.predict_proba(features)
            else:
                raw = self.model.predict(features)
        except (ValueError, TypeError, xgb.core.XGBoostError) as exc:
            raise PredictionError(f"the XGBoost model failed to predict: {exc}") from exc
        if self.classes is None:
            values = np.asarray(raw, dtype=np.float64)
            return Predictions("regression", values.reshape(len(values), -1)[:, 0])
        probabilities = by_class(raw)
        return classified(probabilities, self.classes)

    def _features(self, batch: Batch) -> Any:
        """A matrix, or for a model fitted on a DataFrame with categories, the DataFrame XGBoost
        expects. A DataFrame-fitted model of numbers only takes the matrix too, when the batch is in
        its fitted column order: XGBoost reads both as the same float32 values, and the one-row
        matrix costs a third of the one-row DataFrame."""
        if not self.frame_input or (tuple(batch.columns) == self._names and _exact_numbers(batch)):
            return batch.to_numpy()
        return _categorical_frame(batch, self._categories)


def _exact_numbers(batch: Batch) -> bool:
    """Whether every column is numbers that a float64 matrix holds exactly (integers below 2**53)."""
    for column in batch.columns.values():
        kind = column.dtype.kind
        if kind == "f":
            continue
        if kind not in "iu" or (len(column) and np.abs(column).max() >= 2**53):
            return False
    return True


def _categorical_frame(batch: Batch, categories: dict[int, tuple[Any, ...]]) -> Any:
    """A DataFrame with string columns as pandas categoricals, as XGBoost expects them: over the
    categories the model was fitted on, so an unseen one is missing (XGBoost refuses it outright,
    or in 3.2 reads it as another category), as scikit-learn and LightGBM treat it."""
    import pandas as pd

    frame = batch.to_pandas().copy()
    for index, (name, column) in enumerate(batch.columns.items()):
        if column.dtype == object:
            known = categories.get(index)
            frame[name] = (
                pd.Categorical(frame[name], categories=list(known))
                if known is not None
                else frame[name].astype("category")
            )
    return frame


def fitted_categories(model: Any) -> dict[int, tuple[Any, ...]]:
    """Per categorical input column of a model fitted on pandas categoricals, its categories in
    code order, read from the model's JSON (`learner.gradient_booster...cats.enc`)."""
    import itertools
    import json

    booster = model.get_booster() if hasattr(model, "get_booster") else model
    learner = json.loads(bytes(booster.save_raw("json")))["learner"]
    gradient_booster = learner["gradient_booster"]
    forest = (
        gradient_booster["gbtree"]["model"]
        if gradient_booster["name"] == "dart"
        else gradient_booster.get("model", {})
    )
    found: dict[int, tuple[Any, ...]] = {}
    types = learner.get("feature_types") or []
    encodings = forest.get("cats", {}).get("enc", [])
    for column, (kind, encoding) in enumerate(zip(types, encodings, strict=False)):
        values = encoding.get("values", [])
        if kind != "c" or not values:
            continue
        offsets = encoding.get("offsets")
        if offsets:
            raw = bytes(values)
            found[column] = tuple(raw[a:b].decode() for a, b in itertools.pairwise(offsets))
        else:
            found[column] = tuple(values)
    return found


class XGBoostFlavor:
    """XGBoost in its native format; nothing executable is stored."""

    name = "xgboost"
    suffixes = (".ubj", ".xgb")
    unpickles = False

    def accepts(self, model: object) -> bool:
        """True for XGBoost scikit-learn wrappers and Boosters."""
        return module_of(model) == "xgboost" and (
            type(model).__name__ in _WRAPPERS or type(model).__name__ == "Booster"
        )

    def save(self, model: object) -> SavedModel:
        """Save in UBJSON with the wrapper type and classes."""
        xgb = _xgb()
        wrapper = type(model).__name__ if type(model).__name__ in _WRAPPERS else None
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, _FILE)
            model.save_model(path)  # type: ignore[attr-defined]  # both kinds have save_model
            with open(path, "rb") as handle:
                data = handle.read()
        meta: dict[str, Any] = {
            "framework": "xgboost",
            "framework_version": xgb.__version__,
            "wrapper": wrapper,
        }
        meta.update(task_meta(getattr(model, "classes_", None) if wrapper else None))
        names = getattr(model, "feature_names_in_", None)
        meta["frame_input"] = names is not None
        if hasattr(model, "get_params"):
            meta["params"] = jsonable(model.get_params())
        return SavedModel(self.name, {_FILE: data}, meta)

    def load(self, saved: SavedModel, options: LoadOptions) -> Predictor:
        """Load the native model into its wrapper (or a Booster)."""
        model = self._model(saved.files[_FILE], saved.meta.get("wrapper"))
        return XGBoostPredictor(model, dict(saved.meta))

    def read_file(self, data: bytes, options: LoadOptions) -> object:
        """Read an XGBoost model file as a Booster."""
        return self._model(data, None)

    def _model(self, data: bytes, wrapper: str | None) -> Any:
        xgb = _xgb()
        model = getattr(xgb, wrapper)() if wrapper else xgb.Booster()
        try:
            model.load_model(bytearray(data))
        except xgb.core.XGBoostError as exc:
            raise FlavorError(f"the data is not an XGBoost model ({exc})") from None
        return model
