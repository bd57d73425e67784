"""One column's drift: its current profile against the reference, its statistics and its verdict.

Numeric columns get PSI, Kolmogorov-Smirnov (exact on raw samples, bounded on the profile's
grid), the Wasserstein distance and its effect size, Jensen-Shannon and the change in the missing
share; categorical ones chi-square, Jensen-Shannon, the missing share and unseen categories. A
column is flagged on effect sizes only when the difference is also significant (see
`monitoring/drift.py` for the whole method).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from shipyard.core.batch import Array
from shipyard.core.jsonsafe import json_safe
from shipyard.core.profile import CategoricalProfile, ColumnProfile, NumericProfile
from shipyard.errors import ProfileError
from shipyard.monitoring.statistics import (
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
from shipyard.monitoring.thresholds import Thresholds

__all__ = ["ColumnDrift", "Level", "compare_column"]

Level = Literal["ok", "warn", "drift", "insufficient", "ignored"]


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
        out["js"] = _jensen_shannon(p, q)
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
    if (unjudged := _unjudged(t, cur_rows, present)) is not None:
        return unjudged
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
    return _with_missing(s, t, level, reasons, severity, significant=significant)


def _unjudged(t: Thresholds, cur_rows: int, present: float) -> tuple[Level, list[str], float] | None:
    """The verdict on a column the settings ignore or with too few current rows; None otherwise."""
    if t.ignore:
        return "ignored", ["ignored by the settings"], 0.0
    if cur_rows < t.min_rows or present == 0:
        return "insufficient", [f"{cur_rows} current rows; at least {t.min_rows} are needed to judge"], 0.0
    return None


def _with_missing(
    s: Mapping[str, Any],
    t: Thresholds,
    level: Level,
    reasons: list[str],
    severity: float,
    *,
    significant: bool,
) -> tuple[Level, list[str], float]:
    """A column's verdict with its missing values' added, and a reason when there is none."""
    missing_level, missing_reason, missing_severity = _judge_missing(s, t)
    if missing_reason:
        reasons.append(missing_reason)
        level = "drift" if missing_level == "drift" else level
    if not reasons:
        reasons.append("within thresholds" if significant else "no significant difference")
    return level, reasons, max(severity, missing_severity)


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
        out["js"] = _jensen_shannon(p, q)
        out["psi"] = psi(p, q)
        out["chi2"], out["chi2_p"] = homogeneity(r, c)
        out["unseen_share"] = sum(unseen.values()) / n_cur
        out["unseen_p"] = unseen_pvalue(sum(unseen.values()), n_ref, n_cur)
    cur_rows = cur.count + cur.missing
    level, reasons, severity = _unjudged(t, cur_rows, n_cur) or _judge_categorical(out, unseen, t)
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


def _judge_categorical(
    s: Mapping[str, Any], unseen: Mapping[str, int], t: Thresholds
) -> tuple[Level, list[str], float]:
    reasons: list[str] = []
    level: Level = "ok"
    js = float(s.get("js") or 0.0)
    significant = _below(s.get("chi2_p"), t.alpha)
    unseen_share = float(s.get("unseen_share") or 0.0)
    unseen_total = sum(unseen.values())
    unseen_flags = (
        unseen_share >= t.unseen and unseen_total >= t.unseen_count and _below(s.get("unseen_p"), t.alpha)
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
    return _with_missing(s, t, level, reasons, severity, significant=significant)


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


def _jensen_shannon(p: Array, q: Array) -> float:
    """The Jensen-Shannon distance in bits; scipy.spatial is imported on first use, not when a
    server starts."""
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(p, q, base=2))
