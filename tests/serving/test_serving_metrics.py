"""Metrics of several workers, combined the way each figure means."""

from __future__ import annotations

from pathlib import Path

from shipyard.serving.metrics import Metrics


def test_workers_figures_are_summed_but_readiness_and_generation_show_the_laggard(tmp_path: Path) -> None:
    first, second = Metrics(tmp_path, worker=0), Metrics(tmp_path, worker=1)
    for metrics, ready, generation, load in ((first, 1.0, 3.0, 0.5), (second, 0.0, 2.0, 0.8)):
        metrics.inc("shipyard_predictions", ("api", "2"), 10)
        metrics.set("shipyard_model_ready", ("api", "2"), ready)
        metrics.set("shipyard_deployment_generation", ("api",), generation)
        metrics.set("shipyard_model_load_seconds", ("api", "2"), load)
        metrics.set("shipyard_arm_weight", ("api", "2", "canary"), 25.0)
        metrics.set_total("shipyard_events_dropped", (), 4.0)
        metrics.inflight = 3
        metrics.publish()
    merged = first.merged()
    assert merged["counters"]["shipyard_predictions"][("api", "2")] == 20
    assert merged["counters"]["shipyard_events_dropped"][()] == 8
    assert merged["gauges"]["shipyard_inflight_requests"][()] == 6
    assert merged["gauges"]["shipyard_model_ready"][("api", "2")] == 0.0  # not ready on every worker
    assert merged["gauges"]["shipyard_deployment_generation"][("api",)] == 2.0
    assert merged["gauges"]["shipyard_model_load_seconds"][("api", "2")] == 0.8
    assert merged["gauges"]["shipyard_arm_weight"][("api", "2", "canary")] == 25.0
    text = first.render().decode()
    assert "shipyard_events_dropped_total 8.0" in text
    assert 'shipyard_deployment_generation{model="api"} 2.0' in text
