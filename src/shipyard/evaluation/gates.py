"""Gates: a YAML policy of rules a version's evaluation must pass before a protected alias moves.

    champion: production            # the alias to compare with (default: production)
    rules:
      - roc_auc >= 0.80
      - roc_auc >= champion - 0.01  # no worse than the champion by more than 0.01
      - ece_uniform <= champion * 1.1
      - recall >= 0.30 on employment=unemployed
      - fairness.country.demographic_parity_difference <= 0.10
      - robustness.attack.success_rate <= 0.40

A rule is `METRIC OP BOUND [on FEATURE=GROUP]`, OP one of `>=`, `<=`, `>`, `<`; BOUND a number or
`champion` optionally followed by `+`, `-` or `*` and a number. A metric the evaluation lacks
fails its rule, and so does a relative rule whose champion has no evaluation on the same rows;
only when no version holds the champion alias does a relative rule pass, marked as such.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import EvaluationError, NotFoundError, PolicyError
from shipyard.evaluation.evaluate import evaluate
from shipyard.evaluation.policy import Policy, Rule
from shipyard.evaluation.result import Evaluation

if TYPE_CHECKING:
    from shipyard.registry.registry import Registry

__all__ = ["GateResult", "RuleResult", "check_gates"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_NEGATED = {">=": "<", "<=": ">", ">": "<=", "<": ">="}


@dataclass(frozen=True)
class RuleResult:
    """How a version fared on one rule."""

    rule: Rule
    passed: bool
    value: float | None
    limit: float | None
    champion: float | None = None
    reason: str = ""

    def __str__(self) -> str:
        """The result in words: `roc_auc 0.71 < 0.8 (min)`, or the rule and why it has no value."""
        rule = self.rule
        where = "" if rule.feature is None else f" on {rule.feature}={rule.group}"
        if self.value is None or self.limit is None:
            verdict = "passed" if self.passed else "failed"
            return f"{rule}: {verdict}, {self.reason}" if self.reason else f"{rule}: {verdict}"
        op = rule.op if self.passed else _NEGATED[rule.op]
        kind = "min" if rule.op in (">=", ">") else "max"
        against = "" if self.champion is None else f", champion {_num(self.champion)}"
        return f"{rule.metric}{where} {_num(self.value)} {op} {_num(self.limit)} ({kind}{against})"

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-safe data."""
        return {
            "rule": self.rule.text,
            "line": self.rule.line,
            "metric": self.rule.metric,
            "slice": None if self.rule.feature is None else f"{self.rule.feature}={self.rule.group}",
            "op": self.rule.op,
            "value": self.value,
            "bound": self.limit,
            "champion": self.champion,
            "passed": self.passed,
            "reason": self.reason,
            "text": str(self),
        }


