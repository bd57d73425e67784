"""scikit-learn's linear models as ONNX `MatMul` + `Add` graphs, in double or float as the input is.

skl2onnx writes linear models with the ONNX-ML `LinearClassifier`/`LinearRegressor` operators,
which ONNX Runtime runs in float only for some (LinearSVC fails in double: "post_transform 'NONE'
is not supported with double") and which int8 quantization cannot touch. The converters here
write the same arithmetic with standard operators instead:

- `decision = X @ coef_.T + intercept_`, in the input's float type;
- a classifier's `label` follows scikit-learn's `predict`: the positive class when a binary
  decision is above 0, else the class of the largest decision (the first on ties);
- its `probabilities` follow its `predict_proba`: the logistic function for binary
  LogisticRegression and log-loss SGD, softmax for multinomial LogisticRegression, the
  one-vs-rest normalisation (logistic per class, divided by the sum; uniform when all are 0) for
  multiclass log-loss SGD, the clipped `(d + 1) / 2` for modified-Huber SGD; classifiers that do
  not score (LinearSVC, RidgeClassifier, hinge SGD) give their decision function instead, a binary
  one as `[-d, d]`;
- a regressor's output `variable` is (rows, targets).

`register_converters()` makes skl2onnx use them, alone or inside a Pipeline, with no ZipMap: a
classifier's outputs are `label` and `probabilities`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.errors import UnsupportedExportError

__all__ = ["CLASSIFIERS", "REGRESSORS", "register_converters"]

CLASSIFIERS = ("LogisticRegression", "SGDClassifier", "RidgeClassifier", "LinearSVC")
REGRESSORS = ("LinearRegression", "Ridge", "Lasso", "ElasticNet", "SGDRegressor", "LinearSVR")
_ALIAS = "ShipyardLinear"


def register_converters() -> None:
    """Make skl2onnx convert the linear models named in `CLASSIFIERS` and `REGRESSORS` with these
    converters (idempotent; a later call changes nothing)."""
    from skl2onnx import update_registered_converter
    from sklearn import linear_model, svm

    modules = (linear_model, svm)
    for name in CLASSIFIERS:
        model = next(getattr(m, name) for m in modules if hasattr(m, name))
        update_registered_converter(
            model,
            f"{_ALIAS}{name}",
            _classifier_shapes,
            _convert_classifier,
            parser=_parse_without_zipmap,
            options={"zipmap": [False]},
        )
    for name in REGRESSORS:
        model = next(getattr(m, name) for m in modules if hasattr(m, name))
        update_registered_converter(model, f"{_ALIAS}{name}", _regressor_shapes, _convert_regressor)


def _parse_without_zipmap(scope: Any, model: Any, inputs: Any, custom_parsers: Any = None) -> Any:
    from skl2onnx._parse import _parse_sklearn_simple_model

    return _parse_sklearn_simple_model(scope, model, inputs, custom_parsers=custom_parsers)


def _float_type(operator: Any) -> Any:
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    return DoubleTensorType if isinstance(operator.inputs[0].type, DoubleTensorType) else FloatTensorType


def _classifier_shapes(operator: Any) -> None:
    from skl2onnx.common.data_types import Int64TensorType, StringTensorType

    n = operator.inputs[0].get_first_dimension()
    classes = operator.raw_operator.classes_
    label = (
        StringTensorType if _class_table(operator.raw_operator, classes).dtype == object else Int64TensorType
    )
    operator.outputs[0].type = label(shape=[n])
    operator.outputs[1].type = _float_type(operator)(shape=[n, len(classes)])


def _regressor_shapes(operator: Any) -> None:
    n = operator.inputs[0].get_first_dimension()
    coef = np.asarray(operator.raw_operator.coef_)
    operator.outputs[0].type = _float_type(operator)(shape=[n, 1 if coef.ndim == 1 else coef.shape[0]])


def _class_table(model: Any, classes: Any) -> Any:
    """The labels as ONNX can hold them: int64 for integral numbers, strings for text."""
    values = np.asarray(classes)
    if values.dtype.kind in "iub" or (values.dtype.kind == "f" and np.all(values == np.round(values))):
        return values.astype(np.int64)
    if values.dtype.kind in "OUS" and all(isinstance(v, str) for v in values.tolist()):
        return np.asarray(values.tolist(), dtype=object)
    raise UnsupportedExportError(
        f"{type(model).__name__} has classes {values.tolist()[:5]} of dtype {values.dtype}; the ONNX "
        "export holds integer or string labels; refit with integer or string labels"
    )


class _Writer:
    """Adds nodes and constants of one converter call to skl2onnx's container."""

    def __init__(self, scope: Any, container: Any, operator: Any) -> None:
        from skl2onnx.common.data_types import guess_proto_type

        self.scope, self.container = scope, container
        self.proto = guess_proto_type(_float_type(operator)())
        self.dtype = np.float64 if _float_type(operator).__name__ == "DoubleTensorType" else np.float32
        self.prefix = operator.full_name

    def name(self, hint: str) -> str:
        return str(self.scope.get_unique_variable_name(f"{self.prefix}_{hint}"))

    def const(self, hint: str, value: Any, proto: Any = None) -> str:
        from onnx import TensorProto

        array = np.asarray(value)
        name = self.name(hint)
        if array.dtype == object:
            proto, values = TensorProto.STRING, [str(v).encode() for v in array.ravel()]
        else:
            array = array.astype(self.dtype) if proto is None else array
            values = array.ravel().tolist()
        self.container.add_initializer(
            name, self.proto if proto is None else proto, list(array.shape), values
        )
        return name

    def node(self, op: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        out = output or self.name(op.lower())
        self.container.add_node(op, inputs, [out], name=self.scope.get_unique_operator_name(op), **attrs)
        return out


def _decision(writer: _Writer, operator: Any) -> str:
    """`X @ coef_.T + intercept_` as (rows, outputs), the input cast to the float type if it is not."""
    from onnx import TensorProto

    model = operator.raw_operator
    x = operator.inputs[0]
    source = x.full_name
    if x.type.__class__.__name__ not in ("DoubleTensorType", "FloatTensorType"):
        to = TensorProto.DOUBLE if writer.dtype == np.float64 else TensorProto.FLOAT
        source = writer.node("Cast", [source], to=to)
    coef = np.atleast_2d(np.asarray(model.coef_, dtype=np.float64))
    product = writer.node("MatMul", [source, writer.const("coef", coef.T)])
    intercept = np.atleast_1d(np.asarray(model.intercept_, dtype=np.float64))
    return writer.node("Add", [product, writer.const("intercept", intercept)])


def _convert_regressor(scope: Any, operator: Any, container: Any) -> None:
    writer = _Writer(scope, container, operator)
    writer.node("Identity", [_decision(writer, operator)], operator.outputs[0].full_name)


def _convert_classifier(scope: Any, operator: Any, container: Any) -> None:
    from onnx import TensorProto

    model = operator.raw_operator
    writer = _Writer(scope, container, operator)
    decision = _decision(writer, operator)
    binary = np.atleast_2d(model.coef_).shape[0] == 1
    scores = writer.node("Concat", [writer.node("Neg", [decision]), decision], axis=1) if binary else decision
    position = writer.node("ArgMax", [scores], axis=1, keepdims=0)
    table = writer.const("classes", _class_table(model, model.classes_), proto=TensorProto.INT64)
    writer.node("Gather", [table, position], operator.outputs[0].full_name, axis=0)
    probabilities = _probabilities(writer, model, decision, scores, binary)
    writer.node("Identity", [probabilities], operator.outputs[1].full_name)


def _probabilities(writer: _Writer, model: Any, decision: str, scores: str, binary: bool) -> str:
    """`predict_proba`'s arithmetic, or the decision scores for a classifier that has none."""
    kind = type(model).__name__
    loss = getattr(model, "loss", None)
    if kind == "LogisticRegression" and not binary:
        return writer.node("Softmax", [decision], axis=1)
    if kind == "LogisticRegression" or loss == "log_loss":
        positive = writer.node("Sigmoid", [decision])
    elif loss == "modified_huber":
        one = writer.const("one", 1.0)
        clipped = writer.node("Clip", [decision, writer.const("low", -1.0), one])
        positive = writer.node("Div", [writer.node("Add", [clipped, one]), writer.const("two", 2.0)])
    else:
        return scores
    if binary:
        negative = writer.node("Sub", [writer.const("one", 1.0), positive])
        return writer.node("Concat", [negative, positive], axis=1)
    return _normalised(writer, positive)


def _normalised(writer: _Writer, values: str) -> str:
    """Each row divided by its sum; a row of zeros becomes uniform (scikit-learn's OvR rule)."""
    total = writer.node(
        "ReduceSum", [values, writer.const("axis", np.array([1]), proto=_int64())], keepdims=1
    )
    empty = writer.node("Equal", [total, writer.const("zero", 0.0)])
    filled = writer.node("Where", [empty, writer.const("one_each", 1.0), values])
    width = writer.node("Shape", [values], start=1, end=2)
    count = writer.node("Cast", [width], to=writer.proto)
    return writer.node("Div", [filled, writer.node("Where", [empty, count, total])])


def _int64() -> Any:
    from onnx import TensorProto

    return TensorProto.INT64
