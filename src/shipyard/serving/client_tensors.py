"""How `shipyard.Client` talks the OIP over gRPC: rows as one typed tensor per column, and the
answer's tensors read back (the predictions, the probabilities by class, every FP64 tensor)."""

from __future__ import annotations

import json
import math
from typing import Any

from shipyard.core.batch import Batch
from shipyard.errors import InputError

__all__ = ["infer_request", "read_tensors"]


def infer_request(model: str, rows: Any, request_id: str | None) -> Any:
    """A gRPC `ModelInferRequest` of `rows`, one typed tensor per column.

    Raises:
        InputError: the rows cannot be read, or a text column holds a missing value.
    """
    import numpy as np

    from shipyard.serving import oip_v2_pb2 as pb

    batch = Batch.coerce(rows)
    request = pb.ModelInferRequest(model_name=model, id=request_id or "")
    for name, values in batch.columns.items():
        # The tensor's type follows the values, never the metadata: the server's contract, not
        # the client, decides whether 2.5 is an acceptable age.
        kind = values.dtype.kind
        tensor = request.inputs.add(name=name, shape=[batch.n_rows])
        if kind == "b":
            tensor.datatype = "BOOL"
            tensor.contents.bool_contents.extend(values.tolist())
        elif kind in "iu":
            tensor.datatype = "INT64"
            tensor.contents.int64_contents.extend(values.tolist())
        elif kind == "f":
            tensor.datatype = "FP64"
            tensor.contents.fp64_contents.extend(values.tolist())
        elif all(isinstance(v, str) for v in values):
            tensor.datatype = "BYTES"
            tensor.contents.bytes_contents.extend(v.encode() for v in values)
        else:
            try:
                numbers = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
            except (TypeError, ValueError):
                if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
                    # A BYTES tensor has no null: str(None) would arrive as the category 'None'.
                    raise InputError(
                        f"column {name!r} holds text and a missing value (None or NaN); the OIP over gRPC "
                        "cannot send a missing text value: fill it, or connect over http(s):// "
                        "where a missing value is sent as null"
                    ) from None
                tensor.datatype = "BYTES"
                tensor.contents.bytes_contents.extend(str(v).encode() for v in values)
                continue
            tensor.datatype = "FP64"
            tensor.contents.fp64_contents.extend(numbers.tolist())
    return request


def read_tensors(response: Any) -> tuple[list[Any], list[dict[str, float]] | None, dict[str, Any]]:
    """The predictions, the probabilities by class, and every FP64 tensor by name, of a gRPC answer."""
    from shipyard.serving import oip

    outputs = {
        o.name: (o, raw) for o, raw in zip(response.outputs, response.raw_output_contents, strict=False)
    }
    label, raw = outputs["prediction"]
    predictions = oip.from_raw(raw, label.datatype, "prediction").tolist()
    probabilities = None
    if "probabilities" in outputs:
        tensor, raw = outputs["probabilities"]
        classes = [str(c) for c in json.loads(tensor.parameters["classes"].string_param)]
        matrix = oip.from_raw(raw, "FP64", "probabilities").reshape(-1, len(classes))
        probabilities = [dict(zip(classes, row, strict=True)) for row in matrix.tolist()]
    tensors = {
        name: oip.from_raw(raw, "FP64", name) for name, (o, raw) in outputs.items() if o.datatype == "FP64"
    }
    return predictions, probabilities, tensors
