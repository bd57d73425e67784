"""The analysis of a rollout step: the new arm against the stable arm on the same window of events.

Each rule gives *pass*, *fail* or *wait*. Too few requests (or labels) on either arm means wait,
never a verdict, so a canary at one request a minute is neither promoted nor rolled back on noise.
Error-rate and accuracy differences must also be significant (a one-sided two-proportion test).
The step's verdict is fail if any rule fails, pass if every rule that can judge passes, else wait.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

from shipyard.core.batch import Batch
from shipyard.monitoring.drift import drift
from shipyard.rollout.plan import AnalysisRules

__all__ = ["Check", "Verdict", "analyse"]

Status = Literal["pass", "fail", "wait"]
SHADOW_PROTOCOL = "shadow"


@dataclass(frozen=True)
class Check:
    """One rule's outcome."""

    rule: str
    status: Status
    reason: str
    value: float | None = None
    limit: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The check as JSON-safe data."""
        return {
            "rule": self.rule,
            "status": self.status,
            "reason": self.reason,
            "value": self.value,
            "limit": self.limit,
        }


@dataclass(frozen=True)
class Verdict:
    """The step's outcome: every check, and how many requests each arm had."""

    status: Status
    checks: tuple[Check, ...]
    stable_requests: int
    new_requests: int

    @property
    def reason(self) -> str:
        """The failing (or waiting) checks in words."""
        picked = [c for c in self.checks if c.status == self.status] if self.status != "pass" else []
        return "; ".join(c.reason for c in picked) or "every rule passed"

    def to_dict(self) -> dict[str, Any]:
        """The verdict as JSON-safe data (stored in the rollout history)."""
        return {
            "verdict": self.status,
            "reason": self.reason,
            "stable_requests": self.stable_requests,
            "new_requests": self.new_requests,
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass(frozen=True)
class _Arm:
    events: pa.Table
    requests: int
    errors: int
    latency_ms: np.ndarray[Any, Any]  # one per request

    @functools.cached_property
    def answered(self) -> pa.Table:
        """The rows the arm answered (status 'ok')."""
        if self.events.num_rows == 0:
            return self.events
        return self.events.filter(pc.equal(self.events["status"], "ok"))

    @functools.cached_property
    def predictions(self) -> dict[tuple[str, int], Any]:
        """The predicted label or value of each answered row, by (request id, row)."""
        ok = self.answered
        if "outputs" not in ok.column_names or ok.num_rows == 0:
            return {}
        predicted = pc.struct_field(ok["outputs"], "prediction").to_pylist()
        ids, rows = ok["request_id"].to_pylist(), ok["row"].to_pylist()
        return {(i, int(r)): v for i, r, v in zip(ids, rows, predicted, strict=True)}


def analyse(
    events: pa.Table,
    *,
    stable: int,
    new: int,
    rules: AnalysisRules,
    shadow: bool = False,
    labels: Mapping[tuple[str, int], Any] | None = None,
    task: str = "classification",
    looks: int = 1,
) -> Verdict:
    """Judge the new version against the stable one on `events` (the window's prediction log).

    Args:
        events: the model's logged events of the window (`read_events`), every version.
        stable: the stable arm's version.
        new: the new arm's version (canary, shadow, or the new stable of a blue/green switch).
        rules: the thresholds and minimum sizes.
        shadow: the new arm answers copies: its events carry the 'shadow' protocol, and the stable
            arm's answers to the same requests are compared row by row.
        labels: ground truth by (request id, row), when some has arrived.
        task: 'classification' or 'regression', for agreement and performance.
        looks: how many times this step is analysed; a step analysed repeatedly must not roll a
            good version back on the chance that one of many looks comes out significant, so each
            look tests at `rules.alpha / looks` (Bonferroni), which keeps a good version's chance
            of being rolled back in a step at most `rules.alpha` per rule.
    """
    if looks > 1:
        rules = replace(rules, alpha=rules.alpha / looks)
    old = _arm(events, stable, shadow_copies=False)
    fresh = _arm(events, new, shadow_copies=shadow)
    checks = [_enough(old, fresh, rules)]
    if checks[0].status == "pass":
        checks += [
            _error_rate(old, fresh, rules),
            _latency(old, fresh, rules, 95, rules.max_latency_ratio_p95),
            _latency(old, fresh, rules, 99, rules.max_latency_ratio_p99),
            _prediction_drift(old, fresh, rules),
        ]
        if shadow:
            checks.append(_agreement(old, fresh, rules, task))
        if labels:
            checks.append(_performance(old, fresh, rules, labels, task))
    statuses = {c.status for c in checks}
    status: Status = "fail" if "fail" in statuses else "wait" if "wait" in statuses else "pass"
    return Verdict(status, tuple(checks), old.requests, fresh.requests)


def _arm(events: pa.Table, version: int, *, shadow_copies: bool) -> _Arm:
    if events.num_rows == 0 or "version" not in events.column_names:
        return _Arm(events.slice(0, 0), 0, 0, np.empty(0))
    mine = pc.equal(events["version"], version)
    copies = pc.equal(events["protocol"], SHADOW_PROTOCOL)
    keep = pc.and_(mine, copies if shadow_copies else pc.invert(copies))
    table = events.filter(keep)
    if table.num_rows == 0:
        return _Arm(table, 0, 0, np.empty(0))
    ids = table["request_id"].to_numpy(zero_copy_only=False)
    _, first = np.unique(ids, return_index=True)  # one entry per request
    status = table["status"].to_numpy(zero_copy_only=False)[first]
    latency = table["latency_ms"].to_numpy(zero_copy_only=False)[first].astype(np.float64)
    return _Arm(table, len(first), int(np.sum(status != "ok")), latency)


def _enough(old: _Arm, fresh: _Arm, rules: AnalysisRules) -> Check:
    need = rules.min_requests
    if old.requests >= need and fresh.requests >= need:
        return Check(
            "sample size",
            "pass",
            f"{fresh.requests} new and {old.requests} stable requests",
            fresh.requests,
            need,
        )
    return Check(
        "sample size",
        "wait",
        f"{fresh.requests} requests on the new version and {old.requests} on the stable one; "
        f"each needs {need} before a verdict",
        float(min(fresh.requests, old.requests)),
        float(need),
    )


def _one_sided_p(bad_new: int, n_new: int, bad_old: int, n_old: int) -> float:
    """P-value that the new share of `bad` is above the old one (two-proportion z-test)."""
    pooled = (bad_new + bad_old) / (n_new + n_old)
    if pooled in (0.0, 1.0):
        return 1.0
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_new + 1 / n_old))
    return float(stats.norm.sf((bad_new / n_new - bad_old / n_old) / se))


