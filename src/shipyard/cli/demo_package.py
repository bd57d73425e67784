"""The packaging part of `shipyard demo`: a container build context for a version, and its tree."""

from __future__ import annotations

import shutil

from shipyard.cli.package import show_context
from shipyard.cli.render import console
from shipyard.registry import Registry

__all__ = ["package_demo"]


def package_demo(reg: Registry, ref: str) -> None:
    """Write the build context of `ref` under the home's `images/` and print what it holds."""
    from shipyard.packaging.context import package_version

    version = reg.get(ref)
    out = reg.settings.home / "images" / f"{version.name}-{version.version}"
    if out.exists():
        shutil.rmtree(out)  # an earlier demo's context of the same version: the folder is the demo's own
    console.rule("[bold]Packaging: a container build context")
    console.print(f"\n19. [bold]shipyard package {ref} --out {out}[/]")
    show_context(package_version(reg, ref, out))
    console.print("   no container engine runs here: build it where one does (docs/deploy.md)")
