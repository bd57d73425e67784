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
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core import metric_table
from shipyard.errors import EvaluationError, NotFoundError, PolicyError
from shipyard.evaluation.evaluate import DEFAULT_CHAMPION, evaluate
from shipyard.evaluation.result import Evaluation

if TYPE_CHECKING:
    from shipyard.registry.registry import Registry

__all__ = ["GateResult", "Policy", "Rule", "RuleResult", "check_gates", "metric_names"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RULE = re.compile(
    rf"^\s*(?P<metric>[A-Za-z_][\w.\-]*)\s*(?P<op>>=|<=|>|<)\s*"
    rf"(?:(?P<number>{_NUMBER})|champion\s*(?:(?P<rel>[-+*])\s*(?P<amount>{_NUMBER}))?)"
    rf"(?:\s+on\s+(?P<feature>[^=\s]+)\s*=\s*(?P<group>.+?))?\s*$"
)
_CLASSIFICATION = {"rows", *metric_table.metric_names("classification")}
_REGRESSION = {"rows", *metric_table.metric_names("regression")}
_INTERVALS = "|".join(
    metric_table.interval_metrics("classification") + metric_table.interval_metrics("regression")
)
_PATTERNS = (
    re.compile(r"at_threshold\.(accuracy|precision|recall|f1)"),
    re.compile(r"per_class\..+\.(precision|recall|f1|support)"),
    re.compile(r"residual_quantiles\.[0-9.]+"),
    re.compile(rf"ci\.({_INTERVALS})\.(low|high)"),
    re.compile(r"data\.(rejected_share|rejected|evaluated)"),
    re.compile(
        r"fairness\.[^.]+\.(demographic_parity_difference|demographic_parity_ratio|"
        r"equal_opportunity_difference|equalized_odds_difference|mae_difference|"
        r"mean_prediction_difference)"
    ),
    re.compile(
        r"robustness\.(noise\.(stability|relative_change|mean_abs_change)|swap\.stability|"
        r"attack\.(success_rate|sanitised_share))"
    ),
)
_TOP_KEYS = ("champion", "description", "rules")
_NEGATED = {">=": "<", "<=": ">", ">": "<=", "<": ">="}


def metric_names() -> list[str]:
    """The plain metric names a rule may use (prefixed forms are listed in docs/evaluation.md)."""
    return sorted(_CLASSIFICATION | _REGRESSION)


@dataclass(frozen=True)
class Rule:
    """One rule of a policy.

    Args:
        text: the rule as written.
        line: its line in the policy file.
        metric: the metric's name (dotted for nested ones: `fairness.sex.demographic_parity_ratio`).
        op: `>=`, `<=`, `>` or `<`.
        bound: the number, or for a relative rule the amount (None for plain `champion`).
        relative: None for a fixed bound, else `+`, `-`, `*` or `=` (the champion's value itself).
        feature: the slice's feature, for a rule on a slice.
        group: the slice's group (`ES`, `[18, 30)`).
    """

    text: str
    line: int
    metric: str
    op: str
    bound: float | None
    relative: str | None = None
    feature: str | None = None
    group: str | None = None

    def __str__(self) -> str:
        return self.text.strip()

    def limit(self, champion: float) -> float:
        """The bound of a relative rule, given the champion's value."""
        amount = self.bound or 0.0
        if self.relative == "+":
            return champion + amount
        if self.relative == "-":
            return champion - amount
        if self.relative == "*":
            return champion * (self.bound if self.bound is not None else 1.0)
        return champion


@dataclass(frozen=True)
class Policy:
    """A parsed gates policy.

    Args:
        rules: the rules, in the file's order.
        champion: the alias whose version the relative rules compare with.
        text: the policy's text (its digest is what gate results record).
        source: where it was read from.
        description: free text from the file.
    """

    rules: tuple[Rule, ...]
    champion: str = DEFAULT_CHAMPION
    text: str = ""
    source: str = "<policy>"
    description: str = ""

    @classmethod
    def read(cls, path: str | Path) -> Policy:
        """Read a policy file.

        Raises:
            PolicyError: the file cannot be read, is not YAML, or a rule is malformed.
        """
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"cannot read the gates policy {file}: {exc.strerror}") from None
        return cls.parse(text, source=str(file))

    @classmethod
    def parse(cls, text: str, *, source: str = "<policy>") -> Policy:
        """Parse a policy's YAML text, naming the line of anything wrong.

        Raises:
            PolicyError: a YAML syntax error, an unknown key, a malformed rule or an unknown metric.
        """
        import yaml

        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else "?"
            began = ""
            if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
                began = f"; {exc.context} that began on line {exc.context_mark.line + 1}"
            raise PolicyError(
                f"{source} line {line}: not valid YAML ({exc.problem or exc.context}{began})"
            ) from None
        except yaml.YAMLError as exc:
            raise PolicyError(f"{source}: not valid YAML ({exc})") from None
        if not isinstance(root, yaml.MappingNode):
            line = root.start_mark.line + 1 if root is not None else 1
            raise PolicyError(
                f"{source} line {line}: expected a mapping with 'rules:' (a list of rules such as "
                "'roc_auc >= 0.8') and optionally 'champion:'"
            )
        champion, description, rules = DEFAULT_CHAMPION, "", None
        for key, value in root.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else "?"
            where = f"{source} line {key.start_mark.line + 1}"
            if name not in _TOP_KEYS:
                raise PolicyError(f"{where}: unknown key {name!r}; expected one of {list(_TOP_KEYS)}")
            if name == "rules":
                if not isinstance(value, yaml.SequenceNode):
                    raise PolicyError(f"{where}: 'rules' must be a list of rules, one '- ...' per line")
                rules = value
            elif not isinstance(value, yaml.ScalarNode):
                raise PolicyError(f"{where}: {name!r} must be a single value")
            elif name == "champion":
                champion = _alias(value.value, where)
            else:
                description = value.value
        if rules is None or not rules.value:
            raise PolicyError(f"{source}: the policy has no rules; expected 'rules:' with at least one rule")
        parsed = []
        for node in rules.value:
            line = node.start_mark.line + 1
            if not isinstance(node, yaml.ScalarNode):
                raise PolicyError(
                    f"{source} line {line}: a rule must be one line of text such as 'roc_auc >= 0.8'"
                )
            parsed.append(_rule(str(node.value), line, source))
        return cls(tuple(parsed), champion, text, source, description)


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


