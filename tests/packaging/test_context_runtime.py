"""The build context runs: its lock installed into a fresh virtual environment with its Shipyard
wheel, the image's ENTRYPOINT run as the Dockerfile runs it, and predictions equal to the
registry's. No container engine runs here, so this is the image's runtime without the image.

The installed size (site-packages plus the bundle) is measured and printed by package (`-s`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from tests.commands import shipyard_cli
from tests.servers import free_port

from shipyard.config import Settings
from shipyard.datasets import fit_credit_model, make_credit
from shipyard.errors import NotFoundError
from shipyard.packaging.context import SLIM, WHEEL_CACHE, plan_version, write_context
from shipyard.registry import Registry

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # a venv of 40 packages on a busy machine

_LIMIT_MB = 450  # issue 21: the runtime of an sklearn model, lock plus bundle
_MB = 1024 * 1024

# Sums the files each installed distribution's RECORD lists, run by the venv's own Python.
_SIZES = """
import json, importlib.metadata as m
sizes = {}
for dist in m.distributions():
    files = [f.locate() for f in dist.files or []]
    sizes[dist.metadata["Name"]] = sum(f.stat().st_size for f in files if f.exists())
print(json.dumps(sizes))
"""


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Registry]]:
    """`shipyard package credit:1 --out ctx` (the demo's credit pipeline), its home and registry."""
    root = tmp_path_factory.mktemp("runtime")
    home = root / "home"
    credit = make_credit(1000, seed=5)
    with Registry(Settings.for_home(home), actor="tester") as reg:
        reg.register(fit_credit_model(credit), name="credit", train_data=credit, target="default")
        done = shipyard_cli(home, "package", "credit:1", "--out", str(root / "ctx"))
        assert done.returncode == 0, done.stderr
        yield root / "ctx", home, reg


@pytest.fixture(scope="module")
def venv(context: tuple[Path, Path, Registry]) -> Path:
    """A fresh virtual environment with the lock (from the wheels it was hashed from: offline)
    and the context's Shipyard wheel, installed and trimmed as the Dockerfile does."""
    ctx = context[0]
    venv = ctx.parent / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-cache-dir",
           "--disable-pip-version-check", "--no-compile", "--no-index", "--no-deps"]  # fmt: skip
    wheels = WHEEL_CACHE / SLIM.key
    lock = ctx / "requirements.lock"
    subprocess.run([*pip, "--find-links", str(wheels), "--require-hashes", "-r", str(lock)], check=True)
    subprocess.run([*pip, *map(str, sorted((ctx / "wheels").glob("shipyard-*.whl")))], check=True)
    # The Dockerfile's trim of the test suites and its compilation, run as written on this venv.
    dockerfile = (ctx / "Dockerfile").read_text()
    trim = re.search(r"&& (find \S+ .*? \+)", dockerfile)
    compile_ = re.search(r"&& (python -m compileall \S+ \S+ \S+ \S+)", dockerfile)
    assert trim is not None and compile_ is not None
    site = next((venv / "lib").glob("python*/site-packages"))
    for command in (trim[1], compile_[1].replace("python", str(python), 1)):
        assert SLIM.site_packages in command
        subprocess.run(["sh", "-c", command.replace(SLIM.site_packages, str(site))], check=True)
    return venv


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _dockerfile_command(dockerfile: str) -> tuple[list[str], dict[str, str]]:
    """The final stage's ENTRYPOINT and ENV, as the image would run them."""
    final = dockerfile.rsplit("\nFROM ", 1)[1]
    entrypoint = re.search(r"^ENTRYPOINT (.*)$", final, flags=re.M)
    assert entrypoint is not None
    block = re.search(r"^ENV ((?:.*\\\n)*.*)$", final, flags=re.M)
    assert block is not None
    env = dict(pair.split("=", 1) for pair in block[1].replace("\\\n", " ").split())
    return json.loads(entrypoint[1]), env


def test_the_context_installs_fresh_runs_the_images_command_and_predicts_as_the_registry(
    context: tuple[Path, Path, Registry], venv: Path, tmp_path: Path
) -> None:
    ctx, _, reg = context
    site = next((venv / "lib").glob("python*/site-packages"))
    python = venv / "bin" / "python"
    clean = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin"}  # no PYTHONPATH: the venv's shipyard only
    sizes = json.loads(subprocess.run([python, "-c", _SIZES], capture_output=True, text=True, check=True,
                                      env=clean).stdout)  # fmt: skip
    bundle = _folder_size(ctx / "bundle")
    total = _folder_size(site) + bundle
    print(f"\ninstalled runtime of credit:1: {total / _MB:.1f} MB (site-packages + bundle)")
    for name, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<24} {size / _MB:7.1f} MB")
    print(f"  {'(bundle)':<24} {bundle / _MB:7.1f} MB")
    assert "pandas" in sizes  # the credit pipeline reads a DataFrame
    assert not {"pyarrow", "SQLAlchemy", "pyspark", "xgboost", "lightgbm"} & set(sizes)
    assert total <= _LIMIT_MB * _MB

    command, image_env = _dockerfile_command((ctx / "Dockerfile").read_text())
    port, grpc_port = free_port(), free_port()
    mapped = {"/srv/bundle": str(ctx / "bundle"), "0.0.0.0": "127.0.0.1", "8080": str(port),
              "8081": str(grpc_port), "shipyard": str(venv / "bin" / "shipyard")}  # fmt: skip
    argv = [mapped.get(arg, arg) for arg in command]
    assert argv[:3] == [str(venv / "bin" / "shipyard"), "serve", "--bundle"]
    env = {**clean, **image_env, "SHIPYARD_HOME": str(tmp_path / "shipyard"), "HOME": str(tmp_path)}
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        rows = make_credit(60, seed=11).drop(columns=["default"]).dropna().head(20)  # JSON has no NaN
        body = _ready_and_predict(server, port, rows.to_dict("records"), tmp_path / "serve.log")
        expected = reg.load("credit:1").predict(rows)
        assert body["predictions"] == expected.values.tolist()
        assert expected.probabilities is not None
        by_class = [list(row.values()) for row in body["probabilities"]]  # {class: probability}, in order
        np.testing.assert_allclose(by_class, expected.probabilities, rtol=1e-12)
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def _ready_and_predict(server: subprocess.Popen[bytes], port: int, rows: list[Any], log: Path) -> Any:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert server.poll() is None, f"the server exited with {server.returncode}:\n{log.read_text()}"
            try:
                if http.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        response = http.post("/v1/models/credit/predict", json={"instances": rows})
        assert response.status_code == 200, response.text
        return response.json()


def test_a_failed_bundle_leaves_nothing_behind(context: tuple[Path, Path, Registry]) -> None:
    ctx, _, reg = context
    plan = plan_version(reg, "credit:1")
    missing = replace(plan, ref="credit:99")  # the bundle step, the last, fails: no version 99
    out = ctx.parent / "half"
    with pytest.raises(NotFoundError):
        write_context(reg, missing, out)
    assert not out.exists()
    assert not [p.name for p in ctx.parent.iterdir() if p.name.startswith(".half")]
    assert os.listdir(ctx.parent)  # the folder's other contents are untouched
