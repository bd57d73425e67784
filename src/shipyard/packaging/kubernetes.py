"""Kubernetes manifests: a schedule as a CronJob that runs the same command in a pod."""

from __future__ import annotations

import re
from typing import Any

from shipyard.scheduling.schedules import Schedule

__all__ = ["kubernetes_cronjob"]


def kubernetes_cronjob(schedule: Schedule, *, image: str, secret: str | None) -> dict[str, Any]:
    """A Kubernetes CronJob that runs the same command on the same schedule.

    `concurrencyPolicy: Forbid` keeps one run at a time, and a starting deadline of one day runs a
    missed schedule once, as `shipyard scheduler` does.
    """
    container: dict[str, Any] = {
        "name": "shipyard",
        "image": image,
        "command": ["shipyard"],
        "args": list(schedule.args),
    }
    if secret:
        container["envFrom"] = [{"secretRef": {"name": secret}}]  # SHIPYARD_DB_URL, SHIPYARD_STORE_URL
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": _cronjob_name(schedule.name),
            "labels": {"app.kubernetes.io/managed-by": "shipyard"},
            "annotations": {"shipyard.dev/schedule": schedule.name},
        },
        "spec": {
            "schedule": schedule.cron,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 86400,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 5,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 0,
                    "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
                }
            },
        },
    }


def _cronjob_name(name: str) -> str:
    """A schedule's name as Kubernetes takes it: lower case, letters, digits and '-', at most 52."""
    safe = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:52].rstrip("-")
    return safe or "shipyard-schedule"
