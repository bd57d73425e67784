"""The folder `shipyard k8s` writes: a kustomize base, `staging` and `production` overlays, and
the serverless manifests; written whole into a new folder or not at all.

    base/                 kustomization.yaml and one file per object (CronJobs with --schedules)
    overlays/staging/     one replica, smaller resources, names and Secrets prefixed `staging-`
    overlays/production/  two replicas or more, a PodDisruptionBudget
    knative/service.yaml                    with --knative
    kserve/servingruntime.yaml, kserve/inferenceservice.yaml   with --kserve
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from shipyard.errors import ConfigError
from shipyard.packaging.k8s_pod import resources, serve_args
from shipyard.packaging.k8s_spec import MIN_WORKER_CPU, ServingSpec
from shipyard.packaging.knative import knative_service
from shipyard.packaging.kserve import inference_service, serving_runtime
from shipyard.packaging.kubernetes import (
    autoscaler,
    config_map,
    deployment,
    disruption_budget,
    kubernetes_cronjob,
    network_policy,
    service,
    service_account,
)
from shipyard.scheduling.schedules import Schedule

__all__ = ["Tree", "production_spec", "render", "staging_spec", "to_yaml", "write_tree"]

#: A rendered folder: relative path -> the YAML documents of that file (a manifest, or a JSON 6902
#: patch's list of operations).
Tree = dict[str, list[Any]]

_KUSTOMIZATION = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
#: The staging overlay's resources at most: half a CPU, 512 MiB.
_STAGING_CPU, _STAGING_MEMORY = 500, 512


def staging_spec(spec: ServingSpec) -> ServingSpec:
    """Staging's set: one replica, at most half a CPU (never below one worker) and 512 MiB."""
    cpu = max(MIN_WORKER_CPU, min(spec.cpu_limit, _STAGING_CPU))
    return spec.scaled(cpu_limit=cpu, memory_limit=min(spec.memory_limit, _STAGING_MEMORY), replicas=1)


def production_spec(spec: ServingSpec) -> ServingSpec:
    """Production's set: the base's resources, two replicas or more."""
    return spec.scaled(
        cpu_limit=spec.cpu_limit, memory_limit=spec.memory_limit, replicas=max(2, spec.min_replicas)
    )


def render(
    spec: ServingSpec,
    *,
    schedules: Sequence[Schedule] = (),
    knative: bool = False,
    kserve: bool = False,
) -> Tree:
    """Every file of the folder, as documents.

    Args:
        schedules: the registry's schedules, each a CronJob in the base, run with the same image.
        knative / kserve: also write the Knative Service / the KServe runtime and InferenceService.
    """
    tree: Tree = {}
    base = _base(spec, schedules)
    tree.update({f"base/{name}": docs for name, docs in base.items()})
    tree.update({f"overlays/staging/{n}": d for n, d in _staging(spec, base).items()})
    tree.update({f"overlays/production/{n}": d for n, d in _production(spec, base).items()})
    if knative:
        tree["knative/service.yaml"] = [knative_service(spec)]
    if kserve:
        tree["kserve/servingruntime.yaml"] = [serving_runtime(spec)]
        tree["kserve/inferenceservice.yaml"] = [inference_service(spec)]
    return tree


def _base(spec: ServingSpec, schedules: Sequence[Schedule]) -> Tree:
    files: Tree = {
        "serviceaccount.yaml": [service_account(spec)],
        "configmap.yaml": [config_map(spec)],
        "deployment.yaml": [deployment(spec)],
        "service.yaml": [service(spec)],
        "hpa.yaml": [autoscaler(spec)],
        "networkpolicy.yaml": [network_policy(spec)],
    }
    if spec.min_replicas >= 2:
        files["pdb.yaml"] = [disruption_budget(spec)]
    if schedules:
        files["cronjobs.yaml"] = [
            kubernetes_cronjob(
                s, image=spec.image, secret=spec.secret, service_account=spec.name, instance=spec.name
            )
            for s in schedules
        ]
    files["kustomization.yaml"] = [_KUSTOMIZATION | {"resources": sorted(files)}]
    return files


def _staging(spec: ServingSpec, base: Tree) -> Tree:
    """One replica, smaller resources, no autoscaling, a budget that lets a drain evict the one pod,
    and its own Secrets (`staging-...`)."""
    small = staging_spec(spec)
    prefix = "staging-"
    [served] = base["deployment.yaml"]
    files: Tree = {
        "deployment-patch.yaml": [_deployment_ops(small, served, secret_prefix=prefix)],
        "hpa-patch.yaml": [_replica_ops(1, 1)],
    }
    targets = {"deployment-patch.yaml": _target("apps", "Deployment", spec.name)}
    targets["hpa-patch.yaml"] = _target("autoscaling", "HorizontalPodAutoscaler", spec.name, version="v2")
    if "pdb.yaml" in base:  # minAvailable 1 of one replica would block every node drain
        files["pdb-patch.yaml"] = [
            [
                {"op": "remove", "path": "/spec/minAvailable"},
                {"op": "add", "path": "/spec/maxUnavailable", "value": 1},
            ]
        ]
        targets["pdb-patch.yaml"] = _target("policy", "PodDisruptionBudget", spec.name)
    for i, job in enumerate(base.get("cronjobs.yaml", [])):
        name = f"cronjob-patch-{i + 1}.yaml"
        files[name] = [_secret_ops(job["spec"]["jobTemplate"]["spec"]["template"]["spec"], _JOB_POD, prefix)]
        targets[name] = _target("batch", "CronJob", job["metadata"]["name"])
    files["kustomization.yaml"] = [_overlay("staging", prefix, targets)]
    return files


