"""The Open Inference Protocol v2's answers: output tensors over REST (JSON or binary) and gRPC,
and the model metadata; `oip.py` reads the requests."""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from shipyard.core.batch import Array, Predictions
from shipyard.core.contract import Contract
from shipyard.core.echo import echo
from shipyard.errors import InputError
from shipyard.serving import oip_v2_pb2 as pb
from shipyard.serving.oip import DATATYPES, feature_datatype

__all__ = ["OutputTensor", "encode_grpc", "encode_rest", "model_metadata", "to_raw"]


def model_metadata(contract: Contract, name: str, version: int, flavor: str) -> dict[str, Any]:
    """The OIP model metadata: one input per feature, the outputs, the served version."""
    outputs = [{"name": "prediction", "datatype": _label_datatype(contract), "shape": [-1]}]
    if contract.classes is not None:
        outputs.append({"name": "probabilities", "datatype": "FP64", "shape": [-1, len(contract.classes)]})
    return {
        "name": name,
        "versions": [str(version)],
        "platform": f"shipyard-{flavor}",
        "inputs": [
            {"name": f.name, "datatype": feature_datatype(f.dtype), "shape": [-1]} for f in contract.features
        ],
        "outputs": outputs,
    }


def _label_datatype(contract: Contract) -> str:
    return "FP64" if contract.classes is None else _classes_datatype(contract.classes)


def _classes_datatype(classes: Sequence[Any]) -> str:
    """The datatype of labels drawn from `classes`: the metadata's, and the answers' alike."""
    kinds = {type(c) for c in classes}
    if kinds <= {bool}:
        return "BOOL"
    if kinds <= {int}:
        return "INT64"
    if kinds <= {int, float}:
        return "FP64"
    return "BYTES"


OutputTensor = tuple[str, str, list[int], Array, dict[str, str]]
"""One output tensor: name, datatype, shape, values and its parameters."""


def _outputs(
    predictions: Predictions, wanted: Sequence[str], extra: Sequence[OutputTensor] = ()
) -> list[OutputTensor]:
    values = predictions.values
    n = len(values)
    outputs: list[OutputTensor] = [("prediction", *_labels(values, predictions.classes), {})]
    if predictions.probabilities is not None and predictions.classes is not None:
        classes = json.dumps(
            [c if isinstance(c, str | int | float | bool) else str(c) for c in predictions.classes]
        )
        outputs.append(
            (
                "probabilities",
                "FP64",
                [n, len(predictions.classes)],
                predictions.probabilities,
                {"classes": classes},
            )
        )
    outputs += extra
    if wanted:
        known = {o[0] for o in outputs}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise InputError(f"outputs {echo(unknown)} do not exist; this model returns {sorted(known)}")
        outputs = [o for o in outputs if o[0] in wanted]
    return outputs


def _labels(values: Array, classes: Sequence[Any] | None) -> tuple[str, list[int], Array]:
    """The label tensor's datatype, shape and values.

    Labels picked from the classes as Python objects (the ONNX flavor's, say) take the classes'
    datatype, as the model metadata declares it: integer classes are INT64, not their text.
    """
    kind = values.dtype.kind
    if kind == "O" and classes is not None:
        datatype = _classes_datatype(classes)
    else:
        datatype = {"b": "BOOL", "i": "INT64", "u": "INT64", "f": "FP64"}.get(kind, "BYTES")
    if datatype == "BYTES":
        return datatype, [len(values)], np.asarray([str(v) for v in values], dtype=object)
    return datatype, [len(values)], values.astype(DATATYPES[datatype])


def encode_rest(
    predictions: Predictions,
    *,
    model: str,
    version: int,
    request_id: str,
    wanted: Sequence[str],
    binary: bool,
    extra: Sequence[OutputTensor] = (),
    parameters: dict[str, str] | None = None,
) -> tuple[bytes, int | None]:
    """The REST answer body and, with binary outputs, the JSON header's length.

    Args:
        extra: output tensors beyond the predictions (an explanation's).
        parameters: the response's own parameters.

    Raises:
        InputError: an output was asked for that the model does not return.
    """
    import orjson

    tensors = []
    blobs = []
    for name, datatype, shape, values, params in _outputs(predictions, wanted, extra):
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
        if binary:
            blob = to_raw(values, datatype)
            tensor["parameters"] = {**params, "binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            if params:
                tensor["parameters"] = params
            tensor["data"] = values.reshape(-1).tolist()
        tensors.append(tensor)
    answer: dict[str, Any] = {"model_name": model, "model_version": str(version), "id": request_id}
    if parameters:
        answer["parameters"] = parameters
    answer["outputs"] = tensors
    head = orjson.dumps(answer)
    if not binary:
        return head, None
    return head + b"".join(blobs), len(head)


def encode_grpc(
    predictions: Predictions,
    *,
    model: str,
    version: int,
    request_id: str,
    wanted: Sequence[str],
    extra: Sequence[OutputTensor] = (),
    parameters: dict[str, str] | None = None,
) -> pb.ModelInferResponse:
    """The gRPC answer, tensors in `raw_output_contents` as Triton's server sends them.

    Args:
        extra: output tensors beyond the predictions (an explanation's).
        parameters: the response's own parameters (string parameters).

    Raises:
        InputError: an output was asked for that the model does not return.
    """
    response = pb.ModelInferResponse(model_name=model, model_version=str(version), id=request_id)
    for key, text in (parameters or {}).items():
        response.parameters[key].string_param = text
    for name, datatype, shape, values, params in _outputs(predictions, wanted, extra):
        tensor = response.outputs.add(name=name, datatype=datatype, shape=shape)
        for key, value in params.items():
            tensor.parameters[key].string_param = value
        response.raw_output_contents.append(to_raw(values, datatype))
    return response


def to_raw(values: Array, datatype: str) -> bytes:
    """Values as the raw little-endian bytes of `datatype` (BYTES: each length-prefixed)."""
    if datatype == "BYTES":
        parts = []
        for v in values.reshape(-1):
            data = v if isinstance(v, bytes) else str(v).encode("utf-8")
            parts.append(struct.pack("<I", len(data)) + data)
        return b"".join(parts)
    dtype = np.dtype(DATATYPES[datatype]).newbyteorder("<")
    return np.ascontiguousarray(values, dtype=dtype).tobytes()
