"""What a set of serving pods is asked to be: the settings every manifest is rendered from.

A `ServingSpec` is checked when it is made, so that every renderer (the kustomize base, its
overlays, Knative, KServe) can trust it: an impossible request (more minimum replicas than
maximum, a CPU limit too small for one worker) fails here, naming the option to change, before
a file is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, Decimal, InvalidOperation

from shipyard.errors import ConfigError

__all__ = [
    "BUNDLE_PATH",
    "GRPC_PORT",
    "HTTP_PORT",
    "MIN_WORKER_CPU",
    "RUN_AS",
    "ServingSpec",
    "cpu_millis",
    "default_image",
    "dns_label",
    "k8s_name",
    "memory_mebibytes",
]

#: Where the image holds the baked bundle (the contract with `shipyard package`).
BUNDLE_PATH = "/srv/bundle"
#: REST, MLflow, OIP REST and /metrics.
HTTP_PORT = 8080
#: OIP over gRPC.
GRPC_PORT = 8081
#: The image's user and group (`shipyard`), a high id that no host account shares.
RUN_AS = 10001
#: Millicores one worker process needs to load a model and answer at all; less is refused.
MIN_WORKER_CPU = 250

_NAME_MAX = 40  # leaves room for "staging-" and the "-config" / "-secrets" suffixes in 63
_MEMORY_UNITS = {
    "": Decimal(1),
    "k": Decimal(1000),
    "M": Decimal(1000) ** 2,
    "G": Decimal(1000) ** 3,
    "Ki": Decimal(1024),
    "Mi": Decimal(1024) ** 2,
    "Gi": Decimal(1024) ** 3,
    "Ti": Decimal(1024) ** 4,
}


@dataclass(frozen=True)
class ServingSpec:
    """The serving pods of one model version (baked) or one deployment (following).

    Args:
        name: the Kubernetes name of every object (a DNS label, see `k8s_name`).
        model: the registered model served.
        version: the baked version; None for a following set.
        deployment: the deployment a following set serves; None for a baked one.
        image: the container image (`shipyard package` builds it).
        cpu_request / cpu_limit: millicores.
        memory_request / memory_limit: mebibytes.
        model_threads: threads each worker's model may use.
        min_replicas / max_replicas: the autoscaler's bounds; the Deployment starts at the minimum.
        target_cpu: the CPU utilisation (percent of the request) the autoscaler aims at.
        tls: serve HTTPS and gRPC over TLS with the certificate of the TLS Secret.
        secret: the Secret holding the store's URLs, S3 credentials and the API key.
        tls_secret: the `kubernetes.io/tls` Secret holding `tls.crt` and `tls.key`.
        db_port / s3_port: where a following set's pods may connect (the NetworkPolicy's egress).
        concurrency: requests one Knative or KServe pod takes at once before another is started.
    """

    name: str
    model: str
    version: int | None
    deployment: str | None
    image: str
    cpu_request: int = 1000
    cpu_limit: int = 1000
    memory_request: int = 1024
    memory_limit: int = 1024
    model_threads: int = 1
    min_replicas: int = 2
    max_replicas: int = 6
    target_cpu: int = 70
    tls: bool = False
    secret: str = ""
    tls_secret: str = ""
    db_port: int = 5432
    s3_port: int = 443
    concurrency: int = 32

    def __post_init__(self) -> None:
        if (self.version is None) == (self.deployment is None):
            raise ConfigError("a serving set is either a baked version or a following deployment, not both")
        k8s_name(self.name)
        if not self.secret:
            object.__setattr__(self, "secret", f"{self.name}-secrets")
        if not self.tls_secret:
            object.__setattr__(self, "tls_secret", f"{self.name}-tls")
        self._check_replicas()
        self._check_resources()

    @property
    def following(self) -> bool:
        """True for replicas that follow a deployment in the shared registry."""
        return self.deployment is not None

    @property
    def workers(self) -> int:
        """Worker processes that fit the CPU limit: one per `model_threads` whole CPUs, at least one."""
        return max(1, self.cpu_limit // (1000 * self.model_threads))

    def scaled(self, *, cpu_limit: int, memory_limit: int, replicas: int) -> ServingSpec:
        """The same set with other resources (requests no larger than the new limits) and replicas."""
        return replace(
            self,
            cpu_limit=cpu_limit,
            cpu_request=min(self.cpu_request, cpu_limit),
            memory_limit=memory_limit,
            memory_request=min(self.memory_request, memory_limit),
            min_replicas=replicas,
            max_replicas=max(self.max_replicas, replicas),
            model_threads=min(self.model_threads, max(1, cpu_limit // 1000)),
        )

    def _check_replicas(self) -> None:
        if self.min_replicas < 1:
            raise ConfigError(f"--min-replicas is {self.min_replicas}; expected 1 or more")
        if self.min_replicas > self.max_replicas:
            raise ConfigError(
                f"--min-replicas {self.min_replicas} is above --max-replicas {self.max_replicas}; "
                f"lower --min-replicas or raise --max-replicas to at least {self.min_replicas}"
            )
        if not 1 <= self.target_cpu <= 100:
            raise ConfigError(f"--target-cpu is {self.target_cpu}; expected a percentage from 1 to 100")
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency is {self.concurrency}; expected 1 or more requests per pod")

    def _check_resources(self) -> None:
        if self.cpu_limit < MIN_WORKER_CPU:
            raise ConfigError(
                f"--cpu-limit {self.cpu_limit}m is below one worker's need of {MIN_WORKER_CPU}m; "
                f"raise --cpu-limit to at least {MIN_WORKER_CPU}m"
            )
        if self.cpu_request > self.cpu_limit:
            raise ConfigError(
                f"--cpu-request {self.cpu_request}m is above --cpu-limit {self.cpu_limit}m; "
                "lower the request or raise the limit"
            )
        if self.memory_request > self.memory_limit:
            raise ConfigError(
                f"--memory-request {self.memory_request}Mi is above --memory-limit {self.memory_limit}Mi; "
                "lower the request or raise the limit"
            )
        if self.model_threads < 1:
            raise ConfigError(f"--model-threads is {self.model_threads}; expected 1 or more")
        whole = max(1, self.cpu_limit // 1000)
        if self.model_threads > whole:
            raise ConfigError(
                f"--model-threads {self.model_threads} needs {self.model_threads} CPUs but --cpu-limit is "
                f"{self.cpu_limit}m; lower --model-threads to {whole} or raise --cpu-limit to "
                f"{self.model_threads * 1000}m"
            )


def k8s_name(name: str) -> str:
    """`name` if Kubernetes takes it as an object name here (a DNS label of at most 40 characters).

    Raises:
        ConfigError: it is not one.
    """
    if len(name) > _NAME_MAX or not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name):
        raise ConfigError(
            f"the name is {name!r}; expected lower-case letters, digits and '-', starting with a letter, "
            f"at most {_NAME_MAX} characters (pass --name)"
        )
    return name


def dns_label(text: str, *, limit: int = _NAME_MAX, fallback: str = "shipyard") -> str:
    """`text` made a name Kubernetes takes: lower case, letters, digits and '-', at most `limit`."""
    safe = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:limit].rstrip("-")
    return safe or fallback


def default_image(model: str | None = None, version: int | None = None) -> str:
    """The image `shipyard package` tags for a version (`shipyard-MODEL:VERSION`), or Shipyard's own
    (`shipyard:RELEASE`) for pods that read the registry (following replicas, scheduled commands)."""
    if model is not None and version is not None:
        return f"shipyard-{dns_label(model)}:{version}"
    from shipyard import __version__

    return f"shipyard:{__version__}"


def cpu_millis(value: str, *, option: str) -> int:
    """A CPU quantity ('2', '0.5', '500m') in millicores.

    Raises:
        ConfigError: `value` is not one, naming `option`.
    """
    text = value.strip()
    try:
        amount = Decimal(text[:-1]) if text.endswith("m") else Decimal(text) * 1000
    except InvalidOperation:
        amount = Decimal(-1)
    if amount <= 0 or amount != amount.to_integral_value():
        raise ConfigError(f"{option} is {value!r}; expected CPUs ('2', '0.5') or millicores ('500m')")
    return int(amount)


def memory_mebibytes(value: str, *, option: str) -> int:
    """A memory quantity ('512Mi', '1Gi', '1G') in whole mebibytes (rounded up).

    Raises:
        ConfigError: `value` is not one, naming `option`.
    """
    found = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kMGT]i?|)\s*", value)
    if found is None or found.group(2) not in _MEMORY_UNITS or Decimal(found.group(1)) <= 0:
        raise ConfigError(f"{option} is {value!r}; expected a memory size such as '512Mi' or '1Gi'")
    size = Decimal(found.group(1)) * _MEMORY_UNITS[found.group(2)]
    return int((size / _MEMORY_UNITS["Mi"]).to_integral_value(rounding=ROUND_CEILING))
