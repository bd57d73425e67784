"""int8 quantization of an exported graph, with a report of what it did, or why it did nothing.

ONNX Runtime's quantizer touches only the operators it has integer kernels for; here that is
`MatMul` and `Gemm` (an MLP's layers, a linear model written by `edge/linear_onnx.py`). On
anything else it returns the graph unchanged and says nothing (onnxruntime#11436); this module
refuses instead: a graph with no float32 MatMul/Gemm raises `UnsupportedExportError` naming why
(tree ensembles have no int8 kernels; a float64 graph must be exported in float32 first).

- dynamic: weights are stored as int8, activations quantized per call (`DynamicQuantizeLinear` +
  `MatMulInteger`); needs no data.
- static: activation ranges are measured once on a calibration set (min/max), and written as
  QDQ pairs (`QuantizeLinear`/`DequantizeLinear` around each MatMul) with uint8 activations and
  int8 weights (U8S8). QDQ rather than QOperator: ONNX Runtime's CPU provider fuses QDQ pairs into
  the same integer kernels a QOperator graph names (`QLinearMatMul`), it is the format ONNX
  Runtime recommends and defaults to, and its own measurements show QOperator slower on x86-64
  CPUs; U8S8 runs on the AVX2/AVX-512 VNNI `u8 x s8` instructions.

Only MatMul and Gemm are quantized: quantizing the Softmax too (the quantizer's default) would
round probabilities to steps of 1/255.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from shipyard.core.batch import Array, Batch
from shipyard.edge.calibration import feeds_of, synthetic_feeds
from shipyard.edge.timing import Latency, measure
from shipyard.errors import InputError, UnsupportedExportError

if TYPE_CHECKING:
    import onnx

__all__ = [
    "QUANTIZED_OPS",
    "TREES_NOT_APPLICABLE",
    "Mode",
    "NodeChange",
    "Quantized",
    "quantize",
]

Mode = Literal["dynamic", "static"]
QUANTIZED_OPS = ("MatMul", "Gemm")
TREES_NOT_APPLICABLE = "not applicable: tree ensembles have no int8 kernels in ONNX Runtime"
_FLOAT, _DOUBLE = 1, 11  # onnx.TensorProto element types
_CALIBRATION_CHUNK = 64


@dataclass(frozen=True)
class NodeChange:
    """What became of one MatMul/Gemm node.

    Args:
        node: the node's name in the original graph.
        op: its operator type there.
        became: the operator that computes it now ('MatMulInteger', 'QLinearMatMul', or
            'MatMul on int8 QDQ inputs'), or 'float' when it was left as it was.
    """

    node: str
    op: str
    became: str

    @property
    def quantized(self) -> bool:
        """True when the node now computes in int8."""
        return self.became != "float"


@dataclass(frozen=True)
class Quantized:
    """An int8 graph and what quantizing did.

    Args:
        model: the quantized graph.
        mode: 'dynamic' or 'static'.
        nodes: per MatMul/Gemm node of the original graph, what it became.
        ops_before: operator type -> count in the original graph.
        ops_after: operator type -> count in the quantized graph.
        size_before: the original graph's serialized size, bytes.
        size_after: the quantized graph's, bytes.
        latency_before: the original graph's latency under ONNX Runtime.
        latency_after: the quantized graph's.
    """

    model: onnx.ModelProto
    mode: Mode
    nodes: tuple[NodeChange, ...]
    ops_before: Mapping[str, int]
    ops_after: Mapping[str, int]
    size_before: int
    size_after: int
    latency_before: Latency
    latency_after: Latency

    @property
    def data(self) -> bytes:
        """The quantized graph's bytes (what is written as `model.onnx`)."""
        return bytes(self.model.SerializeToString())

    @property
    def size_ratio(self) -> float:
        """How many times smaller the quantized graph is."""
        return self.size_before / self.size_after

    def to_dict(self) -> dict[str, Any]:
        """The report, JSON-safe: per operator type and per node what was quantized, sizes, latency."""
        types = sorted(set(self.ops_before) | set(self.ops_after))
        return {
            "mode": self.mode,
            "format": "QDQ (U8S8)" if self.mode == "static" else "dynamic (int8 weights)",
            "operators": {
                op: {"before": self.ops_before.get(op, 0), "after": self.ops_after.get(op, 0)}
                for op in types
                if self.ops_before.get(op, 0) != self.ops_after.get(op, 0)
            },
            "nodes": [{"node": n.node, "op": n.op, "became": n.became} for n in self.nodes],
            "size": {"before": self.size_before, "after": self.size_after, "ratio": self.size_ratio},
            "latency": {
                "before": self.latency_before.to_dict(),
                "after": self.latency_after.to_dict(),
                "ratio": self.latency_before.ratio(self.latency_after),
            },
        }


