"""Write a neutral `Ensemble` as an ONNX graph, and make skl2onnx write tree models that way.

The trees become one `ai.onnx.ml` opset 5 `TreeEnsemble` node (numeric splits `BRANCH_LEQ`,
or `BRANCH_LT` for strict ensembles; categorical splits `BRANCH_MEMBER`; missing values follow
`nodes_missing_value_tracks_true`), summing raw scores; averaging, the base values and the post
transform are plain ONNX operators after it, so that every step is the reference's own
(`Ensemble.outputs`, `Ensemble.answers`, `Ensemble.labels`):

- classifier outputs: `label` (rows,) int64 or string, as the classes are, and `probabilities`
  (rows, classes); regressor output: `variable` (rows, 1);
- float64 mode: double input, thresholds and arithmetic; an ensemble whose framework rounds its
  inputs to float32 gets the same rounding in the graph (a Cast to float and back);
- float32 mode: float input and arithmetic; each threshold is the float32 that splits float32
  inputs exactly as the framework's float64 threshold does (for `x <= t` the largest float32 at
  most t, for `x < t` the smallest at least t), so no float32 row changes side.

`register_converters` makes skl2onnx write every tree model (inside pipelines too) with the same
nodes, `read_ensemble` of the fitted estimator written by `write_ensemble`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from shipyard.edge.ensemble import Ensemble
from shipyard.edge.tree_nodes import tree_ensemble_attributes
from shipyard.edge.trees import read_ensemble
from shipyard.errors import ExportError, UnsupportedExportError

__all__ = [
    "ML_OPSET",
    "ONNX_OPSET",
    "Dtype",
    "Sink",
    "ensemble_graph",
    "register_converters",
    "write_ensemble",
]

Dtype = Literal["float64", "float32"]
ONNX_OPSET = 21
ML_OPSET = 5
IR_VERSION = 10
"""The ONNX IR version the graphs declare (opset 21 needs 10; ONNX Runtime 1.32 reads it)."""


class Sink(Protocol):
    """Where the writer puts its nodes: a bare graph, or skl2onnx's container."""

    def fresh(self, hint: str) -> str:
        """A variable name not used yet."""
        ...

    def constant(self, hint: str, value: npt.NDArray[Any]) -> str:
        """The name of a new constant holding `value`."""
        ...

    def node(
        self, op: str, inputs: list[str], outputs: list[str], *, domain: str = "", **attributes: Any
    ) -> None:
        """Adds one node."""
        ...


def ensemble_graph(ensemble: Ensemble, *, dtype: Dtype = "float64") -> Any:
    """The ONNX model (`onnx.ModelProto`) scoring `ensemble`: input `X` (rows, n_features),
    categorical columns as `Ensemble.categories` codes (NaN when missing or unseen).

    Args:
        ensemble: the trees, from `read_ensemble` (or `boosters.read_booster`).
        dtype: "float64" (double input and outputs) or "float32" (float ones).

    Returns:
        A model with outputs `label` and `probabilities` for a classifier, `variable` for a
        regressor.
    """
    from onnx import TensorProto, helper

    element = _element(dtype)
    sink = _GraphSink()
    names = ["label", "probabilities"] if ensemble.classes is not None else ["variable"]
    write_ensemble(sink, ensemble, "X", names, dtype=dtype)
    number = TensorProto.DOUBLE if dtype == "float64" else TensorProto.FLOAT
    if ensemble.classes is None:
        outputs = [helper.make_tensor_value_info("variable", number, [None, 1])]
    else:
        labels = _label_array(ensemble)
        kind = TensorProto.STRING if labels.dtype == object else TensorProto.INT64
        outputs = [
            helper.make_tensor_value_info("label", kind, [None]),
            helper.make_tensor_value_info("probabilities", number, [None, len(labels)]),
        ]
    graph = helper.make_graph(
        sink.nodes,
        f"shipyard_{ensemble.model or 'trees'}_{np.dtype(element).name}",
        [helper.make_tensor_value_info("X", number, [None, ensemble.n_features])],
        outputs,
        initializer=sink.initializers,
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
        ir_version=IR_VERSION,
        producer_name="shipyard",
    )


