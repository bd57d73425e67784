"""`shipyard package`: a container build context for a version, or for a deployment's replicas."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shipyard.cli.options import JsonOpt
from shipyard.cli.render import console, emit_json
from shipyard.cli.session import registry
from shipyard.errors import ConfigError

if TYPE_CHECKING:
    from shipyard.packaging.context import BuildContext

__all__ = ["package", "show_context"]


def package(
    out: Annotated[Path, typer.Option(help="A new or empty folder for the build context.")],
    ref: Annotated[
        str | None, typer.Argument(help="The version to bake in: NAME:VERSION, NAME@ALIAS or NAME.")
    ] = None,
    lambda_image: Annotated[
        bool, typer.Option("--lambda", help="An AWS Lambda container image (shipyard.serverless.handler).")
    ] = False,
    deployment: Annotated[
        str | None,
        typer.Option(help="A following replica of this deployment (no bundle; reads the shared registry)."),
    ] = None,
    extra: Annotated[
        list[str] | None, typer.Option(help="A shipyard extra to add to the image (e.g. s3); repeatable.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write a container build context: Dockerfile, requirements lock, bundle, SBOM."""
    from shipyard.packaging.context import package_deployment, package_version

    if (ref is None) == (deployment is None):
        raise ConfigError(
            "name a version (shipyard package credit@production) or --deployment NAME; not both"
        )
    if deployment is not None and lambda_image:
        raise ConfigError("--lambda bakes a version in; a Lambda cannot follow a deployment: name a version")
    with registry() as reg:
        if deployment is not None:
            built = package_deployment(reg, deployment, out, extras=extra or ())
        else:
            assert ref is not None
            built = package_version(reg, ref, out, lambda_image=lambda_image, extras=extra or ())
    if json_out:
        emit_json({"folder": str(built.folder), "image": built.image, "files": list(built.files),
                   "packages": {p.name: p.version for p in built.pins}})  # fmt: skip
        return
    show_context(built)


def show_context(built: BuildContext) -> None:
    """Print the tree of the build context, its packages and how to build it."""
    console.print(f"wrote {built.folder}/ ({len(built.pins)} packages locked with their hashes)")
    for line in _tree(built.folder, built.files):
        console.print(line, markup=False)
    console.print(f"build it: docker build -t {built.image} {built.folder}  (or podman build)")


def _tree(folder: Path, files: tuple[str, ...]) -> list[str]:
    """`files` as an indented tree with sizes; deeper than two folders, only the folders' totals."""
    lines: list[str] = []
    shown: set[str] = set()
    for name in files:
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent not in shown:
                shown.add(parent)
                inside = [f for f in files if f.startswith(parent + "/")]
                size = _size(sum((folder / f).stat().st_size for f in inside))
                count = f"{len(inside)} file{'s' if len(inside) != 1 else ''}"
                lines.append(f"{'  ' * depth}{parts[depth - 1]}/  ({count}, {size})")
        if len(parts) <= 3:
            lines.append(f"{'  ' * len(parts)}{parts[-1]}  {_size((folder / name).stat().st_size)}")
    return lines


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"