@dataclass(frozen=True)
class GateResult:
    """A version checked against a policy: each rule's value, bound and verdict.

    Args:
        ref: the version checked.
        alias: the champion alias the check was for.
        champion: the champion's `NAME:VERSION`, or None when the alias points nowhere.
        passed: every rule passed.
        results: one per rule.
        policy: the policy.
        evaluation: the evaluation the rules were checked on.
        id: the stored gate result's id.
    """

    ref: str
    alias: str
    champion: str | None
    passed: bool
    results: tuple[RuleResult, ...]
    policy: Policy
    evaluation: Evaluation
    id: int | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def failed(self) -> list[RuleResult]:
        """The rules that failed."""
        return [r for r in self.results if not r.passed]

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-safe data."""
        return {
            "id": self.id,
            "ref": self.ref,
            "alias": self.alias,
            "champion": self.champion,
            "passed": self.passed,
            "policy": {"source": self.policy.source, "text": self.policy.text},
            "rules": [r.to_dict() for r in self.results],
            "evaluation": self.evaluation.id,
            "champion_evaluation": None if self.evaluation.champion is None else self.evaluation.champion.id,
            "notes": list(self.notes),
        }


def check_gates(
    ref: str,
    policy: Policy | str | Path | None = None,
    *,
    data: Any = None,
    target: str | None = None,
    store: bool = True,
    registry: Registry | None = None,
    **evaluate_options: Any,
) -> GateResult:
    """Check a version against a policy and store the result on the version.

    With `data`, the version (and the champion) are evaluated on it first; without, the version's
    newest stored evaluation is used, and the champion's evaluation on the same rows.

    Args:
        ref: the version (`fraud:4`).
        policy: a `Policy`, or the path of a policy file (default: `Settings.gates_policy`).
        data: rows to evaluate on first (a file or rows), with `target`.
        target: the label column of `data`.
        store: keep the result on the version (a protected alias needs a stored, passing one).
        registry: the registry (the default one from the environment when omitted).
        evaluate_options: passed to `evaluate` with `data` (slices, sensitive, threshold, ...).

    Raises:
        PolicyError: the policy is malformed.
        EvaluationError: no data and no stored evaluation, or the data cannot be evaluated.
    """
    from shipyard.registry.default import default_registry

    reg = registry or default_registry()
    chosen = _policy(policy, reg)
    version = reg.get(ref)
    try:
        holder = reg.get(f"{version.name}@{chosen.champion}")
    except NotFoundError:
        holder = None
    if data is not None:
        if target is None:
            raise EvaluationError("checking gates on data needs the target column (target=... or --target)")
        current = evaluate(
            str(version.ref), data, target=target, champion=chosen.champion, registry=reg, **evaluate_options
        )
        rival = current.champion
    else:
        current, rival = _stored(reg, str(version.ref), holder.ref if holder else None)
    notes: list[str] = []
    if holder is None:
        notes.append(f"no version holds {chosen.champion!r}: relative rules have nothing to compare with")
    elif holder.version == version.version:
        rival = current
    results = tuple(
        _judge(rule, current, rival, holder is not None, current.champion_error) for rule in chosen.rules
    )
    passed = all(r.passed for r in results)
    result = GateResult(
        ref=str(version.ref),
        alias=chosen.champion,
        champion=None if holder is None else str(holder.ref),
        passed=passed,
        results=results,
        policy=chosen,
        evaluation=current,
        notes=tuple(notes),
    )
    if not store:
        return result
    from shipyard.registry.results import policy_digest

    record = reg.results.add_gate_result(
        version.ref,
        alias=chosen.champion,
        champion_version=None if holder is None else holder.version,
        policy_digest=policy_digest(chosen.text),
        passed=passed,
        body=result.to_dict(),
    )
    return replace(result, id=record.id)


def _policy(policy: Policy | str | Path | None, reg: Registry) -> Policy:
    if isinstance(policy, Policy):
        return policy
    if policy is None:
        if reg.settings.gates_policy is None:
            raise PolicyError(
                "no gates policy given; pass one (--policy gates.yaml) or set SHIPYARD_GATES_POLICY"
            )
        policy = reg.settings.gates_policy
    return Policy.read(policy)


def _stored(reg: Registry, ref: str, champion: Any) -> tuple[Evaluation, Evaluation | None]:
    records = reg.results.evaluations(ref, limit=1)
    if not records:
        raise EvaluationError(
            f"{ref} has no stored evaluation; run 'shipyard evaluate {ref} --data FILE --target COLUMN' "
            "first, or give the data to the gate check"
        )
    current = Evaluation.from_record(records[0])
    if champion is None:
        return current, None
    same = reg.results.evaluations(champion, data_fingerprint=str(current.data.get("fingerprint")), limit=1)
    return current, Evaluation.from_record(same[0]) if same else None


def _judge(
    rule: Rule, current: Evaluation, rival: Evaluation | None, has_champion: bool, rival_error: str | None
) -> RuleResult:
    value, why = _lookup(current, rule)
    if value is None:
        return RuleResult(rule, False, None, None, reason=why)
    if rule.relative is None:
        assert rule.bound is not None
        return RuleResult(rule, _OPS[rule.op](value, rule.bound), value, rule.bound)
    if not has_champion:
        return RuleResult(rule, True, value, None, reason="no champion to compare with")
    if rival is None:
        reason = rival_error or (
            f"the champion has no evaluation on the same rows (fingerprint "
            f"{str(current.data.get('fingerprint'))[:12]}); evaluate both on one data set"
        )
        return RuleResult(rule, False, value, None, reason=reason)
    theirs, why = _lookup(rival, rule)
    if theirs is None:
        return RuleResult(rule, False, value, None, reason=f"champion {rival.ref}: {why}")
    limit = rule.limit(theirs)
    return RuleResult(rule, _OPS[rule.op](value, limit), value, limit, champion=theirs)


def _lookup(evaluation: Evaluation, rule: Rule) -> tuple[float | None, str]:
    """The rule's metric in the evaluation, or None and why it is not there."""
    if rule.feature is not None:
        cuts = [e for e in evaluation.slices.values() if e.get("feature") == rule.feature]
        if not cuts:
            return None, (
                f"{evaluation.ref} was not evaluated by slices of {rule.feature!r}; evaluate with "
                f"--slice {rule.feature}"
            )
        # A feature may be sliced more than one way (`age` and `age:18,30,50`): any cut with the group.
        groups = {str(g["value"]): g for cut in reversed(cuts) for g in cut.get("groups", [])}
        group = groups.get(str(rule.group))
        if group is None:
            return None, f"slice {rule.feature} has no group {rule.group!r}; its groups are {sorted(groups)}"
        return _path(group.get("metrics", {}), _parts(rule.metric), evaluation.ref)
    head, _, rest = rule.metric.partition(".")
    parts = rest.split(".")
    if head == "ci":
        return _path(evaluation.confidence, parts, evaluation.ref)
    if head == "fairness":
        if parts[0] not in evaluation.fairness:
            return (
                None,
                f"{evaluation.ref} has no fairness measures for {parts[0]!r}; evaluate with "
                f"--sensitive {parts[0]}",
            )
        return _path(evaluation.fairness, parts, evaluation.ref)
    if head == "robustness":
        if not evaluation.robustness:
            return None, f"{evaluation.ref} was evaluated without robustness checks"
        return _path(evaluation.robustness, parts, evaluation.ref)
    if head == "data":
        return _path(evaluation.data, parts, evaluation.ref)
    return _path(evaluation.metrics, _parts(rule.metric), evaluation.ref)


def _parts(metric: str) -> list[str]:
    """The keys of a metric's path; class labels and quantiles may hold dots themselves."""
    if metric.startswith("residual_quantiles."):
        return ["residual_quantiles", metric.removeprefix("residual_quantiles.")]
    if metric.startswith("per_class."):
        label, _, name = metric.removeprefix("per_class.").rpartition(".")
        return ["per_class", label, name]
    return metric.split(".")


def _path(data: Any, parts: Sequence[str], where: str) -> tuple[float | None, str]:
    node = data
    for part in parts:
        if not isinstance(node, Mapping) or part not in node:
            return None, f"{where}'s evaluation has no {'.'.join(parts)}"
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, int | float):
        return None, f"{where}'s evaluation has no number for {'.'.join(parts)}"
    if math.isnan(node):  # not measurable on these rows
        return None, f"{'.'.join(parts)} of {where} is not defined on these rows"
    return float(node), ""


def _num(value: float) -> str:
    return f"{value:.4g}"
