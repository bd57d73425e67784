"""The step analysis on real prediction-log tables: pass, fail and wait, rule by rule."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from shipyard.core.batch import Batch, Predictions
from shipyard.monitoring.events import EventBatch, events_table
from shipyard.rollout.analysis import analyse
from shipyard.rollout.plan import AnalysisRules

RULES = AnalysisRules(min_requests=100, min_labels=50)


def traffic(
    version: int,
    requests: int,
    *,
    seed: int,
    error_share: float = 0.0,
    latency_ms: float = 2.0,
    shift: float = 0.0,
    protocol: str = "rest",
    ids: list[str] | None = None,
) -> pa.Table:
    """One-row requests to `version` as the prediction log holds them."""
    rng = np.random.default_rng(seed)
    ids = ids or [f"v{version}-{seed}-{i}" for i in range(requests)]
    failed = rng.random(requests) < error_share
    x = rng.normal(size=requests)
    score = 1 / (1 + np.exp(-(x + shift)))
    ok = ~failed
    batch = EventBatch(
        time=1_790_000_000.0,
        model="m",
        version=version,
        request_ids=[i for i, f in zip(ids, failed, strict=True) if not f]
        + [i for i, f in zip(ids, failed, strict=True) if f],
        rows=[1] * requests,
        protocols=[protocol] * requests,
        latencies_ms=list(rng.gamma(4.0, latency_ms / 4.0, requests)),
        statuses=["ok"] * int(ok.sum()) + ["rejected"] * int(failed.sum()),
        errors=[None] * int(ok.sum()) + ["model failed"] * int(failed.sum()),
        features=Batch.from_columns({"x": x[ok]}),
        predictions=Predictions(
            "classification", (score[ok] > 0.5).astype(np.int64), np.c_[1 - score[ok], score[ok]], (0, 1)
        ),
    )
    return events_table([batch])


def window(*tables: pa.Table) -> pa.Table:
    return pa.concat_tables(tables, promote_options="permissive")


def test_a_canary_like_the_stable_version_passes() -> None:
    verdict = analyse(window(traffic(1, 900, seed=1), traffic(2, 300, seed=2)), stable=1, new=2, rules=RULES)
    assert verdict.status == "pass", verdict.reason
    assert (verdict.stable_requests, verdict.new_requests) == (900, 300)


def test_too_few_requests_means_wait_even_when_every_one_failed() -> None:
    events = window(traffic(1, 900, seed=1), traffic(2, 20, seed=2, error_share=1.0))
    verdict = analyse(events, stable=1, new=2, rules=RULES)
    assert verdict.status == "wait"
    assert "20 requests on the new version" in verdict.reason


def test_a_canary_that_errors_fails_on_its_error_rate() -> None:
    events = window(traffic(1, 900, seed=1), traffic(2, 300, seed=2, error_share=0.2))
    verdict = analyse(events, stable=1, new=2, rules=RULES)
    assert verdict.status == "fail"
    assert [c.rule for c in verdict.checks if c.status == "fail"] == ["error rate"]


def test_a_canary_with_shifted_predictions_fails_on_prediction_drift() -> None:
    events = window(traffic(1, 900, seed=1), traffic(2, 300, seed=2, shift=2.0))
    verdict = analyse(events, stable=1, new=2, rules=RULES)
    assert verdict.status == "fail"
    assert "prediction drift" in {c.rule for c in verdict.checks if c.status == "fail"}


def test_a_slow_canary_fails_on_latency() -> None:
    events = window(traffic(1, 900, seed=1), traffic(2, 300, seed=2, latency_ms=10.0))
    failed = {c.rule for c in analyse(events, stable=1, new=2, rules=RULES).checks if c.status == "fail"}
    assert failed == {"latency p95", "latency p99"}


def test_a_shadow_is_compared_row_by_row_with_the_stable_answers() -> None:
    ids = [f"r{i}" for i in range(400)]
    same = window(traffic(1, 400, seed=1, ids=ids), traffic(2, 400, seed=1, ids=ids, protocol="shadow"))
    agree = next(
        c for c in analyse(same, stable=1, new=2, rules=RULES, shadow=True).checks if c.rule == "agreement"
    )
    assert (agree.status, agree.value) == ("pass", 1.0)
    other = window(traffic(1, 400, seed=1, ids=ids), traffic(2, 400, seed=5, ids=ids, protocol="shadow"))
    verdict = analyse(other, stable=1, new=2, rules=RULES, shadow=True)
    assert next(c for c in verdict.checks if c.rule == "agreement").status == "fail"


def test_labels_judge_performance_once_each_arm_has_enough() -> None:
    events = window(traffic(1, 600, seed=1), traffic(2, 600, seed=2))
    ok = events.filter(pa.compute.equal(events["status"], "ok"))
    keys = list(zip(ok["request_id"].to_pylist(), ok["row"].to_pylist(), strict=True))
    predicted = pa.compute.struct_field(ok["outputs"], "prediction").to_pylist()
    versions = ok["version"].to_pylist()
    # The stable arm is always right; the canary is right on about half its rows.
    labels = {
        k: p if v == 1 or i % 2 else 1 - p
        for i, (k, p, v) in enumerate(zip(keys, predicted, versions, strict=True))
    }
    check = next(
        c
        for c in analyse(events, stable=1, new=2, rules=RULES, labels=labels).checks
        if c.rule == "performance"
    )
    assert check.status == "fail"
    few = dict(list(labels.items())[:10])
    check = next(
        c for c in analyse(events, stable=1, new=2, rules=RULES, labels=few).checks if c.rule == "performance"
    )
    assert check.status == "wait"


@pytest.mark.parametrize("empty", [pa.table({"time": pa.array([], pa.timestamp("us", tz="UTC"))})])
def test_an_empty_window_waits(empty: pa.Table) -> None:
    assert analyse(empty, stable=1, new=2, rules=RULES).status == "wait"


def test_small_windows_of_one_distribution_do_not_fail_on_chance_psi() -> None:
    rules = AnalysisRules(min_requests=30)
    failed = []
    for seed in range(20):
        events = window(traffic(1, 150, seed=100 + seed), traffic(2, 30, seed=200 + seed))
        drift = next(
            c for c in analyse(events, stable=1, new=2, rules=rules).checks if c.rule == "prediction drift"
        )
        if drift.status == "fail":
            failed.append(drift.reason)
    assert len(failed) <= 1, failed  # alpha 0.05 over 20 windows
