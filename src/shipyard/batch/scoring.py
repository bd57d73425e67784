"""One batch of rows through the contract and the model: the step every batch engine shares.

The local engine and the Spark executors both call `Scorer.score`: the version scores the batch
(`LoadedModel.score`, the step serving takes too) with the quarantine policy, so the rows that pass
are predicted and the rest are set aside; then the scored rows and the rejected rows, with their
reasons, are laid out as tables. With `explain`, the rows predicted are explained too, and
their attributions are columns of the scored rows (`batch.explained`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from shipyard.attribution.base import Attributions
from shipyard.batch.explained import explain_batch, explain_columns, explained_outputs
from shipyard.core.batch import Batch, Predictions
from shipyard.core.contract import PII
from shipyard.errors import UnresumableJobError
from shipyard.registry.loaded import LoadedModel

__all__ = ["Scorer"]


@dataclass(frozen=True)
class Scorer:
    """Scores batches of one input with one version.

    Args:
        loaded: the version.
        input_url: the input the rows come from (named in rejects, and in the output with several).
        passthrough: input columns copied to the output.
        name_input: add the input's name to every output row (a job with several inputs).
        explain: the explanation method (`shipyard.attribution.base.METHODS`) whose attributions
            are added to the scored rows, or None for none.
    """

    loaded: LoadedModel
    input_url: str
    passthrough: tuple[str, ...] = ()
    name_input: bool = False
    explain: str | None = None

    def score(self, batch: Batch, row: Any) -> tuple[pa.Table | None, pa.Table | None]:
        """The scored rows and the rejected rows of `batch` (None when there are none).

        Args:
            batch: the input rows.
            row: each row's number in its input file.
        """
        attributions: Attributions | None = None
        if self.explain is None:
            scored = self.loaded.score(batch)  # quarantine: predict the rows that pass, set the rest aside
        else:  # the same step and policy, then the rows predicted are explained
            scored, attributions = explain_batch(self.loaded, batch, self.explain)
        good = None
        if scored.predictions is not None and scored.whole:
            good = self.scored(batch, None, row, scored.predictions, attributions)
        elif scored.predictions is not None:
            accepted = scored.accepted
            good = self.scored(batch, accepted, row[accepted], scored.predictions, attributions)
        if scored.whole:
            return good, None
        bad = scored.validation.rejected_rows
        reasons = scored.validation.reasons_by_row(offset=int(row[0]))  # they name the file's rows
        return good, self.rejected(batch, bad, row[bad], reasons)

    def empty(self) -> pa.Table:
        """No scored rows, with the output's columns."""
        return self.scored(
            Batch({}, 0), None, np.empty(0, np.int64), Predictions.empty(self.loaded.contract.classes)
        )

    def scored(
        self,
        batch: Batch,
        accepted: Any,
        row: Any,
        predictions: Predictions,
        attributions: Attributions | None = None,
    ) -> pa.Table:
        """The output rows: row number, (input file,) version, pass-through columns, predictions,
        and with `explain` the attributions (NaN when not given: a table for its schema only)."""
        n = len(row)
        columns: dict[str, Any] = {"row": pa.array(row, pa.int64())}
        if self.name_input:
            columns["input_file"] = _constant(self.input_url, n)
        columns["model_version"] = _constant(str(self.loaded.version.ref), n)
        for name in self.passthrough:
            values = batch.columns.get(name)
            if values is None:
                if not batch.columns:  # the empty table of `empty`
                    columns[name] = pa.array([], pa.string())
                    continue
                raise UnresumableJobError(
                    f"--passthrough column {name!r} is not in {self.input_url}; its columns are "
                    f"{list(batch.names)}; start a new job without it"
                )
            columns[name] = _arrow(values if accepted is None else values[accepted])
        for name, values in predictions.to_columns().items():
            columns[name] = _arrow(values)
        if self.explain is not None:
            features = self.loaded.contract.names
            outputs = attributions.outputs if attributions is not None else None
            outputs = outputs or explained_outputs(self.loaded, self.explain)
            columns |= explain_columns(attributions, features=features, outputs=outputs, rows=n)
        return pa.table(columns)

    def rejected(self, batch: Batch, bad: Any, row: Any, reasons: dict[int, list[str]]) -> pa.Table:
        """The rejected rows: row number, input file, the reasons, and every input value as text
        (`<pii>` for a pii feature's)."""
        columns: dict[str, Any] = {
            "row": pa.array(row, pa.int64()),
            "input_file": _constant(self.input_url, len(row)),
            "reason": pa.array(["; ".join(reasons.get(int(i), ["rejected"])) for i in bad], pa.string()),
        }
        pii = self.loaded.contract.pii_masks
        for name, values in batch.columns.items():
            if name in pii:  # never written in clear; the row number finds the row
                columns[name] = pa.array([PII] * len(bad), pa.string())
                continue
            columns[name] = pa.array(
                [None if _missing(v) else str(v) for v in values[bad].tolist()], pa.string()
            )
        return pa.table(columns)


def _constant(value: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([value]))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _arrow(values: Any) -> pa.Array:
    array = np.asarray(values)
    if array.dtype.kind == "O":
        return pa.array(array.tolist(), from_pandas=True)
    return pa.array(array)
