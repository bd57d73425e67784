"""The requirements lock of an image: exact versions and sha256 hashes of what serving a version needs.

The versions are this environment's (the one that registered and tested the version): the
closure of a few roots over the installed distributions' `Requires-Dist`, markers evaluated for
the image (Linux x86_64, this Python). The hashes are those of the wheels pip picks for the
image's platform, downloaded once into a cache (`~/.cache/shipyard/wheels`) so repeats need no
network; pip in the image then installs with `--require-hashes` and gets exactly these files.
"""

from __future__ import annotations

import hashlib
import platform
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from shipyard.errors import ConfigError, MissingDependencyError, UnknownFlavorError
from shipyard.store.files import atomic_path

__all__ = [
    "FLAVORS",
    "FOLLOWING",
    "FRAMES",
    "SERVING",
    "Pin",
    "Target",
    "closure",
    "extra_roots",
    "flavor_roots",
    "hash_pins",
    "write_lock",
]

# ------------------------------------------------------------------------------------- the roots
# Everything in a lock is one of these roots or something a root requires (Requires-Dist, with its
# markers and extras). What is not listed here is not in the image: no pyarrow, SQLAlchemy,
# Alembic, river, croniter, httpx, Spark, XGBoost, LightGBM or ONNX unless the flavor says so.

SERVING: tuple[str, ...] = (
    # `shipyard serve --bundle`: what the server imports (checked with `python -X importtime`).
    "uvicorn",  # the HTTP server (REST, MLflow, OIP REST, /metrics) ...
    "uvloop",  # ... on uvloop's event loop ...
    "httptools",  # ... with httptools' parser
    "orjson",  # JSON bodies
    "grpcio",  # the OIP gRPC endpoint on 8081: its status codes (our own HTTP/2 server answers it) ...
    "hpack",  # ... decoding its requests' header blocks
    "protobuf",  # its messages
    "prometheus-client",  # /metrics
    "cryptography",  # TLS keys, signature checks, encrypted artifacts
    "pyjwt",  # --auth with JWTs
    "threadpoolctl",  # --model-threads: BLAS and OpenMP threads of the model
    "pyyaml",  # settings and policy files
    "fsspec",  # reading the bundle's files and the prediction log's folder
    "typer",  # the `shipyard` command itself (rich and shellingham come with it) ...
    "click",  # ... and the click that cli/app.py imports (typer carries its own copy)
)

FLAVORS: Mapping[str, tuple[str, ...]] = {
    # What loading and predicting with a flavor's artifact imports.
    # skops: a bundle loads through it when a signature is required at start (the baked pickle
    # is not what was signed) or the model declares extra trusted types.
    "sklearn": ("numpy", "scipy", "scikit-learn", "skops"),
    "xgboost": ("numpy", "scipy", "xgboost"),
    "lightgbm": ("numpy", "scipy", "lightgbm"),
    "onnx": ("numpy", "onnxruntime"),  # `onnx` itself is needed only to convert, not to run
    "pyfunc": ("numpy", "pandas", "cloudpickle"),  # the model's own imports: --extra or a custom image
}

FRAMES: tuple[str, ...] = (
    # Only when the model reads a DataFrame (an sklearn model fitted on named columns:
    # `feature_names_in_`, e.g. a ColumnTransformer selecting string columns).
    "pandas",
)

FOLLOWING: tuple[str, ...] = (
    # A following replica (`serve --deployment`) reads the shared registry.
    "sqlalchemy",  # the metadata store ...
    "alembic",  # ... and its migrations
    "psycopg[binary]",  # on PostgreSQL
    "s3fs",  # artifacts and the prediction log on S3
    "pyarrow",  # the prediction log's Parquet segments
    "pandas",  # profiles and the registry's tables
)

SKIPPED: frozenset[str] = frozenset(
    {
        # XGBoost requires NCCL (about 200 MB of CUDA) on Linux, for training on several GPUs only.
        "nvidia-nccl-cu12",
    }
)

# An extra of shipyard that `--extra` may not add: they pull in everything the lock leaves out.
_WHOLE = ("all", "dev")


