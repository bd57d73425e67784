"""A container build context for a version (`shipyard package`): Dockerfile, lock, bundle, SBOM.

Three kinds of image, one layout:
- *baked* (the default): the version's bundle at `/srv/bundle`, served with no metadata database;
- *lambda*: the same bundle in an AWS Lambda base image, answered by `shipyard.serverless.handler`;
- *following*: no bundle; a replica of a deployment that reads the shared registry.

The context is built in a temporary folder beside `out` and renamed onto it at the end, so a
failure (no wheel for a package, a refused version) leaves nothing behind. Everything that can
fail is checked before the first file is written.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import sys
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import shipyard
from shipyard.core.dtypes import DType
from shipyard.errors import ConfigError, ConflictError, SignatureError
from shipyard.flavors import unpack
from shipyard.packaging import bundle
from shipyard.packaging.lock import (
    FOLLOWING,
    FRAMES,
    SERVING,
    Pin,
    Target,
    closure,
    extra_roots,
    flavor_roots,
    hash_pins,
    write_lock,
)
from shipyard.packaging.sbom import cyclonedx
from shipyard.registry.records import LIVE, ModelVersion
from shipyard.registry.registry import Registry
from shipyard.rollout.deployments import Deployments

__all__ = [
    "BAKED_ENTRYPOINT",
    "LAMBDA",
    "SLIM",
    "TRIMMED",
    "WHEEL_CACHE",
    "BuildContext",
    "Plan",
    "baked_dockerfile",
    "check_empty",
    "lambda_dockerfile",
    "package_deployment",
    "package_version",
    "plan_deployment",
    "plan_version",
    "server_dockerfile",
    "wheel_name",
    "write_context",
]

BAKED_ENTRYPOINT = (
    "shipyard", "serve", "--bundle", "/srv/bundle",
    "--host", "0.0.0.0", "--port", "8080", "--grpc-port", "8081",
)  # fmt: skip
_UID = 10001
_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
# python:X.Y-slim-bookworm has glibc 2.36, as this machine's Debian 12: pip picks the same wheels.
SLIM = Target(
    _PYTHON,
    (2, 36),
    f"python:{_PYTHON}-slim-bookworm",
    note="; install a version of it that has one here, then package again",
    site_packages=f"/usr/local/lib/python{_PYTHON}/site-packages",
)
# AWS's Lambda images: Amazon Linux 2 (glibc 2.26) up to Python 3.11, Amazon Linux 2023 (2.34)
# after. Recent numpy, SciPy and scikit-learn wheels need glibc 2.27 or newer, so from Python 3.11
# the Lambda image is AWS's Python 3.12 one: the same package versions as here, their 3.12 wheels
# (Shipyard runs on 3.11 and newer; its wheel is pure Python).
_LAMBDA_PYTHON = "3.12" if sys.version_info < (3, 12) else _PYTHON
LAMBDA = Target(
    _LAMBDA_PYTHON,
    (2, 34),
    f"public.ecr.aws/lambda/python:{_LAMBDA_PYTHON}",
    note="; install a version of it that has one for Amazon Linux 2023 here, then package again",
    site_packages=f"/var/lang/lib/python{_LAMBDA_PYTHON}/site-packages",
)
# The test suites of the scientific packages (about 125 MB of the 455 that an sklearn model with
# pandas installs) are never imported by a server: the image drops them in the install's layer.
TRIMMED = ("numpy", "scipy", "pandas", "sklearn")
WHEEL_CACHE = Path.home() / ".cache" / "shipyard" / "wheels"


@dataclass(frozen=True)
class Plan:
    """A build context before it is written: everything checked, the lock hashed.

    Attributes:
        image: the image name the README suggests (`shipyard-credit:3`).
        what: what the image runs, for headers (`credit:3 (sklearn)`).
        target: the base image and its platform.
        pins: the packages of the lock, with their hashes.
        dockerfile: the Dockerfile's text.
        ref: the version to bundle (NAME:VERSION), or None for a following image.
    """

    image: str
    what: str
    target: Target
    pins: tuple[Pin, ...]
    dockerfile: str
    ref: str | None


@dataclass(frozen=True)
class BuildContext:
    """What `write_context` wrote.

    Attributes:
        folder: the build context.
        image: the image name the README suggests.
        pins: the packages of the lock, with their hashes.
        files: every file written, relative to `folder`, sorted.
    """

    folder: Path
    image: str
    pins: tuple[Pin, ...]
    files: tuple[str, ...]


def package_version(
    registry: Registry,
    ref: str,
    out: Path,
    *,
    lambda_image: bool = False,
    extras: Sequence[str] = (),
    cache: Path = WHEEL_CACHE,
) -> BuildContext:
    """Write the build context of a baked (or Lambda) image of the version `ref` into `out`.

    Args:
        registry: where the version is.
        ref: NAME:VERSION, NAME@ALIAS or NAME.
        out: a new or empty folder.
        lambda_image: an AWS Lambda container image instead of a server image.
        extras: shipyard extras to add to the image (e.g. `s3`).
        cache: where downloaded wheels are kept, to hash them.

    Raises:
        ConfigError: `out` holds files, or an extra is unknown.
        NotFoundError: no such version.
        ConflictError: the version is archived.
        SignatureError: SHIPYARD_REQUIRE_SIGNATURE is set and no trusted signature verifies.
        UnknownFlavorError: packaging has no package list for the version's flavor.
        MissingDependencyError: a needed package is not installed here, or has no wheel.
    """
    check_empty(out)
    plan = plan_version(registry, ref, lambda_image=lambda_image, extras=extras, cache=cache)
    return write_context(registry, plan, out)


def package_deployment(
    registry: Registry, name: str, out: Path, *, extras: Sequence[str] = (), cache: Path = WHEEL_CACHE
) -> BuildContext:
    """Write the build context of a following replica of deployment `name` into `out`.

    Raises:
        ConfigError: `out` holds files, or an extra is unknown.
        DeploymentNotFoundError: no such deployment.
        UnknownFlavorError: an arm's flavor has no package list.
        MissingDependencyError: a needed package is not installed here, or has no wheel.
    """
    check_empty(out)
    return write_context(registry, plan_deployment(registry, name, extras=extras, cache=cache), out)


def plan_version(
    registry: Registry,
    ref: str,
    *,
    lambda_image: bool = False,
    extras: Sequence[str] = (),
    cache: Path = WHEEL_CACHE,
) -> Plan:
    """Check that `ref` may be packaged and work out its lock and Dockerfile (see
    `package_version`; nothing is written but the wheel cache)."""
    version = _packable(registry, ref)
    target = LAMBDA if lambda_image else SLIM
    roots = [*SERVING, *flavor_roots(version.flavor), *extra_roots(extras)]
    if _reads_frames(registry, version):
        roots.extend(FRAMES)
    pins = hash_pins(closure(roots, target), target, cache)
    image = f"shipyard-{version.name}:{version.version}"
    what = f"{version.ref} ({version.flavor}), {'AWS Lambda' if lambda_image else 'baked'}"
    render = lambda_dockerfile if lambda_image else baked_dockerfile
    dockerfile = render(target, image=image, what=what)
    return Plan(image, what, target, tuple(pins), dockerfile, str(version.ref))


def plan_deployment(
    registry: Registry, name: str, *, extras: Sequence[str] = (), cache: Path = WHEEL_CACHE
) -> Plan:
    """The lock and Dockerfile of a following replica of deployment `name`: no bundle; the lock
    holds what reading the shared registry (PostgreSQL, S3) needs and the flavors of every arm's
    version (a later arm of another flavor needs a new image)."""
    deployment = Deployments(registry.context).get(name)
    flavors = sorted({registry.get(deployment.ref(arm)).flavor for arm in deployment.arms})
    roots = [*SERVING, *FOLLOWING, *(r for f in flavors for r in flavor_roots(f)), *extra_roots(extras)]
    pins = hash_pins(closure(roots, SLIM), SLIM, cache)
    image = f"shipyard-{name}:following"
    what = f"deployment {name}, following the shared registry (flavors: {', '.join(flavors)})"
    entrypoint = ["shipyard", "serve", "--deployment", name, *BAKED_ENTRYPOINT[4:]]
    dockerfile = server_dockerfile(SLIM, image=image, what=what, copy="", entrypoint=entrypoint)
    return Plan(image, what, SLIM, tuple(pins), dockerfile, None)


def write_context(registry: Registry, plan: Plan, out: Path) -> BuildContext:
    """Write `plan` into the new or empty folder `out`: all of it, or nothing.

    Raises:
        ConfigError: `out` holds files.
    """
    check_empty(out)

    def write(folder: Path) -> None:
        _shipyard_wheel(folder / "wheels")
        (folder / "Dockerfile").write_text(plan.dockerfile, encoding="utf-8")
        version = shipyard.__version__
        title = f"{plan.what}: written by shipyard {version}"
        write_lock(folder / "requirements.lock", plan.pins, target=plan.target, title=title)
        sbom = cyclonedx(plan.image, plan.pins, tool_version=version, description=plan.what)
        (folder / "sbom.cdx.json").write_text(json.dumps(sbom, indent=2) + "\n", encoding="utf-8")
        (folder / ".dockerignore").write_text(_DOCKERIGNORE, encoding="utf-8")
        run = _LAMBDA_RUN if plan.target == LAMBDA else _SERVER_RUN if plan.ref else _FOLLOWING_RUN
        run = run.format(image=plan.image)
        rows = [row for row in _README_ROWS if plan.ref is not None or "`bundle/`" not in row]
        readme = _README.format(what=plan.what, image=plan.image, run=run, rows="\n".join(rows))
        (folder / "README.md").write_text(readme, encoding="utf-8")
        if plan.ref is not None:
            bundle.write_bundle(registry, plan.ref, folder / "bundle")

    return BuildContext(out, plan.image, plan.pins, _build(out, write))


# ------------------------------------------------------------------------------------- checks


def check_empty(out: Path) -> None:
    """Refuse an `out` that is a file or a folder with something in it."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        kind = "a folder that holds files" if out.is_dir() else "a file"
        raise ConfigError(
            f"--out {out} is {kind}; a build context is written only into a new or empty folder: "
            "pick another --out (or empty this one)"
        )


