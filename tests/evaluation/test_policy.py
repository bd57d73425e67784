"""The gates policy: its syntax, named lines, and the rules it parses into."""

from __future__ import annotations

import pytest

from shipyard import Policy, PolicyError
from shipyard.evaluation.policy import metric_names


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules:\n  - roc_auc >= 0.8\n  - [oops\n", r"line 4: not valid YAML .* began on line 3"),
        ("rules:\n  - roc_auc >= 0.8\n  - auroc >= 0.8\n", "line 3: unknown metric 'auroc'"),
        ("rules:\n  - roc_auc => 0.8\n", "line 2: rule 'roc_auc => 0.8' is malformed"),
        ("rules:\n  - roc_auc >= championship\n", "line 2: rule .* is malformed"),
        ("champion: production\nrulez:\n  - roc_auc >= 0.8\n", "line 2: unknown key 'rulez'"),
        ("champion: production\n", "has no rules"),
        ("- roc_auc >= 0.8\n", "line 1: expected a mapping"),
        ("champion: 'prod uction'\nrules: ['roc_auc >= 0.8']\n", "line 1: champion alias"),
    ],
)
def test_a_bad_policy_names_its_line(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Policy.parse(text, source="gates.yaml")


def test_rules_parse_into_metric_operator_bound_and_slice(policy_text: str) -> None:
    policy = Policy.parse(policy_text)
    assert policy.champion == "production"
    absolute, minus, times, sliced = policy.rules[:4]
    assert (absolute.metric, absolute.op, absolute.bound, absolute.relative, absolute.line) == (
        "roc_auc",
        ">=",
        0.55,
        None,
        3,
    )
    assert minus.limit(0.9) == pytest.approx(0.89)
    assert times.limit(0.1) == pytest.approx(0.12)
    assert (sliced.feature, sliced.group) == ("employment", "unemployed")


def test_the_plain_metric_names_are_the_metric_tables() -> None:
    from shipyard.core.metric_table import metric_names as table

    assert set(metric_names()) == {"rows", *table()}