def _rule(text: str, line: int, source: str) -> Rule:
    match = _RULE.match(text)
    if match is None:
        raise PolicyError(
            f"{source} line {line}: rule {text!r} is malformed; expected "
            "'METRIC OP BOUND [on FEATURE=GROUP]' with OP one of >=, <=, >, < and BOUND a number or "
            "'champion [+|-|* NUMBER]', "
            "e.g. 'roc_auc >= 0.8' or 'ece_uniform <= champion * 1.1'"
        )
    metric = match["metric"]
    if not (
        metric in _CLASSIFICATION or metric in _REGRESSION or any(p.fullmatch(metric) for p in _PATTERNS)
    ):
        raise PolicyError(
            f"{source} line {line}: unknown metric {metric!r} in rule {text!r}; expected one of "
            f"{metric_names()}, or at_threshold.*, per_class.CLASS.*, ci.METRIC.low|high, "
            "fairness.FEATURE.*, robustness.*, data.rejected_share (see docs/evaluation.md)"
        )
    if match["number"] is not None:
        return Rule(
            text, line, metric, match["op"], float(match["number"]), None, match["feature"], match["group"]
        )
    relative = match["rel"] or "="
    amount = float(match["amount"]) if match["amount"] is not None else None
    return Rule(text, line, metric, match["op"], amount, relative, match["feature"], match["group"])


def _alias(value: str, where: str) -> str:
    from shipyard.core.refs import check_alias
    from shipyard.errors import RefError

    try:
        return check_alias(value)
    except RefError as exc:
        raise PolicyError(f"{where}: champion {exc}") from None


def _num(value: float) -> str:
    return f"{value:.4g}"
