"""ONNX models run by onnxruntime: one 2-D tensor input, or one input per feature."""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.core.batch import Batch, Predictions
from shipyard.errors import FlavorError, PredictionError
from shipyard.flavors.base import (
    LoadOptions,
    Predictor,
    SavedModel,
    classes_of,
    classified,
    module_of,
    require,
)

__all__ = ["ONNXFlavor"]

_FILE = "model.onnx"
MISSING_STRING = ""
"""What a string input is fed for a missing value: a string tensor has no null."""
_NUMPY_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(string)": object,
}


def _session(data: bytes) -> Any:
    ort = require("onnxruntime", flavor="onnx", extra="onnx")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise FlavorError(f"the data is not an ONNX model onnxruntime can run ({exc})") from None


class ONNXPredictor:
    """Feeds a batch to an onnxruntime session and reads labels, scores or values back."""

    def __init__(self, session: Any, meta: dict[str, Any]) -> None:
        self.model = session
        self.classes = classes_of(meta)
        self.inputs = session.get_inputs()
        self.single = len(self.inputs) == 1 and len(meta.get("feature_names", [])) != 1
        outputs = session.get_outputs()
        self.output_names = [o.name for o in outputs]
        self.proba_index = next(
            (i for i, o in enumerate(outputs) if o.type.startswith("seq(map") or "prob" in o.name.lower()),
            None,
        )

    def predict(self, batch: Batch) -> Predictions:
        """Predict `batch` (features in contract order)."""
        if batch.n_rows == 0:
            return Predictions.empty(self.classes)
        try:
            results = self.model.run(None, self._feeds(batch))
        except Exception as exc:
            raise PredictionError(f"the ONNX model failed to predict: {exc}") from exc
        if self.classes is None or self.proba_index is None:
            values = np.asarray(results[0])
            values = values.reshape(batch.n_rows, -1)[:, 0] if values.ndim > 1 else values
            if self.classes is not None:
                return Predictions("classification", values.astype(object), None, self.classes)
            return Predictions("regression", values.astype(np.float64))
        raw = results[self.proba_index]
        if isinstance(raw, list):  # ZipMap: one {class: probability} per row
            keys = list(raw[0].keys()) if raw else []
            order = [keys.index(c) if c in keys else keys.index(str(c)) for c in self.classes]
            table = np.array([list(row.values()) for row in raw], dtype=np.float64)
            probabilities = table[:, order]
        else:
            probabilities = np.asarray(raw, dtype=np.float64)
        return classified(probabilities, self.classes)

    def _feeds(self, batch: Batch) -> dict[str, Any]:
        if self.single:
            spec = self.inputs[0]
            dtype = _NUMPY_TYPES.get(spec.type, np.float32)
            return {spec.name: batch.to_numpy(dtype)}
        feeds = {}
        for spec in self.inputs:
            if spec.name not in batch.columns:
                raise PredictionError(
                    f"the ONNX model has input {spec.name!r}, which the contract does not name"
                )
            column = _column(batch.columns[spec.name], _NUMPY_TYPES.get(spec.type, np.float32))
            feeds[spec.name] = column.reshape(-1, 1) if len(spec.shape) == 2 else column
        return feeds


def _column(values: Any, dtype: Any) -> Any:
    """One feature as the input's dtype; a missing value (None) becomes the empty string in a
    string input (a string tensor has no null) and NaN in a number input."""
    if values.dtype != object:
        return values.astype(dtype)
    missing = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    if not missing.any():
        return values.astype(dtype)
    if dtype is object:
        filled = values.copy()
        filled[missing] = MISSING_STRING
        return filled
    return np.where(missing, np.nan, values).astype(dtype)


class ONNXFlavor:
    """ONNX graphs (from skl2onnx, torch.onnx, tf2onnx, ...) run with onnxruntime."""

    name = "onnx"
    suffixes = (".onnx",)
    unpickles = False

    def accepts(self, model: object) -> bool:
        """True for `onnx.ModelProto` objects."""
        return module_of(model) == "onnx" and type(model).__name__ == "ModelProto"

    def save(self, model: object) -> SavedModel:
        """Serialise the graph as its protobuf bytes."""
        data: bytes = model.SerializeToString()  # type: ignore[attr-defined]  # ModelProto
        session = _session(data)
        meta: dict[str, Any] = {
            "framework": "onnx",
            "framework_version": require("onnxruntime", flavor="onnx", extra="onnx").__version__,
            "inputs": [i.name for i in session.get_inputs()],
        }
        if len(meta["inputs"]) > 1:
            meta["feature_names"] = meta["inputs"]
        return SavedModel(self.name, {_FILE: data}, meta)

    def load(self, saved: SavedModel, options: LoadOptions) -> Predictor:
        """Open an onnxruntime session on the CPU."""
        return ONNXPredictor(_session(saved.files[_FILE]), dict(saved.meta))

    def read_file(self, data: bytes, options: LoadOptions) -> object:
        """Read a `.onnx` file as an `onnx.ModelProto`."""
        onnx = require("onnx", flavor="onnx", extra="onnx")
        try:
            model = onnx.load_from_string(data)
            onnx.checker.check_model(model)
        except Exception as exc:
            raise FlavorError(f"the data is not an ONNX model ({exc})") from None
        return model