@dataclass(frozen=True)
class Target:
    """The platform of an image, for markers and wheels.

    Args:
        python: `MAJOR.MINOR` of the image's Python (this interpreter's).
        glibc: the image's C library; pip in the image takes the newest manylinux wheel it allows.
        base: the base image, for the lock's header.
        note: what to do when a package has no wheel for it (with a leading '; ').
        site_packages: where the base image's pip installs packages.
    """

    python: str
    glibc: tuple[int, int]
    base: str
    note: str = ""
    site_packages: str = ""

    @property
    def platforms(self) -> list[str]:
        """pip's `--platform` values in pip's own order of preference for this glibc."""
        major, minor = self.glibc
        newest = [f"manylinux_{major}_{m}_x86_64" for m in range(minor, 16, -1)]
        return [*newest, "manylinux2014_x86_64", "any"]

    @property
    def key(self) -> str:
        """The wheel cache's folder for this target."""
        return f"cp{self.python.replace('.', '')}-manylinux_{self.glibc[0]}_{self.glibc[1]}_x86_64"

    @property
    def markers(self) -> dict[str, str]:
        """The marker environment of the image (Linux x86_64 CPython), whatever this machine is."""
        return {
            "python_version": self.python,
            "python_full_version": platform.python_version(),
            "os_name": "posix",
            "sys_platform": "linux",
            "platform_system": "Linux",
            "platform_machine": "x86_64",
            "platform_python_implementation": "CPython",
            "implementation_name": "cpython",
            "implementation_version": platform.python_version(),
        }


@dataclass(frozen=True)
class Pin:
    """One locked package: its name as installed, its version, the sha256 of its wheel(s)."""

    name: str
    version: str
    hashes: tuple[str, ...] = ()
    license: str | None = None

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)


def flavor_roots(flavor: str) -> tuple[str, ...]:
    """The roots that load and run a `flavor` artifact.

    Raises:
        UnknownFlavorError: the flavor has no entry in `FLAVORS`.
    """
    if flavor not in FLAVORS:
        raise UnknownFlavorError(
            f"no package list for flavor {flavor!r}; packaging knows {sorted(FLAVORS)} "
            "(shipyard.packaging.lock.FLAVORS)"
        )
    return FLAVORS[flavor]


def extra_roots(extras: Iterable[str]) -> list[str]:
    """The requirements shipyard's own extras name (`--extra s3` adds s3fs).

    Raises:
        ConfigError: an extra shipyard does not have, or one that adds everything.
    """
    dist = metadata.distribution("shipyard")
    known = sorted(e for e in dist.metadata.get_all("Provides-Extra") or [] if e not in _WHOLE)
    roots: list[str] = []
    for extra in extras:
        if extra not in known:
            raise ConfigError(f"unknown extra {extra!r} for the image; expected one of {known}")
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is not None and requirement.marker.evaluate({"extra": extra}):
                roots.append(str(requirement).split(";", maxsplit=1)[0].strip())
    return roots


def closure(roots: Iterable[str], target: Target) -> list[Pin]:
    """The installed distributions `roots` need, each with its installed version, sorted by name.

    Raises:
        MissingDependencyError: a root or one of its requirements is not installed here.
    """
    followed: dict[str, set[str]] = {}  # package -> the extras whose requirements were followed
    found: dict[str, Pin] = {}
    queue = [(Requirement(r), "the image") for r in roots]
    while queue:
        requirement, wanted_by = queue.pop()
        key = canonicalize_name(requirement.name)
        extras = set(requirement.extras) - followed.get(key, set())
        if key in SKIPPED or (key in followed and not extras):
            continue
        followed.setdefault(key, set()).update(extras)
        dist = _installed(requirement.name, wanted_by)
        found[key] = Pin(dist.metadata["Name"], dist.version, license=_license(dist))
        asked = ["", *sorted(extras)]  # a line without an `extra` marker holds for any of them
        for line in dist.requires or []:
            needed = Requirement(line)
            marker = needed.marker
            if marker is None or any(marker.evaluate({**target.markers, "extra": e}) for e in asked):
                queue.append((needed, f"{dist.metadata['Name']} {dist.version}"))
    return sorted(found.values(), key=lambda p: p.key)


