"""The Open Inference Protocol v2: tensors in and out, over REST (JSON) and gRPC (protobuf).

Inputs are either one named tensor per feature (shape `[n]` or `[n, 1]`) or one 2-D tensor of
shape `[n, features]` whose columns follow the contract's order. Outputs are `prediction` (one
label or value per row) and, for classifiers that score, `probabilities` (`[n, classes]`, FP64)
whose `classes` parameter lists the class names in column order. REST bodies may use the binary
tensor extension (`Inference-Header-Content-Length`), which Triton's client uses by default.

This module reads requests and holds the datatypes; `oip_answers.py` writes the answers.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shipyard.core.batch import Array, MatrixColumns
from shipyard.core.contract import Contract, Violation
from shipyard.core.dtypes import DType
from shipyard.core.echo import echo
from shipyard.errors import ContractViolationError, InputError
from shipyard.serving import oip_v2_pb2 as pb
from shipyard.serving.asgi import JSON_TYPES, Receive, Scope, check_type, header, read_body
from shipyard.serving.payloads import json_kind, parse_json

__all__ = [
    "DATATYPES",
    "OipRequest",
    "Tensor",
    "decode_grpc",
    "decode_rest",
    "feature_datatype",
    "from_raw",
]

# OIP datatype -> numpy dtype (BYTES travels as Python str after decoding).
DATATYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": object,
}
_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
# The integer datatypes and what each holds: a value outside is refused, never wrapped.
_INTEGERS = {
    name: (int(np.iinfo(DATATYPES[name]).min), int(np.iinfo(DATATYPES[name]).max))
    for name in ("UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64")
}
_MAX_VALUES = 2**63 - 1  # a shape holding more values than an int64 counts is refused by name
_MAX_ID = 128  # characters of a request id (it is echoed in the X-Request-Id header)
_MAX_NAME = 256  # characters of a tensor name
_SHOWN_VIOLATIONS = 10  # lines of a message; the error carries every violation
_FEATURE_DATATYPE = {DType.INT: "INT64", DType.FLOAT: "FP64", DType.BOOL: "BOOL", DType.STRING: "BYTES"}


@dataclass(frozen=True, slots=True)
class Tensor:
    """One decoded tensor: name, datatype, shape and values as a flat numpy array."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    values: Array


@dataclass(frozen=True, slots=True)
class OipRequest:
    """A decoded inference request.

    Args:
        id: the caller's request id ('' when none).
        columns: feature name to values.
        n_rows: the number of rows.
        outputs: the output names asked for (empty: all).
        binary_outputs: whether the REST answer should use the binary tensor extension.
        parameters: the request's own parameters, as JSON values (an explanation's `method`...).
    """

    id: str
    columns: dict[str, Array]
    n_rows: int
    outputs: tuple[str, ...]
    binary_outputs: bool
    parameters: Mapping[str, Any] = field(default_factory=dict)


def feature_datatype(dtype: DType) -> str:
    """The OIP datatype a feature of `dtype` travels as."""
    return _FEATURE_DATATYPE[dtype]


# -- decoding -----------------------------------------------------------------------------------
async def read_rest(scope: Scope, receive: Receive, contract: Contract, *, max_body_bytes: int) -> OipRequest:
    """An OIP REST infer request off the wire (infer and explain alike): its media type checked,
    its body read within the limit, then decoded by `decode_rest`.

    Raises:
        UnsupportedMediaError: a JSON body's media type is not JSON's.
        RequestTooLargeError: the body is larger than `max_body_bytes`.
        InputError: the body or the Inference-Header-Content-Length header is malformed.
    """
    header_length = header(scope, b"inference-header-content-length")
    if header_length is None:
        check_type(scope, (*JSON_TYPES, b"application/octet-stream"))
    body = await read_body(scope, receive, max_body_bytes)
    try:
        length = None if header_length is None else int(header_length)
    except ValueError:
        raise InputError(f"Inference-Header-Content-Length is {header_length!r}; expected a number") from None
    return decode_rest(body, length, contract)


