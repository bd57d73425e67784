"""A version pruned: what `shipyard export --prune` runs before converting.

`prune` (`edge/prune.py`) works on a model; this module brings the version in: the rows it is
checked on (a holdout, else the version's reference sample with its own answers as the truth:
`edge/calibration.py`), the model read as a tree ensemble where it is one (`edge/trees.py`,
with categorical values turned into the codes the ensemble reads), and a loaded version that
predicts with the pruned copy, for the exporters that take a version (`to_onnx`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.core.batch import Array, Batch, Label, Predictions
from shipyard.edge.calibration import check_rows
from shipyard.edge.ensemble import Ensemble
from shipyard.edge.prune import Pruned, prune

if TYPE_CHECKING:
    import onnx

    from shipyard.registry.loaded import LoadedModel

__all__ = ["EnsemblePredictor", "ensemble_rows", "prune_version", "with_model"]


def prune_version(
    loaded: LoadedModel,
    *,
    max_metric_drop: float = 0.005,
    holdout: Any = None,
    export: Callable[[Any], onnx.ModelProto] | None = None,
    repeats: int = 20,
) -> Pruned:
    """Prune a copy of the version's model as far as its headline metrics allow.

    Args:
        loaded: the version.
        max_metric_drop: how much any headline metric may drop on the check rows.
        holdout: labelled rows (`shipyard.edge.parity.Holdout`); without one, the version's
            reference sample with its own answers as the truth (a fidelity check only).
        export: the pruned model (an `Ensemble` for tree models, else the scikit-learn model)
            to its ONNX graph, for sizes and latency on the export.
        repeats: calls per latency median.

    Raises:
        UnsupportedExportError: the model is not one pruning knows (see `prune`).
        ExportError: no pruning stays within the bound, or there are no rows to check on.
    """
    from shipyard.edge.onnx_export import read_ensemble

    contract = loaded.contract
    rows, truth, _ = check_rows(loaded, holdout)
    ensemble = read_ensemble(loaded)
    if ensemble is not None:
        x: Any = ensemble_rows(ensemble, rows)
        model: Any = ensemble
    else:
        frame_input = bool(getattr(loaded.predictor, "frame_input", False))
        x, model = (rows.to_pandas() if frame_input else rows.to_numpy()), loaded.model
    return prune(
        model,
        holdout_x=x,
        holdout_y=truth,
        task=contract.task,
        max_metric_drop=max_metric_drop,
        classes=contract.classes,
        export=export,
        repeats=repeats,
    )


def ensemble_rows(ensemble: Ensemble, rows: Batch) -> Array:
    """Rows as the ensemble reads them: float64 in the model's input order (the contract's), a
    categorical column's values as their codes (positions in `Ensemble.categories`), NaN for a
    missing or unseen value."""
    columns = []
    for index, values in enumerate(rows.columns.values()):
        categories = ensemble.categories.get(index)
        if categories is None:
            missing = np.asarray([v is None for v in values]) if values.dtype == object else None
            column = np.where(missing, np.nan, values) if missing is not None else values
            columns.append(np.asarray(column, dtype=np.float64))
        else:
            codes = {value: float(code) for code, value in enumerate(categories)}
            columns.append(np.asarray([codes.get(v, np.nan) for v in values.tolist()], dtype=np.float64))
    return np.column_stack(columns) if columns else np.empty((rows.n_rows, 0))


def with_model(loaded: LoadedModel, model: Any) -> LoadedModel:
    """The version predicting with `model` (a pruned copy of its own model, or a pruned
    `Ensemble`) in place of its model: what the exporters and the parity gate then take as the
    source."""
    if isinstance(model, Ensemble):
        return replace(loaded, predictor=EnsemblePredictor(model, loaded.contract.classes), cache={})
    predictor = copy.copy(loaded.predictor)
    predictor.model = model  # type: ignore[attr-defined]  # every framework's predictor keeps `model`
    return replace(loaded, predictor=predictor, cache={})


@dataclass(frozen=True)
class EnsemblePredictor:
    """A pruned ensemble predicting a version's rows by its reference scoring (a `Predictor`)."""

    model: Ensemble
    classes: tuple[Label, ...] | None

    def predict(self, batch: Batch) -> Predictions:
        """Predict `batch` (features in contract order)."""
        x = ensemble_rows(self.model, batch)
        if self.classes is None or self.model.classes is None:
            return Predictions("regression", self.model.answers(x))
        index = {label: i for i, label in enumerate(self.model.classes)}
        labels = np.asarray(
            [self.classes[index[label]] for label in self.model.labels(x).tolist()], dtype=object
        )
        return Predictions("classification", labels, self.model.answers(x), self.classes)
