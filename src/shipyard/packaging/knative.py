"""A Knative Service for a baked version: scale to zero, bounded concurrency, the same hardening.

This is also what Google Cloud Run runs. Knative routes one port per container: it is REST on
8080 (`http1`), which also carries the OIP REST routes and /metrics; gRPC is not routed (serve it
from the Deployment's Service). The activator holds requests while a pod starts from zero, and the
server holds the ones that reach it before the model is ready, so none is refused.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from shipyard.packaging.k8s_pod import labels, serving_container, tmp_volume
from shipyard.packaging.k8s_spec import HTTP_PORT, ServingSpec
from shipyard.packaging.kubernetes import pod_annotations

__all__ = ["knative_service"]


def knative_service(spec: ServingSpec) -> dict[str, Any]:
    """A `serving.knative.dev/v1` Service that scales from zero to `max_replicas`.

    Pod-level security settings need Knative's `kubernetes.podspec-securitycontext` flag, so the
    same settings are made on the container, which Knative takes by default. TLS ends at
    Knative's ingress: the pod serves plain HTTP whatever `spec.tls` says.
    """
    spec = replace(spec, tls=False)
    container = serving_container(
        spec, config_map=None, secret=spec.secret, ports=[{"name": "http1", "containerPort": HTTP_PORT}]
    )
    container.pop("startupProbe")  # the activator holds requests until readiness passes
    for probe in ("readinessProbe", "livenessProbe"):
        container[probe]["httpGet"]["port"] = HTTP_PORT  # Knative takes only the serving port, by number
    container.pop("imagePullPolicy")  # Knative resolves the tag to a digest once, at revision creation
    annotations = pod_annotations(spec) | {
        "autoscaling.knative.dev/min-scale": "0",
        "autoscaling.knative.dev/max-scale": str(spec.max_replicas),
        "autoscaling.knative.dev/metric": "concurrency",
        "autoscaling.knative.dev/target-utilization-percentage": str(spec.target_cpu),
    }
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": spec.name, "labels": labels(spec)},
        "spec": {
            "template": {
                "metadata": {"labels": labels(spec), "annotations": annotations},
                "spec": {
                    "containerConcurrency": spec.concurrency,
                    "timeoutSeconds": 300,
                    "serviceAccountName": spec.name,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "containers": [container],
                    "volumes": [tmp_volume()],
                },
            }
        },
    }