def _packable(registry: Registry, ref: str) -> ModelVersion:
    """The version `ref` names, if it may be packaged: live, and signed when signatures are required."""
    version = registry.get(ref)
    if version.status != LIVE:
        raise ConflictError(
            f"{version.ref} is {version.status}; restore it first ('shipyard models restore "
            f"{version.ref}') or package a live version"
        )
    if registry.settings.require_signature:
        try:
            registry.signatures.verify(version)
        except SignatureError as exc:
            raise SignatureError(
                f"{exc} (SHIPYARD_REQUIRE_SIGNATURE is set: only signed versions are packaged)"
            ) from None
    return version


def _reads_frames(registry: Registry, version: ModelVersion) -> bool:
    """Whether the model is given a pandas DataFrame: fitted on named columns (`feature_names_in_`,
    which its flavor records as `frame_input`), or a LightGBM model with string features."""
    meta = unpack(registry.artifacts.get(version.artifact_digest)).meta
    strings = any(f.dtype == DType.STRING for f in version.contract.features)
    return bool(meta.get("frame_input")) or (version.flavor == "lightgbm" and strings)


# ------------------------------------------------------------------------------------- writing


def _build(out: Path, write: Callable[[Path], None]) -> tuple[str, ...]:
    """Run `write` on a temporary folder beside `out`, then rename it onto `out`."""
    with _temporary_beside(out) as folder:
        write(folder)
        files = tuple(sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()))
        if out.exists():
            out.rmdir()  # empty (checked); the rename below needs the name free or an empty folder
        folder.rename(out)
    return files