def _production(spec: ServingSpec, base: Tree) -> Tree:
    """Two replicas or more, the autoscaler's minimum raised to match, and a disruption budget."""
    big = production_spec(spec)
    [served] = base["deployment.yaml"]
    files: Tree = {
        "deployment-patch.yaml": [_deployment_ops(big, served, secret_prefix="")],
        "hpa-patch.yaml": [_replica_ops(big.min_replicas, big.max_replicas)],
    }
    targets = {
        "deployment-patch.yaml": _target("apps", "Deployment", spec.name),
        "hpa-patch.yaml": _target("autoscaling", "HorizontalPodAutoscaler", spec.name, version="v2"),
    }
    extra = []
    if "pdb.yaml" not in base:
        files["pdb.yaml"] = [disruption_budget(big)]
        extra = ["pdb.yaml"]
    files["kustomization.yaml"] = [_overlay("production", "", targets, resources=extra)]
    return files


_POD = "/spec/template/spec"
_JOB_POD = "/spec/jobTemplate/spec/template/spec"
_SPREAD = ("topologySpreadConstraints", "affinity")


def _overlay(
    env: str, prefix: str, targets: Mapping[str, dict[str, str]], *, resources: list[str] | None = None
) -> dict[str, Any]:
    kustomization: dict[str, Any] = _KUSTOMIZATION | {"resources": ["../../base", *(resources or [])]}
    if prefix:
        kustomization["namePrefix"] = prefix
    kustomization["labels"] = [{"pairs": {"env": env}, "includeSelectors": True}]
    kustomization["patches"] = [{"path": name, "target": targets[name]} for name in sorted(targets)]
    return kustomization


def _target(group: str, kind: str, name: str, *, version: str = "v1") -> dict[str, str]:
    return {"group": group, "version": version, "kind": kind, "name": name}


def _replica_ops(least: int, most: int) -> list[dict[str, Any]]:
    return [
        {"op": "replace", "path": "/spec/minReplicas", "value": least},
        {"op": "replace", "path": "/spec/maxReplicas", "value": most},
    ]


def _deployment_ops(
    spec: ServingSpec, served: Mapping[str, Any], *, secret_prefix: str
) -> list[dict[str, Any]]:
    """JSON 6902 operations turning the base's Deployment into this environment's.

    The replicas, and the container's arguments (workers follow the CPU limit) and resources;
    the spread across nodes when the base had one replica; the Secrets' names when prefixed.
    """
    container = f"{_POD}/containers/0"
    ops: list[dict[str, Any]] = [
        {"op": "replace", "path": "/spec/replicas", "value": spec.min_replicas},
        {"op": "replace", "path": f"{container}/args", "value": serve_args(spec)},
        {"op": "replace", "path": f"{container}/resources", "value": resources(spec)},
    ]
    pod = served["spec"]["template"]["spec"]
    if spec.min_replicas >= 2 and "affinity" not in pod:
        spread = deployment(spec)["spec"]["template"]["spec"]
        ops += [{"op": "add", "path": f"{_POD}/{key}", "value": spread[key]} for key in _SPREAD]
    return ops + _secret_ops(pod, _POD, secret_prefix)


def _secret_ops(pod: Mapping[str, Any], at: str, prefix: str) -> list[dict[str, Any]]:
    """Operations that prefix every Secret a pod names (env keys, envFrom, volumes); none without a prefix."""
    if not prefix:
        return []
    ops = []
    for c, container in enumerate(pod["containers"]):
        for e, entry in enumerate(container.get("env", [])):
            if "secretKeyRef" in entry.get("valueFrom", {}):
                name = entry["valueFrom"]["secretKeyRef"]["name"]
                path = f"{at}/containers/{c}/env/{e}/valueFrom/secretKeyRef/name"
                ops.append({"op": "replace", "path": path, "value": prefix + name})
        for e, entry in enumerate(container.get("envFrom", [])):
            if "secretRef" in entry:
                path = f"{at}/containers/{c}/envFrom/{e}/secretRef/name"
                ops.append({"op": "replace", "path": path, "value": prefix + entry["secretRef"]["name"]})
    for v, volume in enumerate(pod.get("volumes", [])):
        if "secret" in volume:
            path = f"{at}/volumes/{v}/secret/secretName"
            ops.append({"op": "replace", "path": path, "value": prefix + volume["secret"]["secretName"]})
    return ops


class _Dumper(yaml.SafeDumper):
    """YAML without anchors: a manifest repeats a selector rather than pointing at it."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(docs: Sequence[Any]) -> str:
    """Documents as one YAML stream, keys in the order written."""
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, explicit_start=len(docs) > 1)


def write_tree(tree: Tree, out: Path) -> list[Path]:
    """Write `tree` into the new or empty folder `out`, whole or not at all; returns the files written.

    The files are written into a temporary folder beside `out`, which is then renamed onto it.

    Raises:
        ConfigError: `out` is a file, or a folder holding anything.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        held = (
            "is a file"
            if not out.is_dir()
            else f"holds {', '.join(sorted(p.name for p in out.iterdir())[:5])}"
        )
        raise ConfigError(
            f"--out {out} {held}; expected a new or empty folder: remove it or choose another --out"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    try:
        for relative, docs in tree.items():
            file = staging / relative
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(to_yaml(docs), encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp's folder is private; manifests are not secret
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(out / relative for relative in tree)
