"""scikit-learn estimators and pipelines, saved with skops and loaded with a trusted-type list."""

from __future__ import annotations

import copy
import io
import json
import zipfile
from typing import Any

import numpy as np

from shipyard.core.batch import Batch, Predictions
from shipyard.errors import FlavorError, PredictionError, UntrustedArtifactError
from shipyard.flavors.base import (
    LoadOptions,
    Predictor,
    SavedModel,
    classes_of,
    jsonable,
    labels_of,
    module_of,
    require,
    task_meta,
)
from shipyard.flavors.fitted import check_fitted
from shipyard.flavors.sklearn_columns import ColumnarPipeline
from shipyard.flavors.trust import partial_targets, untrusted

__all__ = ["SklearnFlavor", "SklearnPredictor", "positional_twin"]

_FILE = "model.skops"


def _loads(data: bytes, options: LoadOptions) -> Any:
    """Load a skops file, refusing any name the trust policy (`shipyard.flavors.trust`) refuses."""
    sio = require("skops.io", flavor="sklearn", extra="sklearn")
    try:
        reported: list[str] = sio.get_untrusted_types(data=data)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            partials = partial_targets(json.loads(archive.read("schema.json")))
    except Exception as exc:
        raise FlavorError(f"the data is not a skops model file ({exc})") from None
    refused = untrusted(reported, partials=partials, extra=options.trusted_types)
    if refused:
        listed = "; ".join(f"{name} ({why})" for name, why in refused.items())
        flags = " ".join(f"--trust-type {name}" for name in refused)
        raise UntrustedArtifactError(
            f"the skops file would construct or call what Shipyard does not trust: {listed}. "
            "Trusted without asking are scikit-learn classes, numpy and scipy data types and a "
            "reviewed list of maths functions (docs/security.md); a function stored in a model runs "
            "on every prediction, so trust these only if you know where the file comes from: "
            f"register again with trusted_types={sorted(refused)!r} (CLI: {flags})"
        )
    model = sio.loads(data, trusted=reported)
    check_fitted(model)
    return model


class SklearnPredictor:
    """Predicts with a scikit-learn estimator; classifiers return labels and probabilities.

    A model fitted on a DataFrame is fed a DataFrame, unless it reads its columns by position
    anyway (`positional_twin`): then a numeric batch in the fitted column order goes to it as one
    float64 matrix, which gives the same predictions at about half the cost per call (a one-row
    DataFrame costs scikit-learn's validation more than the trees do). A pipeline that starts
    with a `ColumnTransformer` gets each transformer's columns as a matrix instead
    (`ColumnarPipeline`).
    """

    def __init__(self, model: Any, meta: dict[str, Any]) -> None:
        self.frame_input = bool(meta.get("frame_input", False))
        self.classes = classes_of(meta)
        self.model = model
        self.scores = self.classes is not None and hasattr(model, "predict_proba")

    @property
    def model(self) -> Any:
        """The fitted estimator (as registered: with its feature names)."""
        return self._model

    @model.setter
    def model(self, model: Any) -> None:
        # a new model (a pruned copy, say) gets its own twin: the old one would answer for the old
        self._model = model
        self._twin = positional_twin(model) if self.frame_input else None
        self._columnar = ColumnarPipeline.of(model) if self.frame_input and self._twin is None else None
        names = getattr(model, "feature_names_in_", None)
        self._names = tuple(str(n) for n in names) if names is not None else ()

    def predict(self, batch: Batch) -> Predictions:
        """Predict `batch` (features in contract order)."""
        if batch.n_rows == 0:
            return Predictions.empty(self.classes, scores=self.scores)
        # Row order: trees walk each row's features, which then share cache lines. In the batch
        # benchmark, HistGradientBoosting predicted 4% faster from row-ordered batches than from
        # column-ordered ones, and 20% faster on one large array; the transposition costs 2 ms
        # per 100,000 rows.
        try:  # a ColumnarPipeline runs the transformers in `_input`: their errors are the model's
            model, features = self._input(batch)
            if self.scores:
                probabilities = np.asarray(model.predict_proba(features), dtype=np.float64)
                labels = labels_of(probabilities, model.classes_)
                return Predictions("classification", labels, probabilities, self.classes)
            values = np.asarray(model.predict(features))
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise PredictionError(f"the scikit-learn model failed to predict: {exc}") from exc
        if self.classes is not None:
            return Predictions("classification", values, None, self.classes)
        return Predictions("regression", values)

    def _input(self, batch: Batch) -> tuple[Any, Any]:
        """The model to call and what to feed it: the positional twin and a float64 matrix when
        the batch is numeric and in the fitted column order; a pipeline's steps after its
        `ColumnTransformer` and that transformer's output, made from the columns; else the model
        and a DataFrame (or a matrix, for a model fitted on one)."""
        if not self.frame_input:
            return self.model, batch.to_numpy()
        if (
            self._twin is not None
            and tuple(batch.columns) == self._names
            and all(column.dtype.kind in "iuf" for column in batch.columns.values())
        ):
            return self._twin, batch.to_numpy()
        if self._columnar is not None:
            transformed = self._columnar.transform(batch)
            if transformed is not None:
                return self._columnar.rest, transformed
        return self.model, batch.to_pandas()


