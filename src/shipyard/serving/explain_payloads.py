"""Explain requests and answers on the wire: our JSON, KServe v1's, and the OIP's typed tensors.

- Ours (`POST /v1/models/{name}/explain`): a predict body (`instances`, `inputs`,
  `dataframe_split` or `dataframe_records`) with optional `method`, `output` and `top`; the answer
  is predict's (`request_id`, `model`, `version`, `predictions`, `probabilities`) plus
  `explanation` (`Explanation.to_dict`).
- KServe v1 (`POST /v1/models/{name}:explain`): `{"instances": [...]}` (and the same options);
  the answer has one entry of `explanations` per row, plus the metadata.
- The OIP (`/v2/models/{name}/explain`, gRPC `ModelInfer` with parameter `explain: true`): the
  infer request, options as request parameters; the answer is infer's tensors plus
  `attributions` (FP64, `[rows, features, outputs]`), `base_values` and `output_values` (FP64,
  `[rows, outputs]`) and `additivity_error` (FP64, `[rows]`), and the response parameters
  `method`, `space`, `exact`, `features` and `outputs` (the last two JSON lists, in the order of
  the tensors' axes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from shipyard.core.contract import Contract
from shipyard.core.echo import echo
from shipyard.errors import InputError
from shipyard.serving.explaining import ASK_KEYS, ExplainAsk, Explained, read_ask
from shipyard.serving.oip_answers import OutputTensor
from shipyard.serving.payloads import Columns, decode_mlflow, encode_ours, json_kind, rows_to_columns

__all__ = [
    "EXPLAIN_TENSORS",
    "decode_explain",
    "decode_kserve",
    "encode_explained",
    "encode_kserve",
    "explanation_parameters",
    "explanation_tensors",
]

_FORMATS = ("instances", "inputs", "dataframe_split", "dataframe_records")

EXPLAIN_TENSORS = ("attributions", "base_values", "output_values", "additivity_error")
"""The output tensors an OIP explain answer adds to infer's."""


def decode_explain(body: Any, contract: Contract) -> tuple[Columns, int, ExplainAsk]:
    """Read our explain body: predict's rows (any of its formats) and the options.

    Raises:
        InputError: no rows, several formats, unknown keys, or options of the wrong type.
        UnsupportedExplanationError: `method` names no explanation method.
    """
    if not isinstance(body, dict):
        raise InputError(
            f"the request body is a JSON {json_kind(body)}; expected an object with one of {list(_FORMATS)} "
            f"and optionally {list(ASK_KEYS)}"
        )
    present = [k for k in _FORMATS if k in body]
    unknown = sorted(set(body) - set(_FORMATS) - set(ASK_KEYS) - {"params"})
    if len(present) != 1 or unknown:
        raise InputError(
            f"the request body has keys {echo(sorted(body))}; expected exactly one of {list(_FORMATS)} "
            f"(the rows, as predict takes them) and optionally {list(ASK_KEYS)}"
        )
    ask = read_ask(body, where="the body")
    columns, n = decode_mlflow({present[0]: body[present[0]]}, contract)
    return columns, n, ask


def decode_kserve(body: Any, contract: Contract) -> tuple[Columns, int, ExplainAsk]:
    """Read KServe v1's explain body, `{"instances": [...]}`, and the options.

    Raises:
        InputError: no `instances`, unknown keys, or options of the wrong type.
        UnsupportedExplanationError: `method` names no explanation method.
    """
    unknown = sorted(set(body) - {"instances", *ASK_KEYS}) if isinstance(body, dict) else []
    if not isinstance(body, dict) or "instances" not in body or unknown:
        got = f"has keys {echo(sorted(body))}" if isinstance(body, dict) else f"is a JSON {json_kind(body)}"
        raise InputError(
            f'the request body {got}; expected KServe v1\'s {{"instances": [...]}} (a list of rows) '
            f"and optionally {list(ASK_KEYS)}"
        )
    ask = read_ask(body, where="the body")
    columns, n = rows_to_columns(body["instances"], contract, where="'instances'")
    return columns, n, ask


def encode_explained(explained: Explained, model: str) -> dict[str, Any]:
    """Our answer: predict's, plus `explanation`."""
    return {**encode_ours(explained.answer, model), "explanation": explained.explanation}


def encode_kserve(explained: Explained, model: str) -> dict[str, Any]:
    """KServe v1's answer: one explanation per row, with its prediction, and the metadata."""
    answer = encode_ours(explained.answer, model)
    e = explained.explanation
    outputs: list[str] = list(e.get("outputs") or [])
    features: list[str] = list(e.get("features") or explained.features)
    rows = []
    probabilities = answer.get("probabilities")
    for r, prediction in enumerate(answer["predictions"]):
        row: dict[str, Any] = {"prediction": prediction}
        if probabilities is not None:
            row["probabilities"] = probabilities[r]
        if outputs:
            row["attributions"] = {
                o: {f: e["attributions"][r][j][k] for j, f in enumerate(features)}
                for k, o in enumerate(outputs)
            }
            row["base_values"] = dict(zip(outputs, e["base_values"][r], strict=True))
            row["output_values"] = dict(zip(outputs, e["output_values"][r], strict=True))
            row["additivity_error"] = e["additivity_error"][r]
            row["top_features"] = e["top_features"][r]
        rows.append(row)
    return {
        "request_id": answer["request_id"],
        "model": model,
        "version": answer["version"],
        "method": e.get("method"),
        "space": e.get("space"),
        "exact": e.get("exact"),
        "features": features,
        "outputs": outputs,
        "explanations": rows,
    }


def explanation_tensors(explained: Explained) -> list[OutputTensor]:
    """The explanation as the OIP's typed output tensors (FP64; a missing value is NaN)."""
    e = explained.explanation
    n = explained.answer.predictions.n_rows
    features = list(e.get("features") or explained.features)
    outputs = list(e.get("outputs") or [])
    shape = [n, len(features), len(outputs)]
    attributions = _fp64(e.get("attributions"), shape)
    base = _fp64(e.get("base_values"), [n, len(outputs)])
    out = _fp64(e.get("output_values"), [n, len(outputs)])
    error = _fp64(e.get("additivity_error"), [n])
    return [
        ("attributions", "FP64", shape, attributions, {}),
        ("base_values", "FP64", [n, len(outputs)], base, {}),
        ("output_values", "FP64", [n, len(outputs)], out, {}),
        ("additivity_error", "FP64", [n], error, {}),
    ]


def explanation_parameters(explained: Explained) -> dict[str, str]:
    """The response parameters of an OIP explain answer, as strings."""
    e = explained.explanation
    return {
        "method": str(e.get("method") or ""),
        "space": str(e.get("space") or ""),
        "exact": "true" if e.get("exact") else "false",
        "features": orjson.dumps(list(e.get("features") or explained.features)).decode(),
        "outputs": orjson.dumps(list(e.get("outputs") or [])).decode(),
    }


def _fp64(values: Any, shape: Sequence[int]) -> Any:
    """`values` (nested lists, None for a missing value) as a float64 array of `shape`."""
    if values is None:
        return np.zeros(shape, dtype=np.float64)
    return np.asarray(values, dtype=np.float64).reshape(shape)