@contextmanager
def _temporary_beside(out: Path) -> Iterator[Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    folder = out.parent / f".{out.name}.{secrets.token_hex(4)}.part"
    folder.mkdir()
    try:
        yield folder
    finally:
        if folder.exists():
            shutil.rmtree(folder)


def wheel_name() -> str:
    """The file name of the wheel `_shipyard_wheel` writes: shipyard's installed version.

    Raises:
        ConfigError: shipyard is imported from a folder, not installed (no metadata to copy).
    """
    return f"shipyard-{_installed().version}-py3-none-any.whl"


def _installed() -> metadata.Distribution:
    try:
        return metadata.distribution("shipyard")
    except metadata.PackageNotFoundError:
        raise ConfigError(
            "shipyard is not installed in this environment (its metadata makes the image's wheel): "
            "pip install shipyard, or pip install -e . in a checkout"
        ) from None


def _shipyard_wheel(folder: Path) -> None:
    """Write a wheel of the shipyard this process runs (editable or installed; no network, no
    build backend): its package files, METADATA and entry points, and a RECORD."""
    dist = _installed()
    info = f"shipyard-{dist.version}.dist-info"
    package = Path(shipyard.__file__).parent
    files = {
        f"shipyard/{p.relative_to(package).as_posix()}": p.read_bytes()
        for p in sorted(package.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    files[f"{info}/METADATA"] = (dist.read_text("METADATA") or "").encode()
    files[f"{info}/entry_points.txt"] = (dist.read_text("entry_points.txt") or "").encode()
    files[f"{info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: shipyard {dist.version}\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    ).encode()
    record = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in files.items()]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / wheel_name(), "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():  # a fixed date: the same code gives the same wheel
            entry = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, data, compress_type=zipfile.ZIP_DEFLATED)


def _digest(data: bytes) -> str:
    """A RECORD's hash: urlsafe base64 of the sha256, unpadded."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


# ------------------------------------------------------------------------------------- templates

# The builder downloads the locked wheels, checked against the lock's hashes; the final stage
# installs them from a bind mount (no layer keeps the wheels) and never reaches the network, drops
# the test suites, then compiles the bytecode on every core (pip would compile one file at a time,
# test suites included).
_BUILDER = """\
# syntax=docker/dockerfile:1
# {what}: written by `shipyard package`. Build: docker build -t {image} .
FROM {base} AS builder
WORKDIR /wheels
COPY requirements.lock wheels/ ./
RUN pip download --no-cache-dir --disable-pip-version-check --no-deps --only-binary=:all: \\
        --require-hashes --dest /wheels -r requirements.lock

FROM {base}
LABEL org.opencontainers.image.title="{image}" \\
      org.opencontainers.image.description="{what}"
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \\
    pip install --no-cache-dir --disable-pip-version-check --no-compile --no-index --find-links=/wheels \\
        --no-deps --require-hashes -r /wheels/requirements.lock \\
    && pip install --no-cache-dir --disable-pip-version-check --no-compile --no-index --no-deps \\
        /wheels/{wheel} \\
{trim}    && python -m compileall -q -j 0 {site}{user}
"""

# The bytecode was compiled at install (a read-only root could not cache it later); from here
# no process writes outside /tmp, where the pod mounts an emptyDir and SHIPYARD_HOME lives.
_SERVER = """\
ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    SHIPYARD_HOME=/tmp/shipyard \\
    HOME=/tmp
{copy}USER {uid}:{uid}
WORKDIR /tmp
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \\
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/readyz', timeout=2)"]
ENTRYPOINT {entrypoint}
"""

# The user is made in the final stage, in the install's layer; files get their owner at COPY.
_ADD_USER = (
    f" \\\n    && groupadd --gid {_UID} shipyard"
    f" \\\n    && useradd --uid {_UID} --gid {_UID} --no-create-home --home-dir /nonexistent"
    " --shell /usr/sbin/nologin shipyard"
)

_LAMBDA_TAIL = """\
COPY bundle/ ${LAMBDA_TASK_ROOT}/bundle/
ENV PYTHONDONTWRITEBYTECODE=1 \\
    SHIPYARD_HOME=/tmp/shipyard \\
    SHIPYARD_BUNDLE=${LAMBDA_TASK_ROOT}/bundle
CMD ["shipyard.serverless.handler"]
"""


def _builder(target: Target, *, image: str, what: str, user: str, trim: bool = True) -> str:
    """The builder stage and the final stage's install: the test suites dropped when `trim`
    (Lambda's Amazon Linux images may have no `find`; their limit is 10 GB), then `user` made."""
    paths = " -o ".join(f'-path "*/site-packages/{name}/*"' for name in TRIMMED)
    find = f"find {target.site_packages} -type d -name tests \\( {paths} \\) -prune -exec rm -rf {{}} +"
    drop = f"    && {find} \\\n"
    return _BUILDER.format(
        what=what, image=image, base=target.base, wheel=wheel_name(), user=user,
        site=target.site_packages, trim=drop if trim else "",
    )  # fmt: skip


def server_dockerfile(target: Target, *, image: str, what: str, copy: str, entrypoint: Sequence[str]) -> str:
    head = _builder(target, image=image, what=what, user=_ADD_USER)
    return head + _SERVER.format(copy=copy, uid=_UID, entrypoint=json.dumps(list(entrypoint)))


def baked_dockerfile(target: Target, *, image: str, what: str) -> str:
    """The Dockerfile of a baked image: the bundle at /srv/bundle, `BAKED_ENTRYPOINT`."""
    copy = f"COPY --chown={_UID}:{_UID} bundle/ /srv/bundle/\n"
    return server_dockerfile(target, image=image, what=what, copy=copy, entrypoint=BAKED_ENTRYPOINT)


def lambda_dockerfile(target: Target, *, image: str, what: str) -> str:
    """The Dockerfile of an AWS Lambda container image of the bundle."""
    return _builder(target, image=image, what=what, user="", trim=False) + _LAMBDA_TAIL


_DOCKERIGNORE = """\
# Only what the Dockerfile copies goes to the builder.
*
!Dockerfile
!requirements.lock
!wheels/
!bundle/
"""

_SERVER_RUN = """\
docker run --rm --read-only --tmpfs /tmp -p 8080:8080 -p 8081:8081 {image}
curl -s localhost:8080/readyz"""

_FOLLOWING_RUN = """\
docker run --rm --read-only --tmpfs /tmp -p 8080:8080 -p 8081:8081 \\
    -e SHIPYARD_DB_URL=postgresql://... -e SHIPYARD_STORE_URL=s3://bucket/prefix \\
    -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY -e AWS_ENDPOINT_URL {image}
curl -s localhost:8080/readyz"""

_LAMBDA_RUN = """\
docker run --rm -p 9000:8080 {image}    # the Lambda runtime interface emulator of the base image
curl -s localhost:9000/2015-03-31/functions/function/invocations -d @event.json"""

_README_ROWS = (
    "| `Dockerfile` | a builder stage that downloads the locked wheels (checked against their hashes), "
    "then the image |",
    "| `requirements.lock` | exact versions and sha256 hashes of the Python packages the image runs |",
    "| `wheels/` | Shipyard itself, as a wheel of the version that wrote this folder |",
    "| `bundle/` | the version: artifact, contract, profile, signature and a manifest of digests |",
    "| `sbom.cdx.json` | the image's Python packages as a CycloneDX 1.5 SBOM |",
)

_README = """\
# {image}

{what}, written by `shipyard package`.

| file | what it is |
| --- | --- |
{rows}

Build it with Docker (BuildKit) or Podman; the builder stage needs the package index, the image
does not. (Shipyard's own machines run no container engine: the context is checked by hadolint and
by installing its lock into a fresh virtual environment.)

```bash
docker build -t {image} .
podman build -t {image} .
```

Run it (no writable root file system needed; state goes to /tmp):

```bash
{run}
```
"""