def write_ensemble(sink: Sink, ensemble: Ensemble, x: str, outputs: Sequence[str], *, dtype: Dtype) -> None:
    """Adds the nodes scoring `ensemble` from the matrix `x` (double or float, as `dtype`) to
    `outputs`: [label, probabilities] for a classifier, [variable] for a regressor."""
    from onnx import TensorProto

    element = _element(dtype)
    source = x
    if dtype == "float64" and ensemble.float32_inputs:
        rounded, source = sink.fresh("rounded"), sink.fresh("compared")
        sink.node("Cast", [x], [rounded], to=TensorProto.FLOAT)
        sink.node("Cast", [rounded], [source], to=TensorProto.DOUBLE)
    raw = sink.fresh("sums")
    sink.node(
        "TreeEnsemble", [source], [raw], domain="ai.onnx.ml", **tree_ensemble_attributes(ensemble, element)
    )
    if ensemble.average:
        averaged = sink.fresh("averages")
        sink.node(
            "Div", [raw, sink.constant("trees_per_output", _counts(ensemble).astype(element))], [averaged]
        )
        raw = averaged
    if np.any(ensemble.base != 0):
        based = sink.fresh("raw")
        sink.node("Add", [raw, sink.constant("base", ensemble.base.astype(element).reshape(1, -1))], [based])
        raw = based
    if ensemble.classes is None:
        if ensemble.n_outputs != 1:
            raise ExportError(f"{ensemble.model}: a regressor must have one output, not {ensemble.n_outputs}")
        sink.node("Identity", [raw], [outputs[0]])
        return
    label, probabilities = outputs
    labels = sink.constant("classes", _label_array(ensemble))
    index = sink.fresh("class_index")
    if ensemble.post == "logistic":
        positive, negative, above = sink.fresh("positive"), sink.fresh("negative"), sink.fresh("above")
        sink.node("Sigmoid", [raw], [positive])
        sink.node("Sub", [sink.constant("one", np.ones((1, 1), element)), positive], [negative])
        sink.node("Concat", [negative, positive], [probabilities], axis=1)
        compare = "GreaterOrEqual" if ensemble.positive_at_zero else "Greater"
        sink.node(compare, [raw, sink.constant("zero", np.zeros((1, 1), element))], [above])
        column, flat = sink.fresh("above_index"), sink.fresh("above_flat")
        sink.node("Cast", [above], [column], to=TensorProto.INT64)
        sink.node("Reshape", [column, sink.constant("rows", np.array([-1], np.int64))], [flat])
        index = flat
    else:
        if ensemble.post == "softmax":
            sink.node("Softmax", [raw], [probabilities], axis=1)
        else:
            sink.node("Identity", [raw], [probabilities])
        sink.node("ArgMax", [raw], [index], axis=1, keepdims=0)
    sink.node("Gather", [labels, index], [label], axis=0)


def _element(dtype: str) -> type[np.floating[Any]]:
    if dtype == "float64":
        return np.float64
    if dtype == "float32":
        return np.float32
    raise ExportError(f"dtype must be 'float64' or 'float32', not {dtype!r}")


def _counts(ensemble: Ensemble) -> npt.NDArray[np.float64]:
    counts = np.zeros(ensemble.n_outputs)
    for target in ensemble.targets:
        if target is None:
            counts += 1
        else:
            counts[target] += 1
    return np.maximum(counts, 1).reshape(1, -1)


def _label_array(ensemble: Ensemble) -> npt.NDArray[Any]:
    """The classes as an int64 tensor (integers and booleans) or a string one."""
    classes = list(ensemble.classes or ())
    if all(isinstance(c, str) for c in classes):
        return np.array(classes, dtype=object)
    values = np.asarray(classes)
    if values.dtype.kind in "iub" or (values.dtype.kind == "f" and np.all(values == np.round(values))):
        return values.astype(np.int64)
    raise UnsupportedExportError(
        f"{ensemble.model}'s classes {classes[:5]} are neither integers nor strings; "
        "an ONNX label output holds int64 or string labels: encode the target as integers or strings"
    )


