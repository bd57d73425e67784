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

`SVC(kernel="linear")` is written the same way from its `coef_` (libsvm's pairwise decisions;
skl2onnx's `SVMClassifier` computes in float32 inside ONNX Runtime, off by ~2e-6):

- binary with probabilities: libsvm's Platt scaling of its decision `-d` (`1 / (1 + exp(A dec + B))`
  computed as libsvm does, clipped to [1e-7, 1 - 1e-7]) and then its pairwise coupling, which for
  two classes is not the identity: it iterates from (0.5, 0.5) until the coupling error is below
  0.0025 (rows within 0.005 of 0.5 stay at 0.5; the others take one or two passes), unrolled here;
  the label is the first most probable class, as the flavor serves `predict_proba`;
- binary without: `[-d, d]`, the label by sign;
- multiclass without probabilities: the one-vs-one votes (decision > 0 votes for the first class of
  the pair), whose first largest is `predict`'s class (libsvm's tie rule); with `break_ties` the
  one-vs-rest decision function instead, as `predict` then takes its largest;
- multiclass with probabilities is refused: libsvm's coupling of k > 2 classes iterates up to 100
  times with a data-dependent stop.

Other kernels keep skl2onnx's own SVC converter (the parity gate judges it).

`register_converters()` makes skl2onnx use them, alone or inside a Pipeline, with no ZipMap: a
classifier's outputs are `label` and `probabilities`.
"""

from __future__ import annotations

from collections.abc import Callable
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
    _register_svc()


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
    coef = model.coef_.toarray() if hasattr(model.coef_, "toarray") else model.coef_  # SVC fit on sparse X
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
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


# ------------------------------------------------------------------ SVC with a linear kernel

_MIN_PROBABILITY = 1e-7
"""libsvm clips each pairwise Platt probability to [1e-7, 1 - 1e-7]."""
_COUPLING_EPS = 0.005 / 2
"""libsvm's stopping bound of the pairwise coupling of k classes, 0.005 / k."""
_COUPLING_PASSES = 3
"""Unrolled coupling passes for two classes: a dense scan of the pairwise probability over
[1e-7, 1 - 1e-7] stopped after at most two; the third is margin (a stopped row does not move)."""


def _register_svc() -> None:
    """SVC through `_convert_svc`, which keeps skl2onnx's own parser, shapes and converter for
    kernels other than linear (under its alias, still registered: ours takes another name)."""
    from skl2onnx import update_registered_converter
    from skl2onnx._parse import _parse_sklearn_classifier
    from skl2onnx.common._registration import get_converter, get_shape_calculator
    from sklearn.svm import SVC

    theirs, their_shapes = get_converter("SklearnSVC"), get_shape_calculator("SklearnSVC")

    def parse(scope: Any, model: Any, inputs: Any, custom_parsers: Any = None) -> Any:
        parser = _parse_without_zipmap if model.kernel == "linear" else _parse_sklearn_classifier
        return parser(scope, model, inputs, custom_parsers=custom_parsers)

    def shapes(operator: Any) -> None:
        (_classifier_shapes if operator.raw_operator.kernel == "linear" else their_shapes)(operator)

    def convert(scope: Any, operator: Any, container: Any) -> None:
        (_convert_svc if operator.raw_operator.kernel == "linear" else theirs)(scope, operator, container)

    update_registered_converter(
        SVC, f"{_ALIAS}SVC", shapes, convert, parser=parse, options=theirs.get_allowed_options()
    )


def _convert_svc(scope: Any, operator: Any, container: Any) -> None:
    from onnx import TensorProto

    model = operator.raw_operator
    writer = _Writer(scope, container, operator)
    decision = _decision(writer, operator)
    classes = len(model.classes_)
    scores = hasattr(model, "predict_proba")
    if classes > 2 and scores:
        raise UnsupportedExportError(
            f"SVC(kernel='linear', probability=True) with {classes} classes: libsvm's pairwise coupling "
            "of more than two classes iterates with a data-dependent stop, which the export does not "
            "write; export it without probability=True, or use LinearSVC or LogisticRegression"
        )
    if classes == 2:
        negated = writer.node("Neg", [decision])
        answers = (
            _platt(writer, model, negated) if scores else writer.node("Concat", [negated, decision], axis=1)
        )
    elif model.break_ties and model.decision_function_shape == "ovr":
        answers = _one_vs_rest(writer, decision, classes)
    else:
        answers = _votes(writer, decision, classes)
    position = writer.node("ArgMax", [answers], axis=1, keepdims=0)
    table = writer.const("classes", _class_table(model, model.classes_), proto=TensorProto.INT64)
    writer.node("Gather", [table, position], operator.outputs[0].full_name, axis=0)
    writer.node("Identity", [answers], operator.outputs[1].full_name)