def positional_twin(model: Any) -> Any | None:
    """A shallow copy of a DataFrame-fitted estimator that reads a matrix in its fitted column
    order, without scikit-learn's feature-name warning; None when the estimator selects columns
    by name or reads pandas dtypes (a Pipeline, a ColumnTransformer anywhere inside it, a
    histogram boosting model with categorical features).

    The copy shares the fitted arrays (nothing is duplicated) and has no `feature_names_in_`,
    which is all that scikit-learn checks names against; the original keeps its names for
    everything else (explanations, the registry).
    """
    if getattr(model, "feature_names_in_", None) is None or _selects_by_name(model):
        return None
    categorical = getattr(model, "is_categorical_", None)
    if categorical is not None and np.any(categorical):
        return None
    twin = copy.copy(model)
    del twin.feature_names_in_
    return twin


def _selects_by_name(model: Any) -> bool:
    """True when the estimator, or one it holds, may pick columns by name or by pandas dtype."""
    if hasattr(model, "steps") or hasattr(model, "transformers"):
        return True
    if not hasattr(model, "get_params"):
        return True
    for value in model.get_params(deep=True).values():
        if hasattr(value, "steps") or hasattr(value, "transformers") or hasattr(value, "estimators"):
            return True
        if hasattr(value, "get_params") and hasattr(value, "fit"):
            return True  # a meta-estimator (stacking, calibration, one-vs-rest): not checked here
    return False


class SklearnFlavor:
    """Any scikit-learn estimator or Pipeline; never pickle."""

    name = "sklearn"
    suffixes = (".skops",)
    unpickles = False

    def accepts(self, model: object) -> bool:
        """True for objects from scikit-learn (estimators, pipelines)."""
        return module_of(model) == "sklearn" and hasattr(model, "predict")

    def save(self, model: object) -> SavedModel:
        """Serialise with skops and record classes, feature names and parameters."""
        sio = require("skops.io", flavor="sklearn", extra="sklearn")
        sklearn = require("sklearn", flavor="sklearn", extra="sklearn")
        from sklearn.base import is_classifier

        data: bytes = sio.dumps(model)
        meta: dict[str, Any] = {"framework": "scikit-learn", "framework_version": sklearn.__version__}
        meta.update(task_meta(getattr(model, "classes_", None) if is_classifier(model) else None))
        names = getattr(model, "feature_names_in_", None)
        meta["frame_input"] = names is not None
        if names is not None:
            meta["feature_names"] = [str(n) for n in names]
        if hasattr(model, "get_params"):
            meta["params"] = jsonable(model.get_params(deep=False))
        return SavedModel(self.name, {_FILE: data}, meta)

    def load(self, saved: SavedModel, options: LoadOptions) -> Predictor:
        """Load with skops, refusing types outside the trusted list.

        The types a version declared trusted when it was registered are trusted again only
        when its signature by a trusted key verified: whoever registers must not be able to
        widen what every later load constructs.
        """
        declared = tuple(saved.meta.get("trusted_types", ()))
        if declared and not options.signed:
            raise UntrustedArtifactError(
                f"this scikit-learn version was registered trusting extra types {list(declared)}; "
                "it loads only when signed by a trusted key ('shipyard sign REF --key ...', "
                "SHIPYARD_TRUSTED_KEYS)"
            )
        model = _loads(saved.files[_FILE], LoadOptions(trusted_types=declared + options.trusted_types))
        return SklearnPredictor(model, dict(saved.meta))

    def read_file(self, data: bytes, options: LoadOptions) -> object:
        """Read a `.skops` file."""
        return _loads(data, options)
