"""The global importance that weights the dataset drift verdict: the version's own, stored.

The importance is the version's mean |attribution| per feature on a sample of its training data,
computed once when it was registered (`shipyard.attribution.summary`) and stored with it
(`ModelVersion.importance`): a report never loads the model or explains anything for it.

A version without a stored importance (registered before explanations existed, registered
without training data, or a model no explainer could read) gets an unweighted verdict, and the
report says why. It does not fall back to guessing from the model's own attributes
(`feature_importances_`, `|coef_|`): those are on other scales (impurity decrease, coefficients
of unscaled inputs), so a verdict weighted by them would not mean the same as one weighted by
attributions, and the report could not say which it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.registry.records import ModelVersion

__all__ = ["Weights", "weights_of"]


@dataclass(frozen=True)
class Weights:
    """The importance the drift verdict is weighted by, and where it came from.

    Attributes:
        importance: per feature, or None: the verdict is unweighted.
        source: 'registration' (stored with the version), 'given' (by the caller), or None.
        method: the explanation method the stored importance was computed by.
        note: why the verdict is unweighted, when it is.
    """

    importance: dict[str, float] | None
    source: str | None
    method: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """As JSON-safe data (the importance itself is in each column's drift)."""
        return {"weighted": self.importance is not None, "source": self.source, "method": self.method,
                "note": self.note}  # fmt: skip


def weights_of(version: ModelVersion) -> Weights:
    """The version's stored importance, or why there is none (the verdict is then unweighted)."""
    importance = version.importance
    explanation = version.explanation or {}
    if importance is not None and any(v > 0 for v in importance.values()):
        return Weights(importance, "registration", method=explanation.get("method"))
    if explanation.get("importance_error"):
        why = f"its importance could not be computed at registration: {explanation['importance_error']}"
    elif explanation:
        why = "its importance at registration was zero for every feature"
    else:
        why = (
            "it has no stored importance (registered without training data, or before importances were kept)"
        )
    return Weights(None, None, note=f"unweighted: {version.ref} {why}")