class _GraphSink:
    """Nodes and initializers of a graph of our own."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._used: set[str] = set()

    def fresh(self, hint: str) -> str:
        name, n = hint, 1
        while name in self._used:
            n += 1
            name = f"{hint}_{n}"
        self._used.add(name)
        return name

    def constant(self, hint: str, value: npt.NDArray[Any]) -> str:
        from onnx import numpy_helper

        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(value, name=name))
        return name

    def node(
        self, op: str, inputs: list[str], outputs: list[str], *, domain: str = "", **attributes: Any
    ) -> None:
        from onnx import helper

        self.nodes.append(
            helper.make_node(op, inputs, outputs, name=self.fresh(op), domain=domain or None, **attributes)
        )


class _ContainerSink:
    """skl2onnx's scope and container, as a `Sink`."""

    def __init__(self, scope: Any, container: Any) -> None:
        self.scope = scope
        self.container = container

    def fresh(self, hint: str) -> str:
        return str(self.scope.get_unique_variable_name(hint))

    def constant(self, hint: str, value: npt.NDArray[Any]) -> str:
        from onnx import helper

        name = self.fresh(hint)
        kind = helper.np_dtype_to_tensor_dtype(np.dtype(str) if value.dtype == object else value.dtype)
        flat = [str(v) for v in value.ravel()] if value.dtype == object else value.ravel().tolist()
        self.container.add_initializer(name, kind, list(value.shape), flat)
        return name

    def node(
        self, op: str, inputs: list[str], outputs: list[str], *, domain: str = "", **attributes: Any
    ) -> None:
        name = self.scope.get_unique_operator_name(op)
        if domain != "ai.onnx.ml":
            self.container.add_node(op, inputs, outputs, name=name, **attributes)
            return
        from onnx import helper

        # skl2onnx 1.20 refuses to declare ai.onnx.ml above 3 (it raises when a node asks for 5),
        # and declares the highest version its converters' nodes asked for. The TreeEnsemble is
        # therefore added without asking, and the domain's version is left to the conversion's
        # target_opset (checked >= 5 by `_convert`); skl2onnx's own ai.onnx.ml nodes run there.
        self.container.nodes.append(
            helper.make_node(op, inputs, outputs, name=name, domain=domain, **attributes)
        )
        self.container.node_domain_version_pair_sets -= {
            pair for pair in self.container.node_domain_version_pair_sets if pair[0] == domain
        }


_SKLEARN_TREES = (
    ("sklearn.tree", "DecisionTreeClassifier"),
    ("sklearn.tree", "DecisionTreeRegressor"),
    ("sklearn.tree", "ExtraTreeClassifier"),
    ("sklearn.tree", "ExtraTreeRegressor"),
    ("sklearn.ensemble", "RandomForestClassifier"),
    ("sklearn.ensemble", "RandomForestRegressor"),
    ("sklearn.ensemble", "ExtraTreesClassifier"),
    ("sklearn.ensemble", "ExtraTreesRegressor"),
    ("sklearn.ensemble", "GradientBoostingClassifier"),
    ("sklearn.ensemble", "GradientBoostingRegressor"),
    ("sklearn.ensemble", "HistGradientBoostingClassifier"),
    ("sklearn.ensemble", "HistGradientBoostingRegressor"),
)
_BOOSTER_TREES = (
    ("xgboost", "XGBClassifier"),
    ("xgboost", "XGBRegressor"),
    ("lightgbm", "LGBMClassifier"),
    ("lightgbm", "LGBMRegressor"),
)


