"""Kubernetes manifests: the serving set's objects and a schedule as a CronJob, as plain dicts.

Every function here is pure: settings in, one manifest out. `k8s_tree.render` lays them out as
a kustomize base with overlays; `shipyard schedule export --k8s` prints one CronJob alone.
"""

from __future__ import annotations

from typing import Any

from shipyard.packaging.k8s_pod import (
    CONTAINER,
    container_security,
    labels,
    pod_security,
    selector,
    serving_container,
    tmp_volume,
    volumes,
)
from shipyard.packaging.k8s_spec import GRPC_PORT, HTTP_PORT, ServingSpec, dns_label
from shipyard.scheduling.schedules import Schedule

__all__ = [
    "autoscaler",
    "config_map",
    "config_map_name",
    "cronjob_name",
    "deployment",
    "disruption_budget",
    "kubernetes_cronjob",
    "network_policy",
    "pod_annotations",
    "service",
    "service_account",
]

#: What a scheduled command's pod may use: a batch run or an evaluation, not a server.
_JOB_RESOURCES = {
    "requests": {"cpu": "250m", "memory": "512Mi"},
    "limits": {"cpu": "1000m", "memory": "1024Mi"},
}


def _meta(spec: ServingSpec, name: str, component: str = "server") -> dict[str, Any]:
    return {"name": name, "labels": labels(spec, component)}


def config_map_name(spec: ServingSpec) -> str:
    """The ConfigMap of non-secret settings."""
    return f"{spec.name}-config"


def service_account(spec: ServingSpec) -> dict[str, Any]:
    """The pods' own identity, with no API token mounted: Shipyard never calls the Kubernetes API."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(spec, spec.name),
        "automountServiceAccountToken": False,
    }


def config_map(spec: ServingSpec) -> dict[str, Any]:
    """Settings that are not secret: the home on the writable /tmp, unbuffered logs."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(spec, config_map_name(spec)),
        "data": {"SHIPYARD_HOME": "/tmp/shipyard", "PYTHONUNBUFFERED": "1"},
    }


def pod_annotations(spec: ServingSpec) -> dict[str, str]:
    """Where Prometheus scrapes the pod's metrics."""
    found = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(HTTP_PORT),
        "prometheus.io/path": "/metrics",
    }
    if spec.tls:
        found["prometheus.io/scheme"] = "https"
    return found


def deployment(
    spec: ServingSpec, *, secret: str | None = None, tls_secret: str | None = None
) -> dict[str, Any]:
    """The serving pods: hardened, probed, sized, spread across nodes when there are two or more.

    Args:
        secret / tls_secret: the Secrets' names (the spec's by default; an overlay prefixes them).
    """
    pod: dict[str, Any] = {
        "serviceAccountName": spec.name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
        "securityContext": pod_security(),
        "containers": [
            serving_container(spec, config_map=config_map_name(spec), secret=secret or spec.secret)
        ],
        "volumes": volumes(spec, tls_secret=tls_secret or spec.tls_secret),
    }
    if spec.min_replicas >= 2:
        pod.update(_spread(spec))
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(spec, spec.name),
        "spec": {
            "replicas": spec.min_replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector(spec)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels(spec), "annotations": pod_annotations(spec)},
                "spec": pod,
            },
        },
    }


def _spread(spec: ServingSpec) -> dict[str, Any]:
    """Replicas on different nodes (and zones) when the cluster has them, so one node's loss leaves some."""
    match = {"matchLabels": selector(spec)}
    return {
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": key,
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": match,
            }
            for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
        ],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": match},
                    }
                ]
            }
        },
    }


def service(spec: ServingSpec) -> dict[str, Any]:
    """REST (8080, `http`) and gRPC (8081, `grpc`) inside the cluster."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(spec, spec.name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(spec),
            "ports": [
                {
                    "name": "http",
                    "port": HTTP_PORT,
                    "targetPort": "http",
                    "protocol": "TCP",
                    "appProtocol": "https" if spec.tls else "http",
                },
                {
                    "name": "grpc",
                    "port": GRPC_PORT,
                    "targetPort": "grpc",
                    "protocol": "TCP",
                    "appProtocol": "grpc",
                },
            ],
        },
    }


def autoscaler(spec: ServingSpec) -> dict[str, Any]:
    """Replicas between the bounds by CPU utilisation; scaling down waits five quiet minutes."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(spec, spec.name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
            "minReplicas": spec.min_replicas,
            "maxReplicas": spec.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": spec.target_cpu},
                    },
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }


def disruption_budget(spec: ServingSpec) -> dict[str, Any]:
    """At least one pod stays up through a node drain or a cluster upgrade."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(spec, spec.name),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": selector(spec)}},
    }


def network_policy(spec: ServingSpec) -> dict[str, Any]:
    """Traffic in only to the serving ports; out only to what the pods need.

    A baked pod needs nothing outside itself: no egress at all. A following pod reaches DNS, the
    metadata database and the S3 endpoint.
    """
    egress: list[dict[str, Any]] = []
    if spec.following:
        egress = [
            {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
            {"ports": [{"protocol": "TCP", "port": spec.db_port}]},
            {"ports": [{"protocol": "TCP", "port": spec.s3_port}]},
        ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(spec, spec.name),
        "spec": {
            "podSelector": {"matchLabels": selector(spec)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {"ports": [{"protocol": "TCP", "port": HTTP_PORT}, {"protocol": "TCP", "port": GRPC_PORT}]}
            ],
            "egress": egress,
        },
    }


def kubernetes_cronjob(
    schedule: Schedule,
    *,
    image: str,
    secret: str | None,
    service_account: str | None = None,
    instance: str | None = None,
) -> dict[str, Any]:
    """A Kubernetes CronJob that runs the same command on the same schedule, hardened as a server is.

    `concurrencyPolicy: Forbid` keeps one run at a time, and a starting deadline of one day runs a
    missed schedule once, as `shipyard scheduler` does.

    Args:
        secret: a Secret holding SHIPYARD_DB_URL, SHIPYARD_STORE_URL and the S3 credentials.
        service_account: the pods' ServiceAccount (the cluster's default when None).
        instance: the serving set the schedule belongs to, as a label.
    """
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": "Always",
        "command": ["shipyard"],
        "args": list(schedule.args),
        "env": [{"name": "SHIPYARD_HOME", "value": "/tmp/shipyard"}],
    }
    if secret:
        container["envFrom"] = [{"secretRef": {"name": secret}}]  # SHIPYARD_DB_URL, SHIPYARD_STORE_URL
    container.update(
        resources=_JOB_RESOURCES,
        securityContext=container_security(),
        volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}],
    )
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security(),
        "containers": [container],
        "volumes": [tmp_volume()],
    }
    if service_account:
        pod["serviceAccountName"] = service_account
    job_labels = {
        "app.kubernetes.io/name": "shipyard",
        "app.kubernetes.io/component": "schedule",
        "app.kubernetes.io/managed-by": "shipyard",
    }
    if instance:
        job_labels["app.kubernetes.io/instance"] = instance
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": cronjob_name(schedule.name),
            "labels": job_labels,
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
                    "template": {"metadata": {"labels": job_labels}, "spec": pod},
                }
            },
        },
    }


def cronjob_name(name: str) -> str:
    """A schedule's name as Kubernetes takes it: lower case, letters, digits and '-', at most 52."""
    return dns_label(name, limit=52, fallback="shipyard-schedule")
