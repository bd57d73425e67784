"""A registered version as one ONNX graph that takes the contract's features by name.

`to_onnx` chooses the converter: a tree model (scikit-learn's trees and boosting, XGBoost,
LightGBM) is read into the neutral `Ensemble` and written by `edge/tree_onnx.py`; anything else
of scikit-learn goes through skl2onnx, with our converters for what skl2onnx gets wrong in double
(`edge/imputer_onnx.py`, `edge/linear_onnx.py`, and `edge/tree_onnx.py`
inside pipelines). Either way the graph gets a front (`edge/onnx_front.py`) so that it reads the
rows a client sends to the server. What cannot be converted is refused by name, with what would
work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from shipyard.core.batch import Batch, Predictions
from shipyard.edge.onnx_front import (
    MISSING_STRING,
    PublicInput,
    attach,
    cast,
    public_inputs,
    rename_input,
    set_metadata,
)
from shipyard.errors import ExportError, UnsupportedExportError

if TYPE_CHECKING:
    import onnx

    from shipyard.core.contract import Contract
    from shipyard.edge.ensemble import Ensemble
    from shipyard.registry.loaded import LoadedModel

__all__ = [
    "DTYPES",
    "SUPPORTED_STEPS",
    "TARGET_OPSET",
    "onnx_scorer",
    "read_ensemble",
    "refuse_flavor",
    "to_onnx",
]

DTYPES = ("float64", "float32")
"""The precisions an export can compute in."""

TARGET_OPSET = {"": 21, "ai.onnx.ml": 5}
"""The opsets skl2onnx writes: ONNX Runtime 1.32 runs both (the tree ensemble of `ai.onnx.ml` 5
in double)."""

SUPPORTED_STEPS = (
    "ColumnTransformer",
    "Pipeline",
    "OneHotEncoder",
    "OrdinalEncoder",
    "StandardScaler",
    "MinMaxScaler",
    "SimpleImputer",
    "passthrough",
    "LogisticRegression",
    "LinearRegression",
    "Ridge",
    "Lasso",
    "ElasticNet",
    "SGDClassifier",
    "SGDRegressor",
    "SVC",
    "SVR",
    "MLPClassifier",
    "MLPRegressor",
)
"""The scikit-learn steps whose conversion is checked here (tree models aside, which convert
through the neutral ensemble); a step outside the list may still convert, and the parity gate
judges it."""

_DROPPED = ("drop", "passthrough")


def to_onnx(loaded: LoadedModel, *, dtype: str = "float64") -> onnx.ModelProto:
    """Convert a loaded version to an ONNX graph over the contract's features.

    The graph has one input per feature, shape [None, 1], named as the feature and typed as the
    contract says (`edge/onnx_front.py`); a classifier answers `label` and `probabilities` (rows
    x classes, in the contract's class order), a regressor `variable`. The source, the contract's
    features and the classes are written in its `metadata_props`.

    Args:
        loaded: the version, as `Registry.load` gives it.
        dtype: 'float64' (the default) or 'float32': the precision the graph computes in.

    Raises:
        UnsupportedExportError: the version's flavor or a step of its model has no converter;
            the message names it and what would work.
        ExportError: `dtype` is not one of `DTYPES`.
    """
    if dtype not in DTYPES:
        raise ExportError(f"dtype {dtype!r} is not one an export computes in; expected one of {list(DTYPES)}")
    version = loaded.version
    where = str(version.ref)
    refuse_flavor(version.flavor, where)
    inputs = public_inputs(loaded.contract, dtype=dtype)
    ensemble = read_ensemble(loaded)
    if ensemble is not None:
        graph = _tree_graph(ensemble, inputs, dtype=dtype, where=where)
    elif _module(loaded.model) == "sklearn":
        graph = _sklearn_graph(loaded.model, inputs, dtype=dtype, where=where)
    else:
        raise UnsupportedExportError(
            f"{where} is a {version.flavor} model ({type(loaded.model).__name__}) that is not a tree "
            "ensemble; ONNX export takes scikit-learn models and pipelines, and XGBoost and LightGBM "
            "tree models"
        )
    contract = loaded.contract
    graph.producer_name = "shipyard"
    set_metadata(
        graph,
        {
            "shipyard.source": where,
            "shipyard.task": contract.task,
            "shipyard.classes": None if contract.classes is None else list(contract.classes),
            "shipyard.dtype": dtype,
            "shipyard.missing_string": MISSING_STRING,
            "shipyard.features": [
                {"name": i.name, "dtype": i.feature.dtype.value, "input": _type_name(i.elem_type)}
                for i in inputs
            ],
        },
    )
    return graph


def read_ensemble(loaded: LoadedModel) -> Ensemble | None:
    """The version's model as a neutral tree ensemble (a bare Booster gets the contract's classes),
    or None when it is not a bare tree model."""
    from shipyard.edge.trees import read_ensemble as read

    contract = loaded.contract
    return read(loaded.model, classes=contract.classes if contract.task == "classification" else None)


def refuse_flavor(flavor: str, where: str) -> None:
    """Refuse a flavor that has no ONNX conversion: custom Python, or a graph that is ONNX already.

    Raises:
        UnsupportedExportError: the flavor is pyfunc, pickle or onnx; the message says what would work.
    """
    if flavor in ("pyfunc", "pickle"):
        raise UnsupportedExportError(
            f"{where} is a custom Python model ({flavor} flavor): its predict is arbitrary Python, which "
            "has no ONNX form. Register the scikit-learn, XGBoost or LightGBM model itself, or an ONNX "
            "graph your framework exports ('shipyard models register model.onnx'), and export that"
        )
    if flavor == "onnx":
        raise UnsupportedExportError(
            f"{where} is already an ONNX model; there is nothing to convert. Its graph is written by "
            f"'shipyard models download {where} --out DIR'"
        )


def _module(model: Any) -> str:
    return type(model).__module__.split(".", 1)[0]


def _type_name(elem_type: int) -> str:
    from onnx import TensorProto

    return str(TensorProto.DataType.Name(elem_type)).lower()


def _number(dtype: str) -> int:
    from onnx import TensorProto

    return int(TensorProto.DOUBLE if dtype == "float64" else TensorProto.FLOAT)


def onnx_scorer(graph: onnx.ModelProto, contract: Contract) -> Callable[[Batch], Predictions]:
    """Score batches with `graph` in ONNX Runtime, as the `onnx` flavor serves it once registered."""
    from shipyard.flavors.base import LoadOptions, SavedModel
    from shipyard.flavors.onnx import ONNXFlavor

    flavor = ONNXFlavor()
    saved = flavor.save(graph)
    classes = None if contract.task == "regression" or contract.classes is None else list(contract.classes)
    meta = dict(saved.meta) | {"task": contract.task, "classes": classes}
    predictor = flavor.load(SavedModel(saved.flavor, saved.files, meta), LoadOptions())
    return predictor.predict


# ------------------------------------------------------------------ tree models


def _tree_graph(ensemble: Ensemble, inputs: list[PublicInput], *, dtype: str, where: str) -> onnx.ModelProto:
    """The ensemble's graph (input `X`) behind a front that casts each feature, or encodes a
    category the model reads itself as its code (NaN when missing or unseen), into `X`."""
    from onnx import TensorProto, helper

    from shipyard.edge.tree_onnx import ensemble_graph

    if ensemble.n_features != len(inputs):
        raise ExportError(
            f"{where}: the tree model reads {ensemble.n_features} columns but the contract has "
            f"{len(inputs)} features; the export needs the model to take the contract's features in order"
        )
    graph = ensemble_graph(ensemble, dtype="float32" if dtype == "float32" else "float64")
    rename_input(graph, "X", "shipyard_X")
    number = _number(dtype)
    nodes, columns = [], []
    for column, public in enumerate(inputs):
        target = f"{public.name}__column"
        categories = ensemble.categories.get(column)
        if categories is not None:
            codes = f"{public.name}__codes"
            if public.elem_type == TensorProto.STRING:
                keys: dict[str, Any] = {"keys_strings": [str(c) for c in categories]}
            elif public.elem_type == TensorProto.INT64:
                keys = {"keys_int64s": [int(c) for c in categories]}
            else:
                raise UnsupportedExportError(
                    f"{where}: feature {public.name!r} ({public.feature.dtype.value}, may be missing) holds "
                    "categories the tree model encodes itself; the export encodes string and integer "
                    "categories only. Make the feature a string, or not nullable"
                )
            nodes.append(
                helper.make_node(
                    "LabelEncoder",
                    [public.name],
                    [codes],
                    domain="ai.onnx.ml",
                    name=f"front_codes_{public.name}",
                    values_floats=[float(code) for code in range(len(categories))],
                    default_float=float("nan"),
                    **keys,
                )
            )
            nodes.append(cast(codes, target, number))
        elif public.elem_type == TensorProto.STRING:
            raise UnsupportedExportError(
                f"{where}: feature {public.name!r} is text, but the tree model ({ensemble.model}) reads "
                "numbers only; encode it in a pipeline step (OrdinalEncoder) or as a pandas category"
            )
        elif public.elem_type == number:  # already what the trees read: no copy
            target = public.name
        else:
            nodes.append(cast(public.name, target, number))
        columns.append(target)
    nodes.append(helper.make_node("Concat", columns, ["shipyard_X"], axis=1, name="front_concat"))
    return attach(graph, inputs, nodes)


# ------------------------------------------------------------------ scikit-learn


@contextmanager
def _our_converters() -> Iterator[None]:
    """skl2onnx with our converters (numeric imputers, trees, linear models) for one conversion.

    skl2onnx keeps its converters in process-wide tables; ours replace its own for the
    conversion only, then the tables are put back, so code in the same process that calls
    skl2onnx itself gets skl2onnx's converters and options (a ZipMap, say) as before.
    """
    from skl2onnx import _parse, _supported_operators
    from skl2onnx.common import _registration

    from shipyard.edge import imputer_onnx, linear_onnx, tree_onnx

    tables: list[dict[Any, Any]] = [
        _supported_operators.sklearn_operator_name_map,
        _registration._converter_pool,
        _registration._shape_calculator_pool,
        _parse.sklearn_parsers_map,
    ]
    saved = [dict(table) for table in tables]
    try:
        imputer_onnx.register_converters()
        tree_onnx.register_converters()
        linear_onnx.register_converters()
        yield
    finally:
        for table, before in zip(tables, saved, strict=True):
            table.clear()
            table.update(before)


def _sklearn_graph(model: Any, inputs: list[PublicInput], *, dtype: str, where: str) -> onnx.ModelProto:
    """skl2onnx's graph of `model` behind a front: named inputs when the model selects columns by
    name (a `ColumnTransformer` fitted on a DataFrame), else one matrix of the features in order."""
    from onnx import TensorProto, helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType
    from sklearn.base import is_classifier

    tensor = DoubleTensorType if dtype == "float64" else FloatTensorType
    number = _number(dtype)
    named = _selects_by_name(model)
    if named:
        initial = [
            (i.name, StringTensorType([None, 1]) if i.elem_type == TensorProto.STRING else tensor([None, 1]))
            for i in inputs
        ]
    else:
        text = [i.name for i in inputs if i.elem_type == TensorProto.STRING]
        if text:
            raise UnsupportedExportError(
                f"{where}: features {text} are text, but {type(model).__name__} reads one numeric "
                "matrix; encode them in the pipeline (a ColumnTransformer with a OneHotEncoder) and "
                "register that"
            )
        initial = [("shipyard_X", tensor([None, len(inputs)]))]
    # A classifier without probabilities (a hinge loss, LinearSVC) has no ZipMap to turn off.
    scores = is_classifier(model) and hasattr(model, "predict_proba")
    options = {id(model): {"zipmap": False}} if scores else None
    try:
        with _our_converters():
            converted = convert_sklearn(
                model, initial_types=initial, options=options, target_opset=TARGET_OPSET
            )
        graph = _as_computed(converted)
        _check_runs(graph)
    except Exception as exc:
        raise _unsupported(model, exc, where) from None
    nodes = []
    if named:
        for public in inputs:
            if public.elem_type == TensorProto.STRING:
                if not public.missing:
                    continue
                # skl2onnx writes a `None` category as the text 'None'; a missing value arrives as ''.
                inner = f"{public.name}__model"
                rename_input(graph, public.name, inner)
                nodes += _missing_text(public.name, inner)
            elif public.elem_type != number:
                inner = f"{public.name}__model"
                rename_input(graph, public.name, inner)
                nodes.append(cast(public.name, inner, number))
    else:
        columns = [f"{i.name}__column" for i in inputs]
        nodes = [cast(i.name, column, number) for i, column in zip(inputs, columns, strict=True)]
        nodes.append(helper.make_node("Concat", columns, ["shipyard_X"], axis=1, name="front_concat"))
    return attach(graph, inputs, nodes)


def _missing_text(name: str, inner: str) -> list[onnx.NodeProto]:
    """Nodes that turn the empty string (missing) into 'None', as skl2onnx names that category."""
    from onnx import TensorProto, helper

    empty, none, is_empty = f"{name}__empty", f"{name}__none", f"{name}__is_missing"
    texts: dict[str, Any] = {empty: [b""], none: [b"None"]}  # onnx's stubs know numbers only
    return [
        helper.make_node("Constant", [], [key], value=helper.make_tensor(key, TensorProto.STRING, [], values))
        for key, values in texts.items()
    ] + [
        helper.make_node("Equal", [name, empty], [is_empty], name=f"front_missing_{name}"),
        helper.make_node("Where", [is_empty, none, name], [inner], name=f"front_fill_{name}"),
    ]


def _selects_by_name(model: Any) -> bool:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    first = model.steps[0][1] if isinstance(model, Pipeline) else model
    return isinstance(first, ColumnTransformer) and hasattr(model, "feature_names_in_")


def _as_computed(graph: onnx.ModelProto) -> onnx.ModelProto:
    """The graph with its outputs declared as the types it computes.

    skl2onnx declares a `ColumnTransformer`'s output type from its first block: with an encoder
    first (float by skl2onnx's shape rules) a double pipeline declares float probabilities while
    computing double ones, and ONNX Runtime refuses the graph ("Type (tensor(float)) of output
    arg (probabilities)", skl2onnx 1.20). Shape inference gives the computed types.
    """
    import onnx

    blank = onnx.ModelProto()
    blank.CopyFrom(graph)
    for output in blank.graph.output:  # undeclared, so that inference writes what is computed
        output.type.tensor_type.elem_type = onnx.TensorProto.UNDEFINED
    inferred = onnx.shape_inference.infer_shapes(blank)
    computed = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.output}
    for output in graph.graph.output:
        elem = computed.get(output.name, onnx.TensorProto.UNDEFINED)
        if elem != onnx.TensorProto.UNDEFINED and output.type.HasField("tensor_type"):
            output.type.tensor_type.elem_type = elem
    return graph


def _check_runs(graph: onnx.ModelProto) -> None:
    """ONNX Runtime opens the graph: skl2onnx writes some graphs it cannot run in double."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    ort.InferenceSession(graph.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])


def _steps(model: Any, name: str = "model") -> Iterator[tuple[str, Any]]:
    """Every step of a pipeline, nested ones included, with its name; the model itself first."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    yield name, model
    if isinstance(model, Pipeline):
        for step_name, step in model.steps:
            yield from _steps(step, step_name)
    elif isinstance(model, ColumnTransformer):
        for step_name, step, _columns in getattr(model, "transformers_", model.transformers):
            yield from _steps(step, step_name)


def _identity(step: Any) -> bool:
    """A `FunctionTransformer` without a function: what a `ColumnTransformer` makes of
    `remainder='passthrough'`."""
    return type(step).__name__ == "FunctionTransformer" and getattr(step, "func", 0) is None


def _unsupported(model: Any, exc: Exception, where: str) -> UnsupportedExportError:
    """The refusal of a model that did not convert (or whose graph does not run): the first step
    not known to convert, by name and class, or the converter's own words."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    supported = ", ".join(SUPPORTED_STEPS)
    for name, step in _steps(model):
        if (isinstance(step, str) and step in _DROPPED) or _identity(step):
            continue
        kind = type(step).__name__
        if kind not in SUPPORTED_STEPS:
            what = f"{where} ({kind})" if name == "model" else f"step {name!r} ({kind}) of the pipeline"
            return UnsupportedExportError(
                f"{what} has no ONNX converter that runs in ONNX Runtime here ({reason}); supported "
                f"steps: {supported}, and tree models. Replace the step with a supported one, or "
                "convert the model yourself and register the .onnx file"
            )
    return UnsupportedExportError(
        f"{where} ({type(model).__name__}) could not be converted to ONNX: {reason}; supported steps: "
        f"{supported}, and tree models"
    )