def quantize(
    model: onnx.ModelProto,
    *,
    mode: Mode = "dynamic",
    calibration: Batch | Array | Mapping[str, Array] | None = None,
    repeats: int = 20,
    batch_rows: int = 1000,
) -> Quantized:
    """Quantize the MatMul/Gemm nodes of a float32 graph to int8 and measure what changed.

    Args:
        model: the exported graph, in float32.
        mode: 'dynamic' (no data needed) or 'static' (activation ranges from `calibration`).
        calibration: rows to calibrate on (static) and to time with: a 2-D array for a graph of
            one input, feeds by input name, or a `Batch` (see `edge/calibration.py`); without
            it, dynamic mode times on synthetic rows.
        repeats: calls per latency median.
        batch_rows: the rows of the timed batch.

    Raises:
        UnsupportedExportError: the graph has nothing int8 can compute (a tree ensemble:
            `TREES_NOT_APPLICABLE`; no MatMul/Gemm; MatMul/Gemm in float64), or quantizing
            changed no node.
        InputError: static mode without calibration rows, or an unknown mode.
    """
    import onnx

    if mode not in ("dynamic", "static"):
        raise InputError(f"quantization mode {mode!r} is unknown; expected 'dynamic' or 'static'")
    _check_applicable(model)
    if mode == "static" and calibration is None:
        raise InputError(
            "static quantization needs calibration rows (a version's are drawn from its reference "
            "profile); give some, or use mode='dynamic'"
        )
    feeds = feeds_of(model, calibration) if calibration is not None else synthetic_feeds(model, 256)
    with tempfile.TemporaryDirectory(prefix="shipyard-int8-") as work:
        target = Path(work) / "int8.onnx"
        with _quiet_preprocessing_advice():
            _run_quantizer(model, target, mode, feeds)
        quantized = onnx.load_from_string(target.read_bytes())
    nodes = _node_changes(model, quantized)
    if not any(n.quantized for n in nodes):
        raise UnsupportedExportError(
            f"int8 quantization ({mode}) changed none of the graph's {len(nodes)} MatMul/Gemm nodes; "
            "nothing smaller was made: export without --quantize"
        )
    timing_rows = _repeat_to(feeds, batch_rows)
    return Quantized(
        model=quantized,
        mode=mode,
        nodes=nodes,
        ops_before=dict(Counter(n.op_type for n in model.graph.node)),
        ops_after=dict(Counter(n.op_type for n in quantized.graph.node)),
        size_before=model.ByteSize(),
        size_after=quantized.ByteSize(),
        latency_before=_latency(model, timing_rows, batch_rows, repeats),
        latency_after=_latency(quantized, timing_rows, batch_rows, repeats),
    )


def _check_applicable(model: onnx.ModelProto) -> None:
    ops = {n.op_type for n in model.graph.node}
    if any(op.startswith("TreeEnsemble") for op in ops):
        raise UnsupportedExportError(
            f"{TREES_NOT_APPLICABLE}: the graph's trees (TreeEnsemble) would be copied unchanged; "
            "prune the ensemble instead (--prune drops boosting rounds or forest trees)"
        )
    weights = {t.name: t.data_type for t in model.graph.initializer}
    candidates = [n for n in model.graph.node if n.op_type in QUANTIZED_OPS]
    if not candidates:
        raise UnsupportedExportError(
            f"not applicable: the graph has no MatMul or Gemm, the only operators ONNX Runtime "
            f"quantizes here (it has {sorted(ops)}); int8 applies to MLPs and linear models"
        )
    types = {weights.get(name) for n in candidates for name in n.input} - {None}
    if _FLOAT not in types:
        where = "float64" if _DOUBLE in types else "no float32 weights"
        raise UnsupportedExportError(
            f"not applicable: the graph's MatMul/Gemm compute in {where}, and ONNX Runtime's int8 "
            "kernels take float32; export with --dtype float32 and quantize that"
        )


class _PreprocessingAdvice(logging.Filter):
    """The quantizer logs, on the root logger, advice to run its pre-processing first: shape
    inference and graph fusions for large vision models. A converted MLP gains nothing from it,
    and a CLI should not print it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextlib.contextmanager
def _quiet_preprocessing_advice() -> Iterator[None]:
    advice = _PreprocessingAdvice()
    root = logging.getLogger()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def _run_quantizer(model: onnx.ModelProto, target: Path, mode: Mode, feeds: dict[str, Array]) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    if mode == "dynamic":
        quantize_dynamic(model, target, op_types_to_quantize=list(QUANTIZED_OPS), weight_type=QuantType.QInt8)
        return

    class Chunks(CalibrationDataReader):  # type: ignore[misc]  # onnxruntime ships no type hints
        def __init__(self) -> None:
            rows = len(next(iter(feeds.values())))
            self.chunks = iter(
                [
                    {k: v[i : i + _CALIBRATION_CHUNK] for k, v in feeds.items()}
                    for i in range(0, rows, _CALIBRATION_CHUNK)
                ]
            )

        def get_next(self) -> dict[str, Array] | None:
            return next(self.chunks, None)

    quantize_static(
        model,
        target,
        Chunks(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(QUANTIZED_OPS),
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )


def _node_changes(before: onnx.ModelProto, after: onnx.ModelProto) -> tuple[NodeChange, ...]:
    """Per MatMul/Gemm of `before`: the quantizer renames a node it replaces `<name>_quant`
    (dynamic, QOperator) or keeps it and feeds it from DequantizeLinear (QDQ)."""
    by_name = {n.name: n for n in after.graph.node}
    dequantized = {o for n in after.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    changes = []
    for node in before.graph.node:
        if node.op_type not in QUANTIZED_OPS:
            continue
        replaced = by_name.get(f"{node.name}_quant")
        kept = by_name.get(node.name)
        if replaced is not None:
            became = replaced.op_type
        elif kept is not None and kept.op_type == node.op_type and kept.input[0] in dequantized:
            became = f"{node.op_type} on int8 QDQ inputs"
        else:
            became = "float"
        changes.append(NodeChange(node.name, node.op_type, became))
    return tuple(changes)


def _repeat_to(feeds: dict[str, Array], rows: int) -> dict[str, Array]:
    have = len(next(iter(feeds.values())))
    return {k: np.resize(v, (rows, *v.shape[1:])) if have != rows else v for k, v in feeds.items()}


def _latency(model: onnx.ModelProto, feeds: dict[str, Array], rows: int, repeats: int) -> Latency:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    one = {k: v[:1] for k, v in feeds.items()}
    return measure(lambda f: session.run(None, f), one, feeds, batch_rows=rows, repeats=repeats)