def decode_rest(body: bytes, header_length: int | None, contract: Contract) -> OipRequest:
    """Read a REST inference body (JSON, or JSON header then binary tensors).

    Raises:
        InputError: malformed JSON, tensors or binary sizes; the message names the tensor.
    """
    head = body if header_length is None else body[:header_length]
    if header_length is not None and not 0 <= header_length <= len(body):
        raise InputError(
            f"Inference-Header-Content-Length is {header_length} but the body has {len(body)} bytes"
        )
    request = parse_json(head)
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        got = (
            f"its 'inputs' is a JSON {json_kind(request.get('inputs'))}"
            if isinstance(request, dict)
            else f"it is a JSON {json_kind(request)}"
        )
        raise InputError(
            f'the inference request has no \'inputs\' list ({got}); expected {{"inputs": [{{"name": ..., '
            '"shape": [...], "datatype": ..., "data": [...]}]}'
        )
    given = request.get("parameters")
    if given is not None and not isinstance(given, dict):
        raise InputError(
            f"the inference request's 'parameters' is a JSON {json_kind(given)}; expected an object "
            "of name to value"
        )
    request_id = _request_id(request.get("id"))
    binary = memoryview(body)[header_length:] if header_length is not None else memoryview(b"")
    offset = 0
    tensors = []
    violations: list[Violation] = []
    for i, spec in enumerate(request["inputs"]):
        if not isinstance(spec, dict):
            raise InputError(f"input {i} is not an object; expected name, shape, datatype and data")
        name, datatype, shape = _header(spec.get("name"), spec.get("datatype"), spec.get("shape"), i)
        params = spec.get("parameters") or {}
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise InputError(
                    f"input {name!r} says binary_data_size={echo(size)}, but only {len(binary) - offset} "
                    "bytes of binary data remain"
                )
            values = from_raw(bytes(binary[offset : offset + size]), datatype, name)
            offset += size
        else:
            if "data" not in spec:
                raise InputError(
                    f"input {name!r} has no 'data'; expected a list of {math.prod(shape)} values"
                )
            values = _from_json(spec["data"], datatype, name, shape)
        tensors.append(_narrowed(_checked(Tensor(name, datatype, shape, values)), contract, violations))
    _raise_if(violations)
    outputs, binary_outputs = [], bool(_param(request.get("parameters"), "binary_data_output"))
    for spec in request.get("outputs") or []:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise InputError(f"an entry of 'outputs' is {echo(spec)}; expected an object with a 'name'")
        outputs.append(spec["name"])
        binary_outputs = binary_outputs or bool(_param(spec.get("parameters"), "binary_data"))
    columns, n = _to_columns(tensors, contract)
    parameters = dict(given) if isinstance(given, dict) else {}
    return OipRequest(request_id, columns, n, tuple(outputs), binary_outputs, parameters)


def decode_grpc(request: pb.ModelInferRequest, contract: Contract) -> OipRequest:
    """Read a gRPC ModelInferRequest (typed contents or `raw_input_contents`).

    Raises:
        InputError: malformed tensors; the message names the tensor.
    """
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InputError(
            f"the request has {len(request.inputs)} inputs but {len(raw)} raw_input_contents; "
            "expected one raw buffer per input"
        )
    request_id = _request_id(request.id)
    tensors = []
    violations: list[Violation] = []
    for i, spec in enumerate(request.inputs):
        name, datatype, shape = _header(spec.name, spec.datatype, list(spec.shape), i)
        if raw:
            values = from_raw(raw[i], datatype, name)
        else:
            field = _CONTENTS_FIELD.get(datatype)
            if field is None:
                raise InputError(
                    f"input {name!r} is {datatype}, which has no typed contents; send raw_input_contents"
                )
            items = getattr(spec.contents, field)
            if datatype == "BYTES":
                values = _strings(list(items), name)
            elif datatype in _INTEGERS:
                # INT8 and INT16 travel in int32 fields (UINT8, UINT16 in uint32): read them
                # wide, so that `_narrowed` refuses 1000 as INT8 instead of wrapping it to -24.
                values = np.asarray(items, dtype=np.uint64 if datatype[0] == "U" else np.int64)
            else:
                values = np.asarray(items, dtype=DATATYPES[datatype])
        tensors.append(_narrowed(_checked(Tensor(name, datatype, shape, values)), contract, violations))
    _raise_if(violations)
    columns, n = _to_columns(tensors, contract)
    parameters = {key: _parameter(value) for key, value in request.parameters.items()}
    return OipRequest(request_id, columns, n, tuple(o.name for o in request.outputs), False, parameters)


def _parameter(value: pb.InferParameter) -> Any:
    """A gRPC parameter's value as JSON would have it (None when it holds none)."""
    kind = value.WhichOneof("parameter_choice")
    return None if kind is None else getattr(value, kind)


def _request_id(value: Any) -> str:
    """The caller's request id ('' for none): printable text, since answers echo it in a header.

    Raises:
        InputError: the id holds a control character (CR, LF, ...) or is too long.
    """
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if len(text) > _MAX_ID or not text.isprintable():
        raise InputError(
            f"the request's id is {echo(text)}; expected printable text of at most {_MAX_ID} characters "
            "(no control characters such as CR or LF), or no id to have one made"
        )
    return text


