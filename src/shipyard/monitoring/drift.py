"""Data drift and prediction drift: a current profile (or data) against a version's reference.

Numeric columns get:
- the population stability index on 10 reference-quantile bins, taken from the profile's fine
  quantile edges (empty bins count as a share of `PSI_EPSILON`);
- Kolmogorov-Smirnov: exact (`scipy.stats.ks_2samp`) when both raw samples are at hand, otherwise
  on the profile's fine grid, where the true statistic lies in the stated interval
  `[ks, ks_upper]`;
- the Wasserstein distance: exact on raw samples, otherwise from the histograms with values
  spread evenly within each bin; divided by the reference's standard deviation to give an effect
  size;
- the Jensen-Shannon distance (base 2) on the 10 bins, and the change in the missing share.

Categorical columns get the chi-square test of homogeneity, the Jensen-Shannon distance, the
missing share and the categories never seen in the reference.

A column is flagged on effect sizes (PSI, Wasserstein, Jensen-Shannon, missing-share change,
unseen share), and only when the difference is also statistically significant, so that neither
large samples (where every p-value is tiny) nor small ones (where every effect is noisy) flag by
themselves. The dataset verdict is the share of flagged features, weighted by importance when the
model has it. One column's comparison is in `monitoring/column_drift.py`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from shipyard.core.batch import Batch, Predictions
from shipyard.core.jsonsafe import json_safe
from shipyard.core.profile import Profile
from shipyard.errors import ProfileError
from shipyard.monitoring.column_drift import ColumnDrift, compare_column
from shipyard.monitoring.statistics import PSI_EPSILON, exact_ks_wasserstein, psi, psi_bins
from shipyard.monitoring.thresholds import DriftSettings, Thresholds

__all__ = [
    "PSI_EPSILON",
    "DriftReport",
    "DriftSettings",
    "Thresholds",
    "compare",
    "drift",
    "exact_ks_wasserstein",
    "psi",
    "psi_bins",
]

_NAMED = 5  # drifted columns a headline names before "..."
_LEVEL_ORDER = {"drift": 0, "warn": 1, "ok": 2, "insufficient": 3, "ignored": 4}


@dataclass(frozen=True, kw_only=True)
class DriftReport:
    """Drift of every feature and output, and the dataset verdict.

    Args:
        features: per feature, most severe first.
        outputs: per model output (prediction, class scores), most severe first.
        share: the share of judged features that drifted, weighted by importance when known.
        weighted: True when the share is weighted by the model's importances.
        dataset_drift: True when `share` reached the settings' `dataset_share`.
        reference_rows: rows behind the reference profile.
        current_rows: rows behind the current profile.
        settings: the thresholds used.
    """

    features: tuple[ColumnDrift, ...]
    outputs: tuple[ColumnDrift, ...]
    share: float
    weighted: bool
    dataset_drift: bool
    reference_rows: int
    current_rows: int
    settings: DriftSettings

    @property
    def drifted_features(self) -> list[str]:
        """The names of the drifted features, most severe first."""
        return [c.name for c in self.features if c.drifted]

    @property
    def prediction_drift(self) -> bool:
        """True when any model output drifted."""
        return any(c.drifted for c in self.outputs)

    @property
    def judged(self) -> bool:
        """True when some feature or output had enough rows to be judged."""
        return any(c.judged for c in (*self.features, *self.outputs))

    @property
    def headline(self) -> str:
        """One line that names what drifted first: `drift in 2 features (income, age) and the prediction`."""
        if not self.judged:
            need = self.settings.defaults.min_rows
            return f"not judged: {self.current_rows} current rows; at least {need} are needed"
        features = [c.name for c in self.features if c.drifted]
        outputs = [c.name for c in self.outputs if c.drifted]
        parts = []
        if features:
            shown = ", ".join(features[:_NAMED]) + (", ..." if len(features) > _NAMED else "")
            parts.append(f"{len(features)} feature{'s' if len(features) != 1 else ''} ({shown})")
        if outputs:
            parts.append(
                "the prediction" if outputs == ["prediction"] else f"the outputs ({', '.join(outputs)})"
            )
        weighted = " importance-weighted" if self.weighted else ""
        verdict = (
            f"the data set drifted ({self.share:.0%} of features{weighted})"
            if self.dataset_drift
            else f"below the data set verdict ({self.share:.0%} of features{weighted} drifted; "
            f"{self.settings.dataset_share:.0%} needed)"
        )
        if parts:
            return f"drift in {' and '.join(parts)}; {verdict}"
        warned = [c.name for c in (*self.features, *self.outputs) if c.level == "warn"]
        if warned:
            return f"no drift; a warning for {', '.join(warned[:_NAMED])}" + (
                ", ..." if len(warned) > _NAMED else ""
            )
        return "no drift"

    def column(self, name: str) -> ColumnDrift:
        """The drift of one feature or output.

        Raises:
            KeyError: no such column was compared.
        """
        for c in (*self.features, *self.outputs):
            if c.name == name:
                return c
        raise KeyError(f"no column {name!r} in the drift report")

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-safe data."""
        return {
            "dataset_drift": self.dataset_drift,
            "share": json_safe(self.share),
            "weighted": self.weighted,
            "drifted_features": self.drifted_features,
            "prediction_drift": self.prediction_drift,
            "headline": self.headline,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "features": [c.to_dict() for c in self.features],
            "outputs": [c.to_dict() for c in self.outputs],
            "settings": self.settings.to_dict(),
        }


