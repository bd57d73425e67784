"""Baked bundles: what `write_bundle` writes, what `open_bundle` checks, and the restricted
unpickler that loads a scikit-learn model without skops."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard import Registry, Settings
from shipyard.errors import (
    ArtifactIntegrityError,
    ConflictError,
    InputError,
    SignatureError,
    UntrustedArtifactError,
)
from shipyard.flavors.baked import load_baked, pickle_globals
from shipyard.packaging.bundle import write_bundle
from shipyard.registry.bundles import BAKED, MANIFEST, VERSION, open_bundle
from shipyard.security.signing import SigningKey, new_signing_key


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a signing key and its public half."""
    folder = tmp_path_factory.mktemp("keys")
    new_signing_key(folder / "signing.pem")
    return folder


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, keys: Path) -> Settings:
    home = tmp_path_factory.mktemp("bundle-home")
    return replace(Settings.for_home(home), trusted_keys=(keys / "signing.pub",))


@pytest.fixture(scope="module")
def registry(settings: Settings, credit: pd.DataFrame, credit_pipeline: Any) -> Iterator[Registry]:
    """The credit model as `credit:1`, and the same model again as `credit:2` (archived)."""
    with Registry(settings, actor="tester") as registry:
        registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
        registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
        registry.archive("credit:2")
        yield registry


