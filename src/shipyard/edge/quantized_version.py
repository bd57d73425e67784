"""A version's int8 graph, held to the metric bound: what `shipyard export --quantize int8` runs.

`quantize` (`edge/quantize.py`) works on a graph; this module brings the version in: the static
calibration set is drawn from its reference profile (`edge/calibration.py`), and the int8 graph
is scored as the `onnx` flavor would serve it and held to `max_metric_drop` on the version's
headline metrics (`edge/headline.py`; the parity gate's float32 bounds do not apply to int8).
A result that did not pass is for the caller to refuse: nothing is written by this module.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.core.batch import Batch, Predictions
from shipyard.edge.calibration import check_rows, rows_from_profile
from shipyard.edge.headline import MetricDrop, drop_of
from shipyard.edge.onnx_export import onnx_scorer
from shipyard.edge.quantize import Mode, Quantized, quantize
from shipyard.errors import ExportError

if TYPE_CHECKING:
    import onnx

    from shipyard.registry.loaded import LoadedModel

__all__ = ["QuantizeResult", "quantize_version"]


@dataclass(frozen=True)
class QuantizeResult:
    """A version's int8 graph, held to the metric bound.

    Args:
        quantized: the int8 graph and what quantizing did.
        metric: the headline metrics of the version and of the int8 graph on the check rows.
        max_metric_drop: the bound the drop is held to.
        checked_on: 'holdout' (labelled rows given); else the version's 'reference sample'
            (training rows kept at registration) or, without one, 'rows drawn from the reference
            profile', with the version's own answers as the truth (accuracy is then the share of
            labels that did not change; on the 100-row sample one changed label is a 0.01 drop:
            a holdout measures finer).
        parity: the parity gate's report of the int8 graph against the version (labels and
            probabilities; informative here: the float32 bounds do not apply to int8).
    """

    quantized: Quantized
    metric: MetricDrop
    max_metric_drop: float
    checked_on: str
    parity: Any = None

    @property
    def passed(self) -> bool:
        """True when no headline metric dropped by more than `max_metric_drop`."""
        return self.metric.within(self.max_metric_drop)

    def to_dict(self) -> dict[str, Any]:
        """The quantization report, JSON-safe."""
        return {
            **self.quantized.to_dict(),
            "metrics": {**self.metric.to_dict(), "max_drop": self.max_metric_drop, "rows": self.checked_on},
            "passed": self.passed,
            "parity": self.parity.to_dict() if hasattr(self.parity, "to_dict") else None,
        }


def quantize_version(
    loaded: LoadedModel,
    onnx_model: onnx.ModelProto,
    *,
    mode: Mode = "dynamic",
    max_metric_drop: float = 0.005,
    holdout: Any = None,
    calibration_rows: int = 512,
    seed: int = 0,
    repeats: int = 20,
) -> QuantizeResult:
    """Quantize a version's float32 export and hold it to the metric bound.

    The calibration set (static) and, without a holdout, the check rows are drawn from the
    version's reference profile (`rows_from_profile`).

    Args:
        loaded: the version.
        onnx_model: its export in float32 (`to_onnx(loaded, dtype="float32")`).
        mode: 'dynamic' or 'static'.
        max_metric_drop: how much any headline metric may drop (`edge/headline.py`).
        holdout: labelled rows to measure the metric on (`shipyard.edge.parity.Holdout`: its
            `features` and `labels`); rows the contract rejects are left out.
        calibration_rows: rows drawn from the profile.
        seed: the draw's seed.
        repeats: calls per latency median.

    Raises:
        UnsupportedExportError: nothing in the graph can be int8 (see `quantize`).
        ExportError: static mode and no reference profile to calibrate on, or no rows to check
            on (no holdout, no reference sample, no profile).
    """
    contract = loaded.contract
    profile = loaded.version.profile
    if profile is None and mode == "static":
        raise ExportError(
            f"{loaded.version.ref} has no reference profile to draw a calibration set from; use "
            "--calibration dynamic, or register the version with its training data"
        )
    drawn = rows_from_profile(profile, contract, calibration_rows, seed) if profile is not None else None
    quantized = quantize(
        onnx_model, mode=mode, calibration=drawn if mode == "static" else None, repeats=repeats
    )
    exported = onnx_scorer(quantized.model, contract)
    rows, truth, checked_on = check_rows(loaded, holdout, drawn=drawn)
    metric = drop_of(contract.task, truth, loaded.predict(rows), exported(rows), classes=contract.classes)
    return QuantizeResult(
        quantized, metric, max_metric_drop, checked_on, _parity(loaded, exported, holdout, max_metric_drop)
    )


def _parity(
    loaded: LoadedModel, exported: Callable[[Batch], Predictions], holdout: Any, max_metric_drop: float
) -> Any:
    """The gate's report of the int8 graph, for the record: the metric bound above decides."""
    from shipyard.edge.parity import check_parity

    # Labels may differ and probabilities move: the report records by how much; `passed` of the
    # result is decided by the one-sided metric bound, not by the gate's float bounds.
    return check_parity(
        loaded,
        exported,
        dtype="float32",
        holdout=holdout,
        tolerance=math.inf,
        metric_tolerance=max_metric_drop,
    )
