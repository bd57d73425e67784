"""A gates policy: a YAML file of rules a version's evaluation must pass (`evaluation/gates.py`).

    champion: production            # the alias to compare with (default: production)
    rules:
      - roc_auc >= 0.80
      - roc_auc >= champion - 0.01  # no worse than the champion by more than 0.01
      - recall >= 0.30 on employment=unemployed

A rule is `METRIC OP BOUND [on FEATURE=GROUP]`, OP one of `>=`, `<=`, `>`, `<`; BOUND a number or
`champion` optionally followed by `+`, `-` or `*` and a number. The plain metric names come from
the metric table (`core/metric_table.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from shipyard.core import metric_table
from shipyard.errors import PolicyError
from shipyard.evaluation.evaluate import DEFAULT_CHAMPION

__all__ = ["Policy", "Rule", "metric_names"]

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