def _header(name: Any, datatype: Any, shape: Any, i: int) -> tuple[str, str, tuple[int, ...]]:
    if not isinstance(name, str) or not name or len(name) > _MAX_NAME:
        raise InputError(
            f"input {i} has name {echo(name)}; expected a non-empty string of at most {_MAX_NAME} characters"
        )
    if datatype not in DATATYPES:
        raise InputError(f"input {name!r} has datatype {echo(datatype)}; expected one of {sorted(DATATYPES)}")
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 2
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise InputError(f"input {name!r} has shape {echo(shape)}; expected [rows] or [rows, columns]")
    if math.prod(shape) > _MAX_VALUES:
        raise InputError(
            f"input {name!r} has shape {shape}, {math.prod(shape)} values: more than any request holds; "
            "expected the shape of the values sent"
        )
    return name, str(datatype), tuple(shape)


def _from_json(data: Any, datatype: str, name: str, shape: tuple[int, ...]) -> Array:
    flat = _flattened(data if isinstance(data, list) else [data], name, shape)
    if datatype == "BYTES":
        return _strings(flat, name)
    wrong = _not_bool if datatype == "BOOL" else _not_number
    bad = next((v for v in flat if wrong(v)), _NOTHING)
    if bad is not _NOTHING:
        held = "null" if bad is None else f"a {type(bad).__name__}"  # never the value: it may be pii
        expected = "true or false only" if datatype == "BOOL" else "numbers only"
        raise InputError(f"input {name!r} is {datatype} but holds {held}; expected {expected}")
    try:
        if datatype in _INTEGERS:
            # As they came (int64, uint64, float64 or, for mixed big ints, object): `_narrowed`
            # then refuses 1.5 or 1e308 as INT64 instead of casting it to 1 or to -2**63.
            return np.asarray(flat)
        return np.asarray(flat, dtype=DATATYPES[datatype])
    except (ValueError, TypeError, OverflowError) as exc:
        raise InputError(f"input {name!r} cannot be read as {datatype}: {exc}") from None


_NOTHING = object()  # no bad value found (None is a bad value of its own)


# JSON's true and false are no numbers, and a BOOL holds nothing but them (or 0 and 1).
def _not_bool(value: Any) -> bool:
    return not (isinstance(value, bool) or (type(value) is int and value in (0, 1)))


def _not_number(value: Any) -> bool:
    return isinstance(value, (str, list, dict, bool)) or value is None


def _flattened(data: list[Any], name: str, shape: tuple[int, ...]) -> list[Any]:
    """`data` as one flat list: sent flat, or (for a 2-D shape) as rows of `shape[1]` values.

    Raises:
        InputError: the data is nested otherwise than its shape says.
    """
    if not any(isinstance(v, list) for v in data):
        return data
    if len(shape) == 2 and all(
        isinstance(row, list) and len(row) == shape[1] and not any(isinstance(v, list) for v in row)
        for row in data
    ):
        return [v for row in data for v in row]
    rows = f" or {shape[0]} lists of {shape[1]} values" if len(shape) == 2 else ""
    raise InputError(
        f"input {name!r} has shape {list(shape)} but its data is nested otherwise; expected a flat "
        f"list of {math.prod(shape)} values{rows}"
    )


def from_raw(raw: bytes, datatype: str, name: str) -> Array:
    """A flat array from one tensor's raw bytes (little-endian; BYTES as length-prefixed items).

    Raises:
        InputError: the bytes do not fit the datatype.
    """
    if datatype == "BYTES":
        out, pos = [], 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise InputError(f"input {name!r} has a truncated BYTES element at byte {pos}")
            (length,) = struct.unpack_from("<I", raw, pos)
            pos += 4
            if pos + length > len(raw):
                raise InputError(f"input {name!r} has a BYTES element of {length} bytes past the end")
            out.append(raw[pos : pos + length])
            pos += length
        return _strings(out, name)
    dtype = np.dtype(DATATYPES[datatype]).newbyteorder("<")
    if len(raw) % dtype.itemsize:
        raise InputError(
            f"input {name!r} has {len(raw)} raw bytes, not a multiple of {dtype.itemsize} ({datatype})"
        )
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=False)


def _strings(items: Sequence[Any], name: str) -> Array:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        if isinstance(item, bytes):
            try:
                out[i] = item.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"element {i} of input {name!r} is not UTF-8 text") from None
        else:
            out[i] = item
    return out


