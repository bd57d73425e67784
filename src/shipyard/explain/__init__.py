"""Explanations of predictions, over the one scoring step: why a version answered what it did,
per request, per batch and for the model as a whole (`shipyard.attribution` holds the engines).

`shipyard.explain` is also the public function `shipyard.explain(ref, rows)`: importing this
package's modules sets the package over the function's name on `shipyard` (as Python does for
every submodule), so the package is made callable and calls the function.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.explain.explaining import Explanation
    from shipyard.registry.registry import Registry

__all__ = ["explain"]


def explain(
    ref: str,
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
    from shipyard.explain.explaining import explain_rows

    if registry is None:
        from shipyard.registry.default import default_registry

        registry = default_registry()
    loaded = registry.load(ref, trust_pickle=trust_pickle)
    return explain_rows(loaded, rows, method=method)


class _Package(types.ModuleType):
    """This package, callable as `explain`."""

    def __call__(
        self,
        ref: str,
        rows: Any,
        *,
        method: str = "auto",
        registry: Registry | None = None,
        trust_pickle: bool = False,
    ) -> Explanation:
        return explain(ref, rows, method=method, registry=registry, trust_pickle=trust_pickle)


sys.modules[__name__].__class__ = _Package