def _error_rate(old: _Arm, fresh: _Arm, rules: AnalysisRules) -> Check:
    new_rate, old_rate = fresh.errors / fresh.requests, old.errors / old.requests
    increase = new_rate - old_rate
    p = _one_sided_p(fresh.errors, fresh.requests, old.errors, old.requests)
    failed = increase > rules.max_error_rate_increase and p < rules.alpha
    words = f"error rate {new_rate:.2%} against {old_rate:.2%} on stable (+{increase:.2%}, p={p:.3g})"
    limit = f"at most +{rules.max_error_rate_increase:.2%}"
    return Check(
        "error rate",
        "fail" if failed else "pass",
        f"{words}; {limit}",
        increase,
        rules.max_error_rate_increase,
    )


def _latency(old: _Arm, fresh: _Arm, rules: AnalysisRules, q: int, limit: float) -> Check:
    new_q, old_q = float(np.percentile(fresh.latency_ms, q)), float(np.percentile(old.latency_ms, q))
    ratio = new_q / old_q if old_q > 0 else 1.0
    words = f"p{q} latency {new_q:.1f} ms against {old_q:.1f} ms on stable ({ratio:.2f}x; at most {limit:g}x)"
    return Check(f"latency p{q}", "fail" if ratio > limit else "pass", words, ratio, limit)


def _outputs(arm: _Arm) -> Batch | None:
    if "outputs" not in arm.answered.column_names:
        return None
    struct = arm.answered["outputs"].combine_chunks()
    if not isinstance(struct, pa.StructArray) or struct.type.num_fields == 0 or len(struct) == 0:
        return None
    return Batch.from_columns(
        {
            struct.type.field(i).name: struct.field(i).to_numpy(zero_copy_only=False)
            for i in range(struct.type.num_fields)
        }
    )