def drift(
    reference: Profile | Any,
    current: Profile | Any,
    *,
    settings: DriftSettings | None = None,
    importance: Mapping[str, float] | None = None,
) -> DriftReport:
    """Drift of `current` against `reference`, each a `Profile` or rows (DataFrame, Arrow, dict).

    With rows on both sides, KS and Wasserstein are exact; with a profile on either side, they
    come from the profile's fine grid (KS within its stated bounds).

    Raises:
        ProfileError: a profile and the rows do not share their features.
    """
    ref_rows = None if isinstance(reference, Profile) else Batch.coerce(reference)
    cur_rows = None if isinstance(current, Profile) else Batch.coerce(current)
    ref_profile = reference if isinstance(reference, Profile) else Profile.build(ref_rows)  # type: ignore[arg-type]
    cur_profile = current if isinstance(current, Profile) else ref_profile.profile(cur_rows)  # type: ignore[arg-type]
    exact = ref_rows is not None and cur_rows is not None
    return compare(
        ref_profile,
        cur_profile,
        settings=settings,
        importance=importance,
        reference_data=ref_rows if exact else None,
        current_data=cur_rows if exact else None,
    )


def compare(
    reference: Profile,
    current: Profile,
    *,
    settings: DriftSettings | None = None,
    importance: Mapping[str, float] | None = None,
    reference_data: Batch | None = None,
    current_data: Batch | None = None,
    reference_outputs: Predictions | None = None,
    current_outputs: Predictions | None = None,
    threads: int = 2,
) -> DriftReport:
    """Compare `current` with `reference`, feature by feature and output by output.

    Args:
        reference: the version's reference profile.
        current: a profile on the reference's edges (`reference.profile(...)` or a sum of them).
        settings: thresholds; the defaults when None.
        importance: the model's importance per feature, to weight the dataset verdict.
        reference_data: the reference rows themselves, when at hand (exact KS and Wasserstein).
        current_data: the current rows themselves, when at hand.
        reference_outputs: the model's outputs on `reference_data`.
        current_outputs: the model's outputs on `current_data`.
        threads: columns compared at once when raw samples are given (their sorts free the GIL).

    Raises:
        ProfileError: the profiles do not describe the same features.
    """
    settings = settings or DriftSettings()
    missing = [n for n in reference.features if n not in current.features]
    if missing:
        raise ProfileError(f"the current profile lacks the features {missing} of the reference")
    weights = _normalised(importance, list(reference.features))
    sides = {
        "feature": (
            reference.features,
            current.features,
            reference_data.columns if reference_data is not None else {},
            current_data.columns if current_data is not None else {},
        ),
        "output": (
            reference.outputs,
            current.outputs,
            reference_outputs.to_columns() if reference_outputs is not None else {},
            current_outputs.to_columns() if current_outputs is not None else {},
        ),
    }

    def column(job: tuple[str, str]) -> ColumnDrift:
        role, name = job
        ref, cur, ref_values, cur_values = sides[role]
        return compare_column(
            name,
            ref[name],
            cur[name],
            thresholds=settings.for_column(name),
            bins=settings.bins,
            role=role,
            reference_values=ref_values.get(name),
            current_values=cur_values.get(name),
            importance=weights.get(name) if weights and role == "feature" else None,
        )

    jobs = [("feature", n) for n in reference.features]
    jobs += [("output", n) for n in reference.outputs if n in current.outputs]
    if threads > 1 and reference_data is not None and current_data is not None:
        # Only the exact statistics (sorts of raw samples) free the GIL; profiles alone are faster in turn.
        with ThreadPoolExecutor(threads) as pool:
            columns = list(pool.map(column, jobs))
    else:
        columns = [column(j) for j in jobs]
    features = [c for c in columns if c.role == "feature"]
    out = [c for c in columns if c.role == "output"]
    judged = [c for c in features if c.level not in ("insufficient", "ignored")]
    if weights:
        total = sum(weights.get(c.name, 0.0) for c in judged)
        share = sum(weights.get(c.name, 0.0) for c in judged if c.drifted) / total if total > 0 else 0.0
    else:
        share = sum(c.drifted for c in judged) / len(judged) if judged else 0.0
    return DriftReport(
        features=tuple(sorted(features, key=_severity_order)),
        outputs=tuple(sorted(out, key=_severity_order)),
        share=share,
        weighted=bool(weights),
        dataset_drift=bool(judged) and share >= settings.dataset_share,
        reference_rows=reference.rows,
        current_rows=current.rows,
        settings=settings,
    )


def _normalised(importance: Mapping[str, float] | None, names: list[str]) -> dict[str, float]:
    if not importance:
        return {}
    raw = {n: abs(float(importance.get(n, 0.0))) for n in names}
    total = sum(raw.values())
    if total <= 0 or not all(math.isfinite(v) for v in raw.values()):
        return {}
    return {n: v / total for n, v in raw.items()}


def _severity_order(c: ColumnDrift) -> tuple[int, float, str]:
    return (_LEVEL_ORDER[c.level], -c.severity, c.name)
