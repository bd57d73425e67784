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
model has it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.spatial.distance import jensenshannon

from shipyard.core.batch import Array, Batch, Predictions
from shipyard.core.jsonsafe import json_safe
from shipyard.core.profile import CategoricalProfile, ColumnProfile, NumericProfile, Profile
from shipyard.errors import ProfileError
from shipyard.monitoring.statistics import (
    PSI_EPSILON,
    exact_ks_wasserstein,
    grid_ks,
    grid_wasserstein,
    homogeneity,
    ks_pvalue,
    present,
    psi,
    psi_bins,
    unseen_pvalue,
)
from shipyard.monitoring.thresholds import DriftSettings, Thresholds

__all__ = [
    "PSI_EPSILON",
    "ColumnDrift",
    "DriftReport",
    "DriftSettings",
    "Thresholds",
    "compare",
    "compare_column",
    "drift",
    "exact_ks_wasserstein",
    "psi",
    "psi_bins",
]

Level = Literal["ok", "warn", "drift", "insufficient", "ignored"]
_NAMED = 5  # drifted columns a headline names before "..."
_LEVEL_ORDER = {"drift": 0, "warn": 1, "ok": 2, "insufficient": 3, "ignored": 4}


@dataclass(frozen=True, kw_only=True)
class ColumnDrift:
    """How one column moved between the reference and the current data.

    Args:
        name: the feature or output.
        role: 'feature' or 'output'.
        kind: 'numeric' or 'categorical'.
        level: 'drift', 'warn', 'ok', 'insufficient' (too few current rows) or 'ignored'.
        reasons: why the level is what it is, in words.
        reference_rows: rows behind the reference (present and missing).
        current_rows: rows behind the current data.
        stats: every statistic computed (None where undefined).
        bins: the PSI bins: labels, reference and current shares.
        unseen: current categories the reference never had, with counts.
        importance: the column's share of the model's importance, when known.
        severity: how far past its thresholds the column is (1 = at a threshold), for sorting.
    """

    name: str
    role: str
    kind: str
    level: Level
    reasons: tuple[str, ...]
    reference_rows: int
    current_rows: int
    stats: Mapping[str, float | bool | None]
    bins: Mapping[str, Any]
    unseen: Mapping[str, int] = field(default_factory=dict)
    importance: float | None = None
    severity: float = 0.0

    @property
    def drifted(self) -> bool:
        """True when the column drifted."""
        return self.level == "drift"

    @property
    def judged(self) -> bool:
        """True when the column was judged: enough current rows, and not ignored."""
        return self.level not in ("insufficient", "ignored")

    def to_dict(self) -> dict[str, Any]:
        """The column's drift as JSON-safe data."""
        return {
            "name": self.name,
            "role": self.role,
            "kind": self.kind,
            "level": self.level,
            "drifted": self.drifted,
            "reasons": list(self.reasons),
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "stats": {k: json_safe(v) for k, v in self.stats.items()},
            "bins": self.bins,
            "unseen": dict(self.unseen),
            "importance": self.importance,
            "severity": json_safe(self.severity),
        }


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


def compare_column(
    name: str,
    reference: ColumnProfile,
    current: ColumnProfile,
    *,
    thresholds: Thresholds | None = None,
    bins: int = 10,
    role: str = "feature",
    reference_values: Array | None = None,
    current_values: Array | None = None,
    importance: float | None = None,
) -> ColumnDrift:
    """Compare one column's current profile with its reference.

    Raises:
        ProfileError: the two profiles are of different kinds or edges.
    """
    thresholds = thresholds or Thresholds()
    if isinstance(reference, NumericProfile) and isinstance(current, NumericProfile):
        if reference.edges != current.edges:
            raise ProfileError(f"column {name!r}: the current profile is not on the reference's edges")
        return _numeric(
            name,
            role=role,
            ref=reference,
            cur=current,
            t=thresholds,
            bins=bins,
            ref_values=reference_values,
            cur_values=current_values,
            importance=importance,
        )
    if isinstance(reference, CategoricalProfile) and isinstance(current, CategoricalProfile):
        return _categorical(name, role=role, ref=reference, cur=current, t=thresholds, importance=importance)
    raise ProfileError(f"column {name!r} is {reference.kind} in the reference but {current.kind} now")


