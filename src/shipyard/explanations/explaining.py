"""Explaining rows through a loaded version: the one scoring step, then the version's explainer.

`explain_rows(loaded, data)` is `LoadedModel.explain`: it validates and predicts exactly as
`LoadedModel.score` does (the same contract errors, the same rejection policies), then explains
the rows it predicted with the version's explainer (`shipyard.attribution.choose`), built once
per loaded version. `Explanation` is the answer's JSON shape, which every transport serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.attribution.base import Attributions
from shipyard.core.jsonsafe import json_safe
from shipyard.core.refs import ModelRef
from shipyard.errors import UnsupportedExplanationError
from shipyard.registry.loaded import Accept, LoadedModel, Scored

if TYPE_CHECKING:
    from shipyard.registry.registry import Registry

__all__ = ["DEFAULT_TOP", "Explanation", "explain", "explain_rows"]

DEFAULT_TOP = 5
"""How many features an answer names as the top ones of each row."""


@dataclass(frozen=True)
class Explanation:
    """Rows scored and explained.

    Attributes:
        scored: the scoring step's result: validation, accepted rows, their predictions.
        attributions: the explanation of the accepted rows (in their order); None when no row
            was accepted.
    """

    scored: Scored
    attributions: Attributions | None

    def output_index(self, output: str | None) -> int | None:
        """The index of the output asked for by name, or None for all of them.

        Raises:
            UnsupportedExplanationError: the model has no such output.
        """
        if output is None or self.attributions is None:
            return None
        outputs = self.attributions.outputs
        if str(output) in outputs:
            return outputs.index(str(output))
        if outputs == ("value",):
            raise UnsupportedExplanationError(
                f"output {output!r} was asked for, but a regressor has one output, 'value'; "
                "per-class attributions exist only for classifiers"
            )
        if len(outputs) == 1 and self.attributions.space == "log_odds":
            raise UnsupportedExplanationError(
                f"output {output!r} was asked for; {self.attributions.method} explains this binary "
                f"classifier in the log-odds of class {outputs[0]!r} only (the other class's are "
                f"their negative): ask output {outputs[0]!r}, or method 'exact' for one set of "
                "probability attributions per class"
            )
        raise UnsupportedExplanationError(
            f"output {output!r} was asked for; this explanation's outputs are {list(outputs)} "
            f"({self.attributions.space})"
        )

    def top_features(
        self, row: int, *, top: int = DEFAULT_TOP, output: int | None = None
    ) -> list[dict[str, Any]]:
        """The row's `top` features by |attribution| of one output (by default, the predicted
        class's where there is one per class, else the one output)."""
        assert self.attributions is not None
        index = self._headline_output(row) if output is None else output
        values = self.scored.batch.columns
        return [
            {
                "feature": name,
                "value": json_safe(
                    values[name][row].item() if hasattr(values[name][row], "item") else values[name][row]
                ),
                "attribution": share,
            }
            for name, share in self.attributions.top(row, top, index)
        ]

    def _headline_output(self, row: int) -> int:
        attributions = self.attributions
        assert attributions is not None
        predictions = self.scored.predictions
        if len(attributions.outputs) > 1 and predictions is not None:
            label = str(predictions.values[row])
            if label in attributions.outputs:
                return attributions.outputs.index(label)
        return len(attributions.outputs) - 1

    def to_dict(self, *, top: int = DEFAULT_TOP, output: str | None = None) -> dict[str, Any]:
        """The explanation as JSON-safe data: per row, feature and output the attribution, the
        base values, the model's output they add up to, the additivity error, the top features.

        Args:
            top: how many top features to name per row.
            output: only this output (a class label, or 'value').
        """
        a = self.attributions
        if a is None:
            return {"method": None, "rows": 0}
        index = self.output_index(output)
        pick: Sequence[int] | slice = [index] if index is not None else slice(None)
        values, base, out = a.values[:, :, pick], a.base[:, pick], a.output[:, pick]
        outputs = [a.outputs[index]] if index is not None else list(a.outputs)
        return {
            "method": a.method,
            "space": a.space,
            "exact": a.exact,
            "features": list(a.features),
            "outputs": outputs,
            "attributions": json_safe(values.tolist()),
            "base_values": json_safe(base.tolist()),
            "output_values": json_safe(out.tolist()),
            "additivity_error": json_safe(a.additivity.tolist()),
            "estimated_error": None if a.error is None else json_safe(a.error.tolist()),
            "top_features": [self.top_features(r, top=top, output=index) for r in range(a.n_rows)],
            "mapping": {k: list(v) for k, v in a.mapping.items()},
        }


def explain_rows(
    loaded: LoadedModel, data: Any, *, method: str = "auto", accept: Accept | None = None
) -> Explanation:
    """Score `data` through the one scoring step and explain the rows it predicted.

    Args:
        loaded: the version.
        data: rows, as `LoadedModel.score` takes them.
        method: one of `shipyard.attribution.base.METHODS`.
        accept: the rejection policy; by default any row the contract rejects raises, as
            `predict` does.

    Raises:
        ContractViolationError: a row breaks the contract (with the default policy).
        UnsupportedExplanationError: the model cannot have `method`.
        ExplanationError: an exact method did not add up on some row.
    """
    explained = loaded.explain(data, method=method, accept=accept)
    return Explanation(explained.scored, explained.attributions)


def explain(
    ref: str | ModelRef,
    rows: Any,
    *,
    method: str = "auto",
    registry: Registry | None = None,
    trust_pickle: bool = False,
) -> Explanation:
    """Load a version and explain its predictions of `rows` (scored once, as `predict` scores).

    Args:
        ref: the version (`'fraud@production'`, `'fraud:3'`, `'fraud'`).
        rows: a DataFrame, Arrow table, list of row objects or mapping of columns.
        method: 'auto' (the best the model has), 'tree_shap', 'linear', 'exact', 'permutation'
            or 'lime'.
        registry: where the version is; the default registry (from the environment) when None.
        trust_pickle: allow loading custom Python models (pyfunc).

    Returns:
        The rows scored and explained; `to_dict()` for JSON.

    Raises:
        ContractViolationError: a row breaks the contract.
        UnsupportedExplanationError: the model cannot have `method`; the message names what it can.
        ExplanationError: an exact method did not add up on some row.
    """
    if registry is None:
        from shipyard.registry.default import default_registry

        registry = default_registry()
    loaded = registry.load(str(ref), trust_pickle=trust_pickle)
    return explain_rows(loaded, rows, method=method)