def register_converters() -> None:
    """Makes skl2onnx convert every tree model (scikit-learn's, and XGBoost's and LightGBM's
    scikit-learn classes when those packages import) with `write_ensemble`, inside pipelines too.

    Registering again replaces the same converters: calling this twice is harmless. The
    conversion must target `{"": 21, "ai.onnx.ml": 5}` (the TreeEnsemble operator), and a
    classifier needs the option `{"zipmap": False}` (keyed by its class or `id(model)`): it then
    gives `label` and `probabilities` tensors. The option `nocl` gives class indices as labels.
    """
    import importlib

    from skl2onnx import update_registered_converter

    for module_name, class_name in _SKLEARN_TREES + _BOOSTER_TREES:
        try:
            model_class = getattr(importlib.import_module(module_name), class_name)
        except ImportError:
            continue
        classifier = class_name.endswith("Classifier")
        update_registered_converter(
            model_class,
            f"Shipyard{class_name}",
            _classifier_shapes if classifier else _regressor_shapes,
            _convert,
            overwrite=True,
            options={"zipmap": [True, False, "columns"], "nocl": [False, True]} if classifier else None,
        )


def _number_type(operator: Any) -> Any:
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    return DoubleTensorType if isinstance(operator.inputs[0].type, DoubleTensorType) else FloatTensorType


def _classifier_shapes(operator: Any) -> None:
    from skl2onnx.common.data_types import Int64TensorType, StringTensorType

    rows = operator.inputs[0].get_first_dimension()
    classes = np.asarray(operator.raw_operator.classes_)
    strings = classes.dtype.kind in "OUS" and not _class_indices(operator)
    operator.outputs[0].type = (StringTensorType if strings else Int64TensorType)(shape=[rows])
    operator.outputs[1].type = _number_type(operator)(shape=[rows, len(classes)])


def _class_indices(operator: Any) -> bool:
    """skl2onnx's `nocl` option: the label output holds class indices, not the classes."""
    return bool(operator.scope_inst.get_options(operator.raw_operator, {"nocl": False})["nocl"])


def _regressor_shapes(operator: Any) -> None:
    rows = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = _number_type(operator)(shape=[rows, 1])


def _convert(scope: Any, operator: Any, container: Any) -> None:
    """skl2onnx's converter for a tree model: `read_ensemble` written by `write_ensemble`."""
    from onnx import TensorProto
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    model = operator.raw_operator
    name = type(model).__name__
    if container.target_opset_any_domain("ai.onnx.ml") < ML_OPSET:
        raise UnsupportedExportError(
            f"{name} is written with the ai.onnx.ml opset {ML_OPSET} TreeEnsemble, but the conversion "
            f"targets ai.onnx.ml {container.target_opset_any_domain('ai.onnx.ml')}: pass "
            f'target_opset={{"": {ONNX_OPSET}, "ai.onnx.ml": {ML_OPSET}}}'
        )
    if hasattr(model, "classes_") and scope.get_options(model, {"zipmap": True})["zipmap"] is not False:
        # ZipMap, an ai.onnx.ml opset 1 node added after this one, would declare the domain at 1
        raise UnsupportedExportError(
            f"{name} gives its probabilities as a tensor, which skl2onnx's ZipMap cannot follow here: "
            f"pass options={{{name}: {{'zipmap': False}}}} (or keyed by id(model))"
        )
    ensemble = read_ensemble(model)
    if ensemble is None:
        raise UnsupportedExportError(f"{name} is not a tree model the edge export reads")
    if ensemble.categories:
        raise UnsupportedExportError(
            f"{name} reads category values itself (columns {sorted(ensemble.categories)}), which a "
            "pipeline's numeric matrix cannot carry: encode those columns as numbers first (e.g. "
            "OrdinalEncoder) and fit the model on the codes, or export the model alone"
        )
    if ensemble.classes is not None and _class_indices(operator):
        ensemble = replace(ensemble, classes=tuple(range(len(ensemble.classes))))
    x = operator.inputs[0].full_name
    kind = operator.inputs[0].type
    if not isinstance(kind, (DoubleTensorType, FloatTensorType)):
        cast = scope.get_unique_variable_name("as_float")
        container.add_node(
            "Cast", [x], [cast], to=TensorProto.FLOAT, name=scope.get_unique_operator_name("Cast")
        )
        x = cast
    dtype: Dtype = "float64" if isinstance(kind, DoubleTensorType) else "float32"
    outputs = [variable.full_name for variable in operator.outputs]
    write_ensemble(_ContainerSink(scope, container), ensemble, x, outputs, dtype=dtype)
