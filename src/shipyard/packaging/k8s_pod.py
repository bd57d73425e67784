"""The hardened pod every Shipyard manifest runs: one container, its probes, its security context.

The Deployment, the CronJobs of schedules, the Knative Service and the KServe runtime all take
their container and pod settings from here, so a hardening line is written once. Each line's
reason is in docs/deploy.md ("Kubernetes: shipyard k8s").
"""

from __future__ import annotations

from typing import Any

from shipyard.packaging.k8s_spec import BUNDLE_PATH, GRPC_PORT, HTTP_PORT, RUN_AS, ServingSpec

__all__ = [
    "CONTAINER",
    "SECRET_KEYS",
    "TLS_PATH",
    "container_security",
    "labels",
    "pod_security",
    "probes",
    "resources",
    "secret_env",
    "selector",
    "serve_args",
    "serving_container",
    "tmp_volume",
    "volumes",
]

#: The container's name in every pod.
CONTAINER = "shipyard"
#: Where the TLS Secret is mounted.
TLS_PATH = "/etc/shipyard/tls"
#: Keys of the Secret a following pod reads, and whether the pod needs each to start.
SECRET_KEYS: tuple[tuple[str, bool], ...] = (
    ("SHIPYARD_DB_URL", True),
    ("SHIPYARD_STORE_URL", True),
    ("AWS_ACCESS_KEY_ID", True),
    ("AWS_SECRET_ACCESS_KEY", True),
    ("AWS_ENDPOINT_URL", False),
    ("AWS_DEFAULT_REGION", False),
    ("SHIPYARD_API_KEY", False),
    ("SHIPYARD_ENCRYPTION_KEY", False),
)


def selector(spec: ServingSpec, component: str = "server") -> dict[str, str]:
    """The labels that pick this set's pods (never changed once applied: selectors are immutable)."""
    return {
        "app.kubernetes.io/name": "shipyard",
        "app.kubernetes.io/instance": spec.name,
        "app.kubernetes.io/component": component,
    }


def labels(spec: ServingSpec, component: str = "server") -> dict[str, str]:
    """Every object's labels: the selector's, who manages it, and what it serves."""
    served = {"shipyard.dev/model": spec.model}
    if spec.deployment is not None:
        served["shipyard.dev/deployment"] = spec.deployment
    else:
        served["shipyard.dev/version"] = str(spec.version)
    return selector(spec, component) | {"app.kubernetes.io/managed-by": "shipyard"} | served


def pod_security() -> dict[str, Any]:
    """The pod's security context: never root, the image's user, the kernel's default syscall filter."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> dict[str, Any]:
    """The container's: read-only root, no privilege gained, no capability kept.

    Only fields Knative accepts on a container (it refuses `privileged`, which is false unless set).
    """
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(spec: ServingSpec) -> dict[str, Any]:
    """CPU and memory requests and limits."""
    return {
        "requests": {"cpu": f"{spec.cpu_request}m", "memory": f"{spec.memory_request}Mi"},
        "limits": {"cpu": f"{spec.cpu_limit}m", "memory": f"{spec.memory_limit}Mi"},
    }


def probes(spec: ServingSpec, *, port: int | str = "http") -> dict[str, Any]:
    """Startup and readiness on `/readyz` (the model is loaded), liveness on `/healthz`.

    The startup probe allows two minutes for a model to load before liveness may restart the pod.
    """
    scheme = "HTTPS" if spec.tls else "HTTP"

    def get(path: str, **timing: int) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": port, "scheme": scheme}, "timeoutSeconds": 2, **timing}

    return {
        "startupProbe": get("/readyz", periodSeconds=2, failureThreshold=60),
        "readinessProbe": get("/readyz", periodSeconds=5, failureThreshold=2),
        "livenessProbe": get("/healthz", periodSeconds=10, failureThreshold=3),
    }


def serve_args(spec: ServingSpec) -> list[str]:
    """`shipyard` arguments: serve the bundle (baked) or the deployment (following) on both ports."""
    source = ["--deployment", spec.deployment] if spec.deployment is not None else ["--bundle", BUNDLE_PATH]
    args = [
        "serve",
        *source,
        "--host",
        "0.0.0.0",
        "--port",
        str(HTTP_PORT),
        "--grpc-port",
        str(GRPC_PORT),
        "--workers",
        str(spec.workers),
        "--model-threads",
        str(spec.model_threads),
    ]
    if spec.tls:
        args += ["--tls-cert", f"{TLS_PATH}/tls.crt", "--tls-key", f"{TLS_PATH}/tls.key"]
    return args


def tmp_volume() -> dict[str, Any]:
    """The only writable place: `/tmp` (SHIPYARD_HOME is /tmp/shipyard), bounded in size."""
    return {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}


def secret_env(spec: ServingSpec, secret: str) -> list[dict[str, Any]]:
    """A following pod's settings from the Secret, key by key (the optional ones may be absent)."""
    env: list[dict[str, Any]] = []
    for key, required in SECRET_KEYS:
        ref: dict[str, Any] = {"name": secret, "key": key}
        if not required:
            ref["optional"] = True
        env.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
    return env


def serving_container(
    spec: ServingSpec, *, config_map: str | None, secret: str, ports: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The serving container: the command, ports, settings, resources, probes and security context.

    Args:
        config_map: the ConfigMap of non-secret settings, or None to set them inline.
        secret: the Secret a following set reads its store and credentials from.
        ports: the container's ports; by default `http` (8080) and `grpc` (8081).
    """
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        "imagePullPolicy": "Always",
        "command": ["shipyard"],
        "args": serve_args(spec),
        "ports": ports
        or [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
        ],
    }
    if config_map is not None:
        container["envFrom"] = [{"configMapRef": {"name": config_map}}]
    else:
        container["env"] = [{"name": "SHIPYARD_HOME", "value": "/tmp/shipyard"}]
    if spec.following:
        container.setdefault("env", []).extend(secret_env(spec, secret))
    container["resources"] = resources(spec)
    container.update(probes(spec))
    container["securityContext"] = container_security()
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    if spec.tls:
        mounts.append({"name": "tls", "mountPath": TLS_PATH, "readOnly": True})
    container["volumeMounts"] = mounts
    return container


def volumes(spec: ServingSpec, *, tls_secret: str) -> list[dict[str, Any]]:
    """The pod's volumes: `/tmp`, and the TLS Secret when serving over TLS."""
    found = [tmp_volume()]
    if spec.tls:
        found.append({"name": "tls", "secret": {"secretName": tls_secret, "defaultMode": 0o440}})
    return found
