"""KServe: Shipyard as a custom serving runtime speaking the Open Inference Protocol v2.

KServe takes `protocolVersion` on a predictor's model spec, not on a bare custom container, so
the Shipyard image is declared as a `ServingRuntime` (supporting the `shipyard` model format over
v2 and grpc-v2) and the `InferenceService` names it with `protocolVersion: v2`. No `storageUri`:
the version is baked into the image, so a scale-up downloads nothing (kserve#2529).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from shipyard.packaging.k8s_pod import labels, pod_security, serving_container, tmp_volume
from shipyard.packaging.k8s_spec import HTTP_PORT, ServingSpec
from shipyard.packaging.kubernetes import pod_annotations

__all__ = ["inference_service", "runtime_name", "serving_runtime"]

#: The model format the runtime declares and the InferenceService asks for.
MODEL_FORMAT = "shipyard"


def runtime_name(spec: ServingSpec) -> str:
    """The ServingRuntime's name."""
    return f"{spec.name}-runtime"


def serving_runtime(spec: ServingSpec) -> dict[str, Any]:
    """A `serving.kserve.io/v1alpha1` ServingRuntime running the baked image, hardened as the Deployment.

    TLS ends at KServe's ingress: the pod serves plain HTTP whatever `spec.tls` says.
    """
    spec = replace(spec, tls=False)
    container = serving_container(
        spec,
        config_map=None,
        secret=spec.secret,
        ports=[{"containerPort": HTTP_PORT, "protocol": "TCP"}],  # one port: KServe routes only one
    )
    container["name"] = "kserve-container"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        container[probe]["httpGet"]["port"] = HTTP_PORT
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {"name": runtime_name(spec), "labels": labels(spec)},
        "spec": {
            "supportedModelFormats": [{"name": MODEL_FORMAT, "version": "1", "autoSelect": False}],
            "protocolVersions": ["v2", "grpc-v2"],
            "annotations": pod_annotations(spec),
            "containers": [container],
            "volumes": [tmp_volume()],
        },
    }


def inference_service(spec: ServingSpec) -> dict[str, Any]:
    """A `serving.kserve.io/v1beta1` InferenceService whose predictor is the Shipyard runtime over OIP v2."""
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": spec.name,
            "labels": labels(spec),
            "annotations": {"serving.kserve.io/enable-prometheus-scraping": "true"},
        },
        "spec": {
            "predictor": {
                "minReplicas": spec.min_replicas,
                "maxReplicas": spec.max_replicas,
                "containerConcurrency": spec.concurrency,
                "serviceAccountName": spec.name,
                "automountServiceAccountToken": False,
                "securityContext": pod_security(),
                "model": {
                    "modelFormat": {"name": MODEL_FORMAT, "version": "1"},
                    "runtime": runtime_name(spec),
                    "protocolVersion": "v2",
                },
            }
        },
    }