# -- numeric ----------------------------------------------------------------------------------------
def _numeric(
    name: str,
    *,
    role: str,
    ref: NumericProfile,
    cur: NumericProfile,
    t: Thresholds,
    bins: int,
    ref_values: Array | None,
    cur_values: Array | None,
    importance: float | None,
) -> ColumnDrift:
    edges, groups = psi_bins(ref, bins)
    r_fine = np.asarray(ref.counts, dtype=np.float64)
    c_fine = np.asarray(cur.counts, dtype=np.float64)
    r = np.bincount(groups, weights=r_fine, minlength=len(edges) + 1)
    c = np.bincount(groups, weights=c_fine, minlength=len(edges) + 1)
    n_ref, n_cur = r.sum(), c.sum()
    out: dict[str, float | bool | None] = {}
    out.update(_missing_stats(ref.missing, ref.count, cur.missing, cur.count))
    out["reference_mean"] = ref.mean if ref.count else None
    out["current_mean"] = cur.mean if cur.count else None
    out["reference_std"] = math.sqrt(ref.variance) if ref.count else None
    out["current_std"] = math.sqrt(cur.variance) if cur.count else None
    bins_info: dict[str, Any] = {"edges": [float(e) for e in edges], "reference": [], "current": []}
    if n_ref > 0 and n_cur > 0:
        p, q = r / n_ref, c / n_cur
        bins_info["reference"], bins_info["current"] = p.tolist(), q.tolist()
        out["psi"] = psi(p, q)
        out["psi_chi2_p"] = homogeneity(r, c)[1]
        out["js"] = float(jensenshannon(p, q, base=2))
        exact = ref_values is not None and cur_values is not None
        if exact:
            assert ref_values is not None
            assert cur_values is not None
            ks, ks_p, wasserstein = exact_ks_wasserstein(present(ref_values), present(cur_values))
            out["ks"], out["ks_upper"], out["ks_p"], out["wasserstein"] = ks, ks, ks_p, wasserstein
        else:
            low, high = grid_ks(r_fine, c_fine)
            out["ks"], out["ks_upper"] = low, high
            out["ks_p"] = ks_pvalue(low, n_ref, n_cur)
            out["wasserstein"] = grid_wasserstein(ref, cur)
        out["ks_exact"] = exact
        scale = math.sqrt(ref.variance) if ref.variance > 0 else 1.0
        out["wasserstein_norm"] = float(out["wasserstein"]) / scale  # type: ignore[arg-type]  # set just above
    level, reasons, severity = _judge_numeric(out, t, n_cur, ref.count + ref.missing, cur.count + cur.missing)
    return ColumnDrift(
        name=name,
        role=role,
        kind="numeric",
        level=level,
        reasons=tuple(reasons),
        reference_rows=ref.count + ref.missing,
        current_rows=cur.count + cur.missing,
        stats=out,
        bins=bins_info,
        importance=importance,
        severity=severity,
    )


def _judge_numeric(
    s: Mapping[str, Any], t: Thresholds, present: float, ref_rows: int, cur_rows: int
) -> tuple[Level, list[str], float]:
    if t.ignore:
        return "ignored", ["ignored by the settings"], 0.0
    if cur_rows < t.min_rows or present == 0:
        return "insufficient", [f"{cur_rows} current rows; at least {t.min_rows} are needed to judge"], 0.0
    reasons: list[str] = []
    level: Level = "ok"
    severity = 0.0
    significant = _below(s.get("psi_chi2_p"), t.alpha) or _below(s.get("ks_p"), t.alpha)
    psi_value = float(s.get("psi") or 0.0)
    w = float(s.get("wasserstein_norm") or 0.0)
    severity = max(psi_value / t.psi[1], w / t.wasserstein)
    if significant and psi_value >= t.psi[1]:
        level = "drift"
        reasons.append(f"PSI {psi_value:.3f} >= {t.psi[1]}")
    if significant and w >= t.wasserstein:
        level = "drift"
        reasons.append(f"Wasserstein {w:.3f} reference std >= {t.wasserstein}")
    if level == "ok" and significant and psi_value >= t.psi[0]:
        level = "warn"
        reasons.append(f"PSI {psi_value:.3f} >= {t.psi[0]}")
    missing_level, missing_reason, missing_severity = _judge_missing(s, t)
    if missing_reason:
        reasons.append(missing_reason)
        level = "drift" if missing_level == "drift" else level
    severity = max(severity, missing_severity)
    if not reasons:
        reasons.append("within thresholds" if significant else "no significant difference")
    return level, reasons, severity