def _platt(writer: _Writer, model: Any, dec: str) -> str:
    """libsvm's probabilities of two classes from its decision `dec` (rows, 1): Platt scaling of
    the first class, clipped, then coupled with the second."""
    f = writer.node(
        "Add",
        [
            writer.node("Mul", [dec, writer.const("prob_a", model._probA)]),
            writer.const("prob_b", model._probB),
        ],
    )
    # libsvm: exp(-f) / (1 + exp(-f)) when f >= 0, else 1 / (1 + exp(f)), the same e = exp(-|f|)
    e = writer.node("Exp", [writer.node("Neg", [writer.node("Abs", [f])])])
    one = writer.const("one", 1.0)
    upper = writer.node("Where", [writer.node("GreaterOrEqual", [f, writer.const("zero", 0.0)]), e, one])
    sigmoid = writer.node("Div", [upper, writer.node("Add", [one, e])])
    first = writer.node(
        "Clip",
        [sigmoid, writer.const("min_prob", _MIN_PROBABILITY), writer.const("max_prob", 1 - _MIN_PROBABILITY)],
    )
    return _coupled(writer, first, writer.node("Sub", [one, first]))


def _coupled(writer: _Writer, r01: str, r10: str) -> str:
    """libsvm's `multiclass_probability` for k = 2, pass by pass: `Q = [[r10², -r10 r01], [., r01²]]`,
    p from (0.5, 0.5); a pass runs while the largest |Qp_t - pQp| is at least `_COUPLING_EPS`."""

    def arithmetic(op: str) -> Callable[[str, str], str]:
        return lambda x, y: writer.node(op, [x, y])

    mul, add, sub, div = (arithmetic(op) for op in ("Mul", "Add", "Sub", "Div"))
    cross = writer.node("Neg", [mul(r10, r01)])
    q = [[mul(r10, r10), cross], [cross, mul(r01, r01)]]
    one, two, half = writer.const("one", 1.0), writer.const("two", 2.0), writer.const("half", 0.5)
    eps = writer.const("eps", _COUPLING_EPS)
    p, running = [half, half], writer.const("running", True, proto=_bool())
    for _ in range(_COUPLING_PASSES):
        qp = [add(mul(q[t][0], p[0]), mul(q[t][1], p[1])) for t in range(2)]
        pqp = add(mul(p[0], qp[0]), mul(p[1], qp[1]))
        error = writer.node("Max", [writer.node("Abs", [sub(qp[t], pqp)]) for t in range(2)])
        running = writer.node("And", [running, writer.node("GreaterOrEqual", [error, eps])])
        moved = list(p)
        for t in range(2):
            diff = div(sub(pqp, qp[t]), q[t][t])
            moved[t] = add(moved[t], diff)
            grown = add(one, diff)
            pqp = div(div(add(pqp, mul(diff, add(mul(diff, q[t][t]), mul(two, qp[t])))), grown), grown)
            qp = [div(add(qp[j], mul(diff, q[t][j])), grown) for j in range(2)]
            moved = [div(moved[j], grown) for j in range(2)]
        p = [writer.node("Where", [running, moved[j], p[j]]) for j in range(2)]
    return writer.node("Concat", p, axis=1)


def _pairs(classes: int) -> tuple[Any, Any]:
    """libsvm's pairs (i, j), i < j, in order, as (pairs, classes) indicator matrices of i and of j."""
    pairs = [(i, j) for i in range(classes) for j in range(i + 1, classes)]
    first, second = np.zeros((len(pairs), classes)), np.zeros((len(pairs), classes))
    for row, (i, j) in enumerate(pairs):
        first[row, i], second[row, j] = 1.0, 1.0
    return first, second


def _votes(writer: _Writer, decision: str, classes: int, *, win: str = "Greater") -> str:
    """libsvm's one-vs-one votes: a pair's decision above 0 (`win`: "Greater") votes for its first
    class, else its second; class c is the second class of c pairs."""
    first, second = _pairs(classes)
    wins = writer.node("Cast", [writer.node(win, [decision, writer.const("zero", 0.0)])], to=writer.proto)
    swing = writer.node("MatMul", [wins, writer.const("swing", first - second)])
    return writer.node("Add", [swing, writer.const("seconds", second.sum(axis=0))])


def _one_vs_rest(writer: _Writer, decision: str, classes: int) -> str:
    """scikit-learn's `_ovr_decision_function`: votes (a decision at or above 0 for the first class)
    plus the summed confidences mapped into (-1/3, 1/3)."""
    first, second = _pairs(classes)
    votes = _votes(writer, decision, classes, win="GreaterOrEqual")
    confidence = writer.node("MatMul", [decision, writer.const("signs", first - second)])
    size = writer.node("Add", [writer.node("Abs", [confidence]), writer.const("one", 1.0)])
    spread = writer.node("Mul", [writer.const("three", 3.0), size])
    return writer.node("Add", [votes, writer.node("Div", [confidence, spread])])


def _bool() -> Any:
    from onnx import TensorProto

    return TensorProto.BOOL
