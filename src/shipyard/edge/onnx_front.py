"""The front of an exported graph: the contract's features, by name and with their dtypes, turned
into what the converted model reads.

A converter writes a graph over its own inputs: one double matrix `X` (a tree ensemble, a model
fitted on an array) or one column per feature, all numbers double (a `ColumnTransformer`). A
client sends the rows it sends to the server, so the exported graph takes one input per feature
(shape [None, 1]) in the contract's dtype and casts inside: integers stay int64, booleans bool,
text string. The front's nodes are put before the converted graph's, which then reads their
outputs instead of its own inputs.

A string tensor cannot hold a missing value: a client sends the empty string for one, and the
ONNX flavor does so for `None` (`MISSING_STRING`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.core.contract import Contract, Feature
from shipyard.core.dtypes import DType
from shipyard.errors import ExportError
from shipyard.flavors.onnx import MISSING_STRING

if TYPE_CHECKING:
    import onnx

__all__ = ["MISSING_STRING", "PublicInput", "attach", "cast", "public_inputs", "rename_input", "set_metadata"]


@dataclass(frozen=True)
class PublicInput:
    """One input of the exported graph: a contract feature and the tensor type it arrives as.

    Args:
        feature: the contract's feature.
        elem_type: the `onnx.TensorProto` element type (INT64, DOUBLE, FLOAT, BOOL, STRING).
        missing: a missing value can reach the model (the feature is nullable and passed on).
    """

    feature: Feature
    elem_type: int
    missing: bool

    @property
    def name(self) -> str:
        """The input's name: the feature's."""
        return self.feature.name

    def value_info(self) -> onnx.ValueInfoProto:
        """The graph input: this element type, shape [None, 1]."""
        from onnx import helper

        return helper.make_tensor_value_info(self.name, self.elem_type, [None, 1])


def public_inputs(contract: Contract, *, dtype: str) -> list[PublicInput]:
    """The exported graph's inputs, in contract order.

    An int64 or bool feature whose missing values reach the model arrives as a number (double, or
    float in float32 mode), NaN for missing: int64 and bool tensors have no NaN.

    Args:
        contract: the version's contract.
        dtype: 'float64' or 'float32': the precision of float features.
    """
    from onnx import TensorProto

    number = TensorProto.DOUBLE if dtype == "float64" else TensorProto.FLOAT
    inputs = []
    for feature in contract.features:
        missing = feature.nullable and feature.on_missing == "pass"
        if feature.dtype is DType.STRING:
            elem = TensorProto.STRING
        elif feature.dtype is DType.FLOAT or missing:
            elem = number
        elif feature.dtype is DType.INT:
            elem = TensorProto.INT64
        else:
            elem = TensorProto.BOOL
        inputs.append(PublicInput(feature, elem, missing))
    return inputs


def cast(source: str, target: str, to: int) -> onnx.NodeProto:
    """A `Cast` node from `source` to `target` of element type `to`."""
    from onnx import helper

    return helper.make_node("Cast", [source], [target], to=to, name=f"front_cast_{target}")


def rename_input(model: onnx.ModelProto, old: str, new: str) -> None:
    """Rename the graph input `old` to `new` wherever the graph reads it (in place)."""
    graph = model.graph
    for value in graph.input:
        if value.name == old:
            value.name = new
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
    for value in graph.output:
        if value.name == old:
            value.name = new


def attach(
    model: onnx.ModelProto,
    inputs: Sequence[PublicInput],
    nodes: Sequence[onnx.NodeProto],
    initializers: Sequence[onnx.TensorProto] = (),
) -> onnx.ModelProto:
    """`model` with `nodes` in front: its inputs become `inputs`, in that order.

    Every input the model had must be either one of `inputs` (same name) or an output of `nodes`.

    Raises:
        ExportError: an input of the converted model is fed by nothing (a bug of the front).
    """
    import onnx

    combined = onnx.ModelProto()
    combined.CopyFrom(model)
    graph = combined.graph
    public = {i.name for i in inputs}
    produced = {output for node in nodes for output in node.output}
    unfed = [value.name for value in graph.input if value.name not in public | produced]
    if unfed:
        raise ExportError(f"the converted graph reads {unfed}, which no feature of the contract feeds")
    converted = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes, *converted])
    graph.initializer.extend(initializers)
    del graph.input[:]
    graph.input.extend(i.value_info() for i in inputs)
    return combined


def set_metadata(model: onnx.ModelProto, facts: dict[str, Any]) -> None:
    """Write `facts` as the model's `metadata_props` (values JSON-encoded), in place."""
    import json

    del model.metadata_props[:]
    for key, value in facts.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value, default=str)