@pytest.fixture(scope="module")
def written(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The bundle of `credit:1` and its manifest (left unchanged: tests copy it to change it)."""
    out = tmp_path_factory.mktemp("bundles") / "credit"
    return out, write_bundle(registry, "credit:1", out)


def _copy(source: Path, target: Path) -> Path:
    target.mkdir()
    for file in source.iterdir():
        (target / file.name).write_bytes(file.read_bytes())
    return target


def _rewrite(folder: Path, name: str, data: bytes, *, globals_: list[str] | None = None) -> None:
    """Replace a file as someone who also rewrites the manifest would: its digest matches."""
    (folder / name).write_bytes(data)
    manifest = json.loads((folder / MANIFEST).read_bytes())
    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    if globals_ is not None:
        manifest["baked"]["globals"] = globals_
    (folder / MANIFEST).write_text(json.dumps(manifest))


def test_the_manifest_lists_every_file_with_its_digest(written: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = written
    assert manifest == json.loads((out / MANIFEST).read_bytes())
    assert manifest["model"] == {"name": "credit", "version": 1, "flavor": "sklearn"}
    assert manifest["shipyard_version"] and manifest["created_at"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*manifest["files"], MANIFEST])
    for name, entry in manifest["files"].items():
        data = (out / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_the_globals_listed_are_exactly_those_the_pickle_loads(written: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = written
    data = (out / BAKED).read_bytes()
    seen: set[str] = set()

    class Recording(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            seen.add(f"{module}.{name}")
            return super().find_class(module, name)

    Recording(io.BytesIO(data)).load()
    assert manifest["baked"]["globals"] == pickle_globals(data) == sorted(seen)
    assert manifest["baked"]["protocol"] == 5


def test_the_baked_model_predicts_exactly_as_the_registry_s(
    registry: Registry, written: tuple[Path, dict[str, Any]], holdout: pd.DataFrame
) -> None:
    bundle = open_bundle(written[0])
    baked, registered = bundle.load(), registry.load("credit:1")
    rows = holdout.drop(columns=["default"])
    ours, theirs = baked.predict(rows), registered.predict(rows)
    np.testing.assert_array_equal(ours.probabilities, theirs.probabilities)
    np.testing.assert_array_equal(ours.values, theirs.values)
    assert type(baked.predictor.model) is type(registered.predictor.model)  # type: ignore[attr-defined]
    version = registry.get("credit:1")
    assert bundle.version.contract == version.contract
    assert bundle.version.profile == version.profile
    assert bundle.version.explanation == version.explanation
    assert bundle.version.lineage == version.lineage
    assert bundle.version.ref == version.ref


def test_loading_imports_neither_skops_nor_sqlalchemy(written: tuple[Path, dict[str, Any]]) -> None:
    code = (
        "import sys; from shipyard.registry.bundles import open_bundle; "
        f"open_bundle({str(written[0])!r}).load(require_signature=False); "
        "print(sorted(m for m in ('skops', 'sqlalchemy') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stderr


class _Call:
    """Pickles as a call of `function` with `argument`: what a crafted model file does."""

    def __init__(self, function: Any, argument: str) -> None:
        self.function, self.argument = function, argument

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return self.function, (self.argument,)


@pytest.mark.parametrize("function", [os.system, eval], ids=["os.system", "builtins.eval"])
def test_a_pickle_that_calls_what_is_not_trusted_is_refused(
    function: Any, written: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    argument = f"touch {marker}" if function is os.system else f"open({str(marker)!r}, 'w')"
    crafted = pickle.dumps(_Call(function, argument), protocol=5)
    name = pickle_globals(crafted)[0]
    bundle = _copy(written[0], tmp_path / "bundle")
    _rewrite(bundle, BAKED, crafted, globals_=[name])  # listed, too: the policy still refuses it
    with pytest.raises(UntrustedArtifactError, match=name.replace(".", r"\.")):
        open_bundle(bundle).load(require_signature=False)
    _rewrite(bundle, BAKED, crafted, globals_=written[1]["baked"]["globals"])  # not listed
    with pytest.raises(UntrustedArtifactError, match="does not list"):
        open_bundle(bundle).load(require_signature=False)
    assert not marker.exists()


def test_a_trusted_name_outside_the_list_is_refused() -> None:
    data = pickle.dumps(np.float64(1.5), protocol=5)
    with pytest.raises(UntrustedArtifactError, match="numpy"):
        load_baked(data, [])
    assert load_baked(data, pickle_globals(data)) == 1.5


def test_a_changed_file_is_refused_with_its_name(
    written: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    for name in (VERSION, BAKED):
        bundle = _copy(written[0], tmp_path / name)
        data = bytearray((bundle / name).read_bytes())
        data[len(data) // 2] ^= 1
        (bundle / name).write_bytes(bytes(data))
        with pytest.raises(ArtifactIntegrityError, match=f"{name} was changed"):
            open_bundle(bundle)
    (bundle / BAKED).unlink()
    with pytest.raises(ArtifactIntegrityError, match=f"{BAKED} is missing"):
        open_bundle(bundle)


def test_a_folder_that_is_not_a_bundle_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        open_bundle(tmp_path / "nowhere")
    with pytest.raises(InputError, match=f"holds no {MANIFEST}"):
        open_bundle(tmp_path)


def test_an_out_folder_with_other_files_or_an_archived_version_is_refused(
    registry: Registry, tmp_path: Path
) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"holds other files \(notes.txt\)"):
        write_bundle(registry, "credit:1", tmp_path / "taken")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]
    with pytest.raises(ConflictError, match="credit:2 is archived"):
        write_bundle(registry, "credit:2", tmp_path / "archived")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    (tmp_path / "empty").mkdir()
    write_bundle(registry, "credit:1", tmp_path / "empty")
    assert (tmp_path / "empty" / MANIFEST).is_file()


def test_signatures_are_checked_against_the_trusted_keys(
    registry: Registry, settings: Settings, keys: Path, written: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    required = replace(settings, require_signature=True)
    with pytest.raises(SignatureError, match="credit:1"):
        open_bundle(written[0]).load(settings=required)
    registry.signatures.sign("credit:1", SigningKey.from_file(keys / "signing.pem"))
    signed = open_bundle(_written(registry, tmp_path / "signed"))
    assert len(signed.signatures) == 1
    assert signed.load(settings=required).signed  # the signed artifact, through skops
    assert signed.load(settings=settings).signed  # the baked pickle, its signature verified
    with pytest.raises(SignatureError):
        signed.load(settings=replace(required, trusted_keys=()))


def _written(registry: Registry, out: Path) -> Path:
    write_bundle(registry, "credit:1", out)
    return out


def test_other_flavors_load_with_their_own_loader(
    registry: Registry, cancer: pd.DataFrame, tmp_path: Path
) -> None:
    xgb = pytest.importorskip("xgboost")
    features = cancer.drop(columns=["label"])
    model = xgb.XGBClassifier(n_estimators=5, max_depth=3).fit(features, cancer["label"])
    version = registry.register(model, name="boosted", train_data=cancer, target="label")
    manifest = write_bundle(registry, str(version.ref), tmp_path / "boosted")
    assert manifest["baked"] is None and manifest["model"]["flavor"] == "xgboost"
    assert BAKED not in manifest["files"]
    rows = features.head(20)
    np.testing.assert_array_equal(
        open_bundle(tmp_path / "boosted").load().predict(rows).probabilities,
        registry.load(version.ref).predict(rows).probabilities,
    )