def _installed(name: str, wanted_by: str) -> metadata.Distribution:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise MissingDependencyError(
            f"{name} is needed by {wanted_by} but is not installed here; the lock takes its versions "
            f"from this environment: pip install {name} (or the shipyard extra that names it)"
        ) from None


def _license(dist: metadata.Distribution) -> str | None:
    """A short license from the metadata (License-Expression, License, or a classifier), if any."""
    meta = dist.metadata
    expression = meta.get_all("License-Expression") or []
    if expression:
        return str(expression[0])
    text = str((meta.get_all("License") or [""])[0]).strip()
    if text and "\n" not in text and len(text) <= 80:
        return text
    for classifier in meta.get_all("Classifier") or []:
        if classifier.startswith("License :: ") and classifier != "License :: OSI Approved":
            return str(classifier.rsplit(" :: ", maxsplit=1)[-1])
    return None


# ------------------------------------------------------------------------------------- the hashes


def hash_pins(pins: Sequence[Pin], target: Target, cache: Path) -> list[Pin]:
    """`pins` with the sha256 of the wheels pip picks for `target`, downloaded into `cache` once.

    Raises:
        MissingDependencyError: no wheel of a package's version exists for the target; names each.
    """
    folder = cache / target.key
    folder.mkdir(parents=True, exist_ok=True)
    missing = [p for p in pins if not _cached(folder, p)]
    failed: list[str] = []
    while missing:  # pip stops at the first package it cannot find: leave it out and go on
        unfound = _download(missing, target, folder)
        if unfound is None:
            break
        failed.append(unfound)
        missing = [p for p in missing if f"{p.name}=={p.version}" != unfound]
    if failed:
        raise MissingDependencyError(
            f"no wheel of {', '.join(failed)} for Python {target.python} on {target.platforms[0]} "
            f"(base image {target.base}){target.note}"
        )
    return [
        Pin(p.name, p.version, tuple(sorted(_sha256(f) for f in _cached(folder, p))), p.license) for p in pins
    ]


def _cached(folder: Path, pin: Pin) -> list[Path]:
    """The cached wheels of `pin`'s name and version."""
    found = []
    for file in folder.glob("*.whl"):
        name, version, _, _ = parse_wheel_filename(file.name)
        if name == pin.key and version == Version(pin.version):
            found.append(file)
    return sorted(found)


def _download(pins: Sequence[Pin], target: Target, folder: Path) -> str | None:
    """Download the wheels of `pins` for `target` in one pip call; the `NAME==VERSION` pip found
    no wheel of, or None when it downloaded them all.

    Raises:
        MissingDependencyError: pip failed for another reason (the index is out of reach).
    """
    platforms = [arg for p in target.platforms for arg in ("--platform", p)]
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--only-binary=:all:", "--python-version", target.python, *platforms,
        "--dest", str(folder), *(f"{p.name}=={p.version}" for p in pins),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return None
    unfound = re.search(r"No matching distribution found for (\S+)", done.stderr)
    if unfound is None:
        tail = " ".join(done.stderr.strip().splitlines()[-3:])
        raise MissingDependencyError(f"pip could not download the wheels to hash them into {folder}: {tail}")
    return unfound.group(1)


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------- the file


def write_lock(path: Path, pins: Sequence[Pin], *, target: Target, title: str) -> None:
    """Write `pins` as a pip requirements file with hashes, whole or not at all."""
    lines = [
        f"# {title}",
        f"# Python {target.python} on {target.platforms[0]} ({target.base}); taken from the environment",
        "# that wrote it. Install: pip install --require-hashes --no-deps -r requirements.lock",
    ]
    for pin in pins:
        hashes = [f"    --hash=sha256:{h}" for h in pin.hashes]
        lines.append(" \\\n".join([f"{pin.name}=={pin.version}", *hashes]))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
