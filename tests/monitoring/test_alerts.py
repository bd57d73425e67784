"""Alert rules parsed and written back; episodes opened, seen again and resolved; webhook URLs checked."""

from __future__ import annotations

import numpy as np
import pytest

from shipyard import Registry
from shipyard.errors import MonitorConfigError
from shipyard.monitoring.alerts import AlertBook, Firing, Rule, Webhook


@pytest.mark.parametrize(
    ("text", "expected"),
    [("nonsense", "unknown kind"), ("latency:p42", "p50, p95 or p99"), ("error_rate:-1", "threshold above 0"),
     ("dataset_drift:x", "takes no target")],
)  # fmt: skip
def test_malformed_rules_are_refused_with_the_reason(text: str, expected: str) -> None:
    with pytest.raises(MonitorConfigError, match=expected):
        Rule.parse(text)


def test_rules_round_trip_through_their_key() -> None:
    texts = (
        "feature_drift",
        "feature_drift:income",
        "performance_drop:roc_auc:0.02",
        "latency:p95:250",
        "error_rate:0.1",
    )
    for text in texts:
        assert Rule.parse(text).key == text
    assert np.isclose(Rule.parse("error_rate:0.1").threshold or 0, 0.1)


def test_an_episode_opens_once_counts_its_checks_and_resolves_only_when_its_kind_was_checked(
    sqlite_registry: Registry,
) -> None:
    book = AlertBook(sqlite_registry)
    drift, errors = Rule.parse("feature_drift"), Rule.parse("error_rate")
    income = Firing("feature_drift:income", "income drifted", {"psi": np.float64(0.4)})
    opened, resolved = book.observe("credit", [income], [drift, errors])
    assert [(a.rule, a.state, a.checks) for a in opened] == [("feature_drift:income", "firing", 1)]
    assert resolved == []
    assert opened[0].to_dict()["message"] == "income drifted"
    assert opened[0].to_dict()["detail"]["psi"] == 0.4
    assert book.observe("credit", [income], [drift]) == ([], [])  # seen again: no new episode
    assert [a.checks for a in book.list(model="credit")] == [2]
    assert book.observe("credit", [], [errors]) == ([], [])  # another kind checked: still firing
    opened, resolved = book.observe("credit", [], [drift])
    assert opened == []
    assert [(a.rule, a.state) for a in resolved] == [("feature_drift:income", "resolved")]
    assert resolved[0].resolved_at is not None
    assert book.list(model="credit", state="firing") == []


def test_a_webhook_url_must_be_http_or_https() -> None:
    with pytest.raises(MonitorConfigError, match="must start with http:// or https://"):
        Webhook("ftp://example.com/alerts")
