"""Kubernetes manifests: a schedule exported as a CronJob."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shipyard import Registry
from shipyard.packaging.kubernetes import kubernetes_cronjob
from shipyard.scheduling.schedules import Schedules
from shipyard.security.context import Context

Backdate = Callable[[Schedules, str, int], None]


@pytest.fixture
def schedules(registry: Registry) -> Schedules:
    return Schedules(Context(registry.settings, registry.meta, registry.principal, "tester"))


def test_export_as_a_kubernetes_cronjob(schedules: Schedules) -> None:
    added = schedules.add(
        "nightly", "0 2 * * *", ["batch", "run", "fraud@production", "--input", "s3://b/*.parquet"]
    )
    job = kubernetes_cronjob(added, image="registry.local/shipyard:1", secret="shipyard-store")
    spec = job["spec"]
    assert (job["kind"], spec["schedule"], spec["concurrencyPolicy"]) == ("CronJob", "0 2 * * *", "Forbid")
    container = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["batch", "run", "fraud@production", "--input", "s3://b/*.parquet"]
    assert container["envFrom"] == [{"secretRef": {"name": "shipyard-store"}}]
    odd_name = schedules.add("Nightly_Fraud", "0 2 * * *", ["batch", "list"])
    odd = kubernetes_cronjob(odd_name, image="i", secret=None)
    assert odd["metadata"]["name"] == "nightly-fraud"  # what Kubernetes takes (RFC 1123, lower case)
    assert odd["metadata"]["annotations"] == {"shipyard.dev/schedule": "Nightly_Fraud"}
