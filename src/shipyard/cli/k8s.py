"""`shipyard k8s`: Kubernetes manifests (a kustomize base and overlays), Knative and KServe."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shipyard.cli.options import JsonOpt
from shipyard.cli.render import console, emit_json
from shipyard.cli.session import registry as open_registry
from shipyard.errors import ConfigError

if TYPE_CHECKING:
    from shipyard.packaging.k8s_spec import ServingSpec
    from shipyard.registry import Registry

__all__ = ["k8s"]


def k8s(
    ref: Annotated[
        str | None, typer.Argument(help="The version the image bakes (MODEL:VERSION or MODEL@ALIAS).")
    ] = None,
    out: Annotated[Path, typer.Option(help="A new or empty folder to write the manifests into.")] = Path(
        "k8s"
    ),
    deployment: Annotated[
        str | None,
        typer.Option(help="Render replicas that follow this deployment in the shared registry instead."),
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(
            help="The image to run; 'shipyard-MODEL:VERSION' for a version, 'shipyard:VERSION' else."
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="The objects' name; the model's (baked) or the deployment's by default."),
    ] = None,
    cpu_limit: Annotated[str, typer.Option(help="CPU limit per pod ('1', '500m'); sets the workers.")] = "1",
    cpu_request: Annotated[
        str | None, typer.Option(help="CPU request per pod; the limit by default.")
    ] = None,
    memory_limit: Annotated[str, typer.Option(help="Memory limit per pod ('1Gi', '512Mi').")] = "1Gi",
    memory_request: Annotated[
        str | None, typer.Option(help="Memory request per pod; the limit by default.")
    ] = None,
    model_threads: Annotated[int, typer.Option(help="Threads each worker's model may use.")] = 1,
    min_replicas: Annotated[int, typer.Option(help="Fewest replicas (the autoscaler's minimum).")] = 2,
    max_replicas: Annotated[int, typer.Option(help="Most replicas (autoscaler, Knative, KServe).")] = 6,
    target_cpu: Annotated[int, typer.Option(help="CPU utilisation (%) the autoscaler aims at.")] = 70,
    concurrency: Annotated[
        int, typer.Option(help="Requests a Knative or KServe pod takes at once (containerConcurrency).")
    ] = 32,
    tls: Annotated[
        bool, typer.Option("--tls", help="Serve HTTPS and gRPC over TLS from the NAME-tls Secret.")
    ] = False,
    db_port: Annotated[
        int, typer.Option(help="The metadata database's port (egress of a following set).")
    ] = 5432,
    s3_port: Annotated[int, typer.Option(help="The S3 endpoint's port (egress of a following set).")] = 443,
    schedules: Annotated[
        bool, typer.Option("--schedules", help="Add every schedule of the registry as a CronJob.")
    ] = False,
    knative: Annotated[bool, typer.Option("--knative", help="Also write a Knative Service.")] = False,
    kserve: Annotated[
        bool, typer.Option("--kserve", help="Also write a KServe ServingRuntime and InferenceService.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Render a kustomize base with staging and production overlays for a version or a deployment."""
    from shipyard.packaging.k8s_spec import (
        ServingSpec,
        cpu_millis,
        default_image,
        dns_label,
        k8s_name,
        memory_mebibytes,
    )
    from shipyard.packaging.k8s_tree import render, write_tree
    from shipyard.scheduling.schedules import Schedules

    if (ref is None) == (deployment is None):
        raise ConfigError("say what to serve: a version REF (baked into the image) or --deployment NAME")
    if deployment is not None and (knative or kserve):
        raise ConfigError(
            "--knative and --kserve run a baked version (scale to zero follows no registry); "
            "pass a version REF instead of --deployment"
        )
    cpu = cpu_millis(cpu_limit, option="--cpu-limit")
    memory = memory_mebibytes(memory_limit, option="--memory-limit")
    with open_registry() as reg:
        model, version = _served(reg, ref, deployment)
        spec = ServingSpec(
            name=k8s_name(name or dns_label(deployment or model)),
            model=model,
            version=version,
            deployment=deployment,
            image=image or default_image(model, version),
            cpu_limit=cpu,
            cpu_request=cpu_millis(cpu_request, option="--cpu-request") if cpu_request else cpu,
            memory_limit=memory,
            memory_request=memory_mebibytes(memory_request, option="--memory-request")
            if memory_request
            else memory,
            model_threads=model_threads,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            target_cpu=target_cpu,
            tls=tls,
            db_port=db_port,
            s3_port=s3_port,
            concurrency=concurrency,
        )
        found = Schedules(reg).list() if schedules else []
    written = write_tree(render(spec, schedules=found, knative=knative, kserve=kserve), out)
    if json_out:
        emit_json(
            {"out": str(out), "files": [str(p.relative_to(out)) for p in written], "workers": spec.workers}
        )
        return
    _report(spec, out, written, cronjobs=bool(found))


def _served(reg: Registry, ref: str | None, deployment: str | None) -> tuple[str, int | None]:
    """The model and baked version (None when following); the ref or the deployment must exist."""
    if deployment is not None:
        from shipyard.rollout.deployments import Deployments

        return Deployments(reg).get(deployment).model, None
    assert ref is not None
    found = reg.get(ref)
    return found.name, found.version


def _report(spec: ServingSpec, out: Path, written: list[Path], *, cronjobs: bool) -> None:
    """What was written, and the commands that create the Secrets and apply an overlay."""
    console.print(
        f"wrote {len(written)} files to {out}/ ({spec.workers} workers of {spec.model_threads} threads)"
    )
    for path in written:
        console.print(f"  {path.relative_to(out)}", highlight=False, soft_wrap=True)
    console.print("create the Secrets (never in these files), then apply an overlay:")
    if spec.following or cronjobs:  # a following pod and a scheduled command read the shared registry
        console.print(
            f"  kubectl create secret generic {spec.secret} --from-literal=SHIPYARD_DB_URL=postgresql://... "
            "--from-literal=SHIPYARD_STORE_URL=s3://bucket/prefix --from-literal=AWS_ACCESS_KEY_ID=... "
            "--from-literal=AWS_SECRET_ACCESS_KEY=...",
            highlight=False,
            soft_wrap=True,
        )
    if spec.tls:
        console.print(
            f"  kubectl create secret tls {spec.tls_secret} --cert=tls.crt --key=tls.key",
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        f"  kubectl apply -k {out}/overlays/staging   (its Secrets are named staging-...)",
        highlight=False,
        soft_wrap=True,
    )