# -- categorical ------------------------------------------------------------------------------------
def _categorical(
    name: str,
    *,
    role: str,
    ref: CategoricalProfile,
    cur: CategoricalProfile,
    t: Thresholds,
    importance: float | None,
) -> ColumnDrift:
    categories = list(ref.counts) + [k for k in cur.counts if k not in ref.counts]
    r = np.asarray([ref.counts.get(k, 0) for k in categories], dtype=np.float64)
    c = np.asarray([cur.counts.get(k, 0) for k in categories], dtype=np.float64)
    n_ref, n_cur = r.sum(), c.sum()
    out: dict[str, float | bool | None] = {}
    out.update(_missing_stats(ref.missing, ref.count, cur.missing, cur.count))
    unseen = {k: int(cur.counts[k]) for k in categories if k not in ref.counts}
    bins_info: dict[str, Any] = {"labels": categories, "reference": [], "current": []}
    if n_ref > 0 and n_cur > 0:
        p, q = r / n_ref, c / n_cur
        bins_info["reference"], bins_info["current"] = p.tolist(), q.tolist()
        out["js"] = float(jensenshannon(p, q, base=2))
        out["psi"] = psi(p, q)
        out["chi2"], out["chi2_p"] = homogeneity(r, c)
        out["unseen_share"] = sum(unseen.values()) / n_cur
        out["unseen_p"] = unseen_pvalue(sum(unseen.values()), n_ref, n_cur)
    cur_rows = cur.count + cur.missing
    level: Level
    reasons: list[str] = []
    severity = 0.0
    if t.ignore:
        level, reasons = "ignored", ["ignored by the settings"]
    elif cur_rows < t.min_rows or n_cur == 0:
        level, reasons = (
            "insufficient",
            [f"{cur_rows} current rows; at least {t.min_rows} are needed to judge"],
        )
    else:
        level = "ok"
        js = float(out.get("js") or 0.0)
        significant = _below(out.get("chi2_p"), t.alpha)
        unseen_share = float(out.get("unseen_share") or 0.0)
        unseen_total = sum(unseen.values())
        unseen_flags = (
            unseen_share >= t.unseen
            and unseen_total >= t.unseen_count
            and _below(out.get("unseen_p"), t.alpha)
        )
        severity = max(js / t.js, unseen_share / t.unseen if unseen_flags else 0.0)
        if significant and js >= t.js:
            level = "drift"
            reasons.append(f"Jensen-Shannon {js:.3f} >= {t.js}")
        if unseen:
            shown = ", ".join(sorted(unseen, key=lambda k: -unseen[k])[:5])
            if unseen_flags:
                level = "drift"
                reasons.append(
                    f"{unseen_share:.1%} of values in categories never seen in the reference ({shown})"
                )
            elif unseen_share >= t.unseen:
                reasons.append(
                    f"{unseen_total} values in categories never seen in the reference ({shown}): "
                    f"too few to flag (unseen_count {t.unseen_count}, alpha {t.alpha})"
                )
        missing_level, missing_reason, missing_severity = _judge_missing(out, t)
        if missing_reason:
            reasons.append(missing_reason)
            level = "drift" if missing_level == "drift" else level
        severity = max(severity, missing_severity)
        if not reasons:
            reasons.append("within thresholds" if significant else "no significant difference")
    return ColumnDrift(
        name=name,
        role=role,
        kind="categorical",
        level=level,
        reasons=tuple(reasons),
        reference_rows=ref.count + ref.missing,
        current_rows=cur_rows,
        stats=out,
        bins=bins_info,
        unseen=unseen,
        importance=importance,
        severity=severity,
    )


# -- shared -----------------------------------------------------------------------------------------
def _missing_stats(
    ref_missing: int, ref_present: int, cur_missing: int, cur_present: int
) -> dict[str, float | None]:
    ref_n, cur_n = ref_missing + ref_present, cur_missing + cur_present
    if ref_n == 0 or cur_n == 0:
        return {"missing_reference": None, "missing_current": None, "missing_p": None}
    _, p = homogeneity(np.array([ref_missing, ref_present]), np.array([cur_missing, cur_present]))
    return {"missing_reference": ref_missing / ref_n, "missing_current": cur_missing / cur_n, "missing_p": p}


def _judge_missing(s: Mapping[str, Any], t: Thresholds) -> tuple[str, str | None, float]:
    before, now = s.get("missing_reference"), s.get("missing_current")
    if before is None or now is None:
        return "ok", None, 0.0
    change = abs(now - before)
    severity = change / t.missing
    if change >= t.missing and _below(s.get("missing_p"), t.alpha):
        return "drift", f"missing share {before:.1%} -> {now:.1%}", severity
    return "ok", None, severity


def _below(p: Any, alpha: float) -> bool:
    return p is not None and float(p) < alpha


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