def _checked(tensor: Tensor) -> Tensor:
    expected = math.prod(tensor.shape)
    if tensor.values.size != expected:
        raise InputError(
            f"input {tensor.name!r} has shape {list(tensor.shape)} ({expected} values) but "
            f"{tensor.values.size} values arrived"
        )
    return tensor


def _narrowed(tensor: Tensor, contract: Contract, violations: list[Violation]) -> Tensor:
    """The tensor with its values in its datatype; values the datatype cannot hold (1000 as INT8,
    1.5 or 1e308 as INT64) are added to `violations`, by row and feature, instead of cast."""
    bounds = _INTEGERS.get(tensor.datatype)
    values = tensor.values
    target = np.dtype(DATATYPES[tensor.datatype])
    if bounds is None or values.dtype == target:
        return tensor
    lo, hi = bounds
    kind = values.dtype.kind
    if kind == "b":
        return Tensor(tensor.name, tensor.datatype, tensor.shape, values.astype(target))
    if kind in "iu":
        bad = (values < lo) | (values > hi)
        whole = np.ones(len(values), dtype=bool)
    elif kind == "f":
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(values) & (values == np.floor(values))
            # A float of exactly -2**63 may be -2**63 - 1 rounded (JSON parsers make floats of
            # integers past int64): it is refused, as the contract refuses it.
            low = (values <= float(lo)) if lo <= -(2**63) else (values < float(lo))
            bad = ~whole | low | (values >= float(hi) + 1.0)
    else:  # object: integers past uint64 mixed with others; compare them exactly
        whole = np.array([isinstance(v, int | np.integer) or float(v).is_integer() for v in values])
        bad = np.array([not w or not lo <= int(v) <= hi for v, w in zip(values, whole, strict=True)])
    if not bad.any():
        return Tensor(tensor.name, tensor.datatype, tensor.shape, values.astype(target))
    names = contract.names
    columns = tensor.shape[1] if len(tensor.shape) == 2 else 1
    matrix = columns > 1 or (len(tensor.shape) == 2 and tensor.name not in names)
    for i in np.flatnonzero(bad):
        row, j = divmod(int(i), columns)
        feature = names[j] if matrix and j < len(names) else tensor.name
        value = values[i].item() if isinstance(values[i], np.generic) else values[i]
        why = (
            f"outside the range of the input's datatype {tensor.datatype} [{lo}, {hi}]"
            if whole[i]
            else f"not an integer, and input {tensor.name!r} is {tensor.datatype}"
        )
        violations.append(Violation(row, feature, value, why))
    return tensor


def _raise_if(violations: list[Violation]) -> None:
    """Raise the values that do not fit their tensors' datatypes, every tensor's together.

    Raises:
        ContractViolationError: with the violations attached.
    """
    if violations:
        lines = [f"{len(violations)} value(s) do not fit their input's datatype:"]
        lines += [f"  {v}" for v in violations[:_SHOWN_VIOLATIONS]]
        if len(violations) > _SHOWN_VIOLATIONS:
            lines.append(f"  ... and {len(violations) - _SHOWN_VIOLATIONS} more")
        lines.append("fix the values, or send the input with a datatype that holds them (INT64, FP64)")
        raise ContractViolationError("\n".join(lines), violations)


def _to_columns(tensors: Sequence[Tensor], contract: Contract) -> tuple[dict[str, Array], int]:
    names = contract.names
    if len(tensors) == 1 and len(tensors[0].shape) == 2 and tensors[0].name not in names:
        t = tensors[0]
        n, k = t.shape
        if k != len(names):
            raise InputError(
                f"input {t.name!r} has {k} columns; a single 2-D input needs one column per feature "
                f"({len(names)}: {list(names)}), or send one input per feature"
            )
        matrix = t.values.reshape(n, k)
        if matrix.dtype == np.float64 and matrix.flags.c_contiguous:
            return MatrixColumns(names, matrix), n  # merged as it is (`merging.merge`)
        return {name: matrix[:, j] for j, name in enumerate(names)}, n
    columns: dict[str, Array] = {}
    rows: set[int] = set()
    for t in tensors:
        if len(t.shape) == 2 and t.shape[1] != 1:
            raise InputError(
                f"input {t.name!r} has shape {list(t.shape)}; a per-feature input must be [rows] or "
                f"[rows, 1] (or send a single [rows, {len(names)}] tensor)"
            )
        columns[t.name] = t.values
        rows.add(t.shape[0])
    if len(rows) > 1:
        raise InputError(f"the inputs have different row counts {sorted(rows)}; expected one row count")
    return columns, rows.pop() if rows else 0


def _param(params: Any, key: str) -> Any:
    return params.get(key) if isinstance(params, Mapping) else None
