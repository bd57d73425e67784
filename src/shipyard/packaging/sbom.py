"""The SBOM of an image's Python packages: CycloneDX 1.5 JSON, from the lock it was installed with."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from packaging.utils import canonicalize_name

from shipyard.packaging.lock import Pin

__all__ = ["cyclonedx"]

_NAMESPACE = uuid.UUID("6f0c2c57-8a52-4b8e-9a1e-5f1b3c6d2e10")  # serial numbers of Shipyard's SBOMs


def cyclonedx(image: str, pins: Sequence[Pin], *, tool_version: str, description: str) -> dict[str, Any]:
    """A CycloneDX 1.5 document listing `pins` (the image's Python packages) as libraries.

    The serial number is derived from the packages and their hashes, so the same lock gives the
    same SBOM serial; the timestamp says when it was written.

    Args:
        image: the image's name, the document's subject (a container component).
        pins: the packages installed in the image, with their wheels' sha256.
        tool_version: Shipyard's version, the tool that wrote it.
        description: what the image runs (e.g. `credit:3 baked`).
    """
    components = [_component(pin) for pin in pins]
    identity = "\n".join(f"{c['purl']} {[h['content'] for h in c.get('hashes', [])]}" for c in components)
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(_NAMESPACE, image + chr(10) + identity)}",
        "version": 1,
        "metadata": {
            "timestamp": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "tools": {
                "components": [
                    {"type": "application", "name": "shipyard", "version": tool_version},
                ]
            },
            "component": {
                "type": "container",
                "bom-ref": f"image:{image}",
                "name": image,
                "description": description,
            },
        },
        "components": components,
        "dependencies": [
            {"ref": f"image:{image}", "dependsOn": [c["bom-ref"] for c in components]},
        ],
    }


def _component(pin: Pin) -> dict[str, Any]:
    purl = f"pkg:pypi/{canonicalize_name(pin.name)}@{pin.version}"
    component: dict[str, Any] = {
        "type": "library",
        "bom-ref": purl,
        "name": pin.name,
        "version": pin.version,
        "purl": purl,
    }
    if pin.hashes:
        component["hashes"] = [{"alg": "SHA-256", "content": h} for h in pin.hashes]
    if pin.license:
        # An SPDX expression (License-Expression) or the words of the metadata: CycloneDX takes
        # the first as an expression, anything else as a license name.
        spdx = any(op in pin.license for op in (" OR ", " AND ")) or _looks_spdx(pin.license)
        component["licenses"] = (
            [{"expression": pin.license}] if spdx else [{"license": {"name": pin.license}}]
        )
    return component


def _looks_spdx(text: str) -> bool:
    """`MIT`, `BSD-3-Clause`, `Apache-2.0`: one token of letters, digits, dots, dashes and plus."""
    return bool(text) and all(c.isalnum() or c in ".-+" for c in text)