def _prediction_drift(old: _Arm, fresh: _Arm, rules: AnalysisRules) -> Check:
    before, after = _outputs(old), _outputs(fresh)
    if before is None or after is None or not before.n_rows or not after.n_rows:
        return Check("prediction drift", "wait", "no answered rows with outputs on one of the arms yet")
    report = drift(before, after)
    scored, tests = [], 0
    for c in report.features:
        psi = c.stats.get("psi")
        if psi is None:
            continue
        found = [
            float(t) for k in ("psi_chi2_p", "ks_p", "chi2_p") if isinstance(t := c.stats.get(k), int | float)
        ]
        tests += len(found)
        scored.append((c.name, float(psi), min(found, default=1.0)))
    if not scored:
        return Check("prediction drift", "wait", "the outputs could not be compared")
    # Several outputs and several tests each: the smallest p-value is corrected for their number.
    scored = [(name, psi, min(1.0, p * max(tests, 1))) for name, psi, p in scored]
    limit = rules.max_prediction_psi
    # A PSI over the limit counts only when the shift is also significant: on small windows the
    # PSI of two samples of one distribution is often large by chance alone.
    shifted = [x for x in scored if x[1] > limit and x[2] < rules.alpha]
    name, value, p = max(shifted or scored, key=lambda x: x[1])
    words = f"PSI of the new version's {name!r} against stable is {value:.3f} (at most {limit:g}; p={p:.3g})"
    if value > limit and not shifted:
        words += f", not significant at alpha {rules.alpha:g}"
    return Check("prediction drift", "fail" if shifted else "pass", words, value, limit)


def _agreement(old: _Arm, fresh: _Arm, rules: AnalysisRules, task: str) -> Check:
    mine, theirs = fresh.predictions, old.predictions
    shared = [k for k in mine if k in theirs]
    if len(shared) < rules.min_requests:
        return Check(
            "agreement",
            "wait",
            f"{len(shared)} shadowed rows answered by both versions; {rules.min_requests} needed",
        )
    a = [mine[k] for k in shared]
    b = [theirs[k] for k in shared]
    if task == "regression":
        x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        same = np.abs(x - y) <= rules.agreement_tolerance * np.maximum(np.abs(y), 1e-12)
    else:
        same = np.asarray([p == q for p, q in zip(a, b, strict=True)])
    share = float(np.mean(same))
    words = (
        f"the shadow agrees with stable on {share:.1%} of {len(shared)} rows "
        f"(at least {rules.min_agreement:.0%})"
    )
    return Check(
        "agreement", "fail" if share < rules.min_agreement else "pass", words, share, rules.min_agreement
    )


def _performance(
    old: _Arm, fresh: _Arm, rules: AnalysisRules, labels: Mapping[tuple[str, int], Any], task: str
) -> Check:
    scored = []
    for arm in (fresh, old):
        pairs = [(p, labels[k]) for k, p in arm.predictions.items() if k in labels]
        scored.append(pairs)
    if min(len(s) for s in scored) < rules.min_labels:
        counts = f"{len(scored[0])} labelled rows on the new version and {len(scored[1])} on stable"
        return Check("performance", "wait", f"{counts}; each needs {rules.min_labels}")
    if task == "regression":
        new_mae, old_mae = (float(np.mean([abs(float(p) - float(y)) for p, y in s])) for s in scored)
        increase = (new_mae - old_mae) / old_mae if old_mae > 0 else 0.0
        words = (
            f"MAE {new_mae:.4g} against {old_mae:.4g} on stable "
            f"({increase:+.1%}; at most +{rules.max_performance_drop:.0%})"
        )
        return Check(
            "performance",
            "fail" if increase > rules.max_performance_drop else "pass",
            words,
            increase,
            rules.max_performance_drop,
        )
    wrong = [sum(str(p) != str(y) for p, y in s) for s in scored]
    sizes = [len(s) for s in scored]
    new_acc, old_acc = 1 - wrong[0] / sizes[0], 1 - wrong[1] / sizes[1]
    drop = old_acc - new_acc
    p = _one_sided_p(wrong[0], sizes[0], wrong[1], sizes[1])
    failed = drop > rules.max_performance_drop and p < rules.alpha
    words = (
        f"accuracy {new_acc:.1%} against {old_acc:.1%} on stable on labelled rows "
        f"(-{max(drop, 0):.1%}, p={p:.3g}; at most -{rules.max_performance_drop:.0%})"
    )
    return Check("performance", "fail" if failed else "pass", words, drop, rules.max_performance_drop)
