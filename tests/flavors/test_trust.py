"""Skops files load only the types and functions Shipyard trusts, or those a signed version names."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator, ClassifierMixin
from tests.commands import shipyard_cli

from shipyard import Registry, UntrustedArtifactError
from shipyard.flavors import flavor_named
from shipyard.flavors.base import LoadOptions
from shipyard.security.signing import SigningKey


class HomeMadeClassifier(ClassifierMixin, BaseEstimator):
    """A custom estimator skops cannot vouch for."""

    def fit(self, X: Any, y: Any) -> HomeMadeClassifier:
        self.classes_ = sorted(set(y))
        return self

    def predict(self, X: Any) -> Any:
        return [self.classes_[0]] * len(X)


def test_skops_file_with_an_unknown_type_is_refused_until_trusted(
    tmp_path: Path, sqlite_registry: Registry, cancer: pd.DataFrame
) -> None:
    path = tmp_path / "model.skops"
    X = cancer.drop(columns=["label"])
    sio.dump(HomeMadeClassifier().fit(X, cancer["label"]), path)
    with pytest.raises(UntrustedArtifactError, match="HomeMadeClassifier"):
        sqlite_registry.register_file(path, name="home", train_data=cancer, target="label")
    with pytest.raises(UntrustedArtifactError):
        flavor_named("sklearn").read_file(path.read_bytes(), LoadOptions())


def test_types_trusted_at_registration_are_trusted_again_only_with_a_signature(
    tmp_path: Path, sqlite_registry: Registry, cancer: pd.DataFrame, signing_key: SigningKey
) -> None:
    path = tmp_path / "model.skops"
    X = cancer.drop(columns=["label"])
    sio.dump(HomeMadeClassifier().fit(X, cancer["label"]), path)
    trusted = [t for t in sio.get_untrusted_types(file=path) if "HomeMade" in t]
    sqlite_registry.register_file(path, name="home", train_data=cancer, target="label", trusted_types=trusted)
    with pytest.raises(UntrustedArtifactError, match="only when signed by a trusted key"):
        sqlite_registry.load("home:1")  # a registrant alone cannot widen what every load constructs
    sqlite_registry.signatures.sign("home:1", signing_key)
    assert sqlite_registry.load("home:1").predict(X.head(3)).values.tolist() == [0, 0, 0]


def _writers() -> dict[str, Callable[..., Any]]:
    """Functions and classes that write files, as a crafted model would bind them."""
    import numpy as np
    import scipy.io
    import scipy.io.wavfile

    return {
        "numpy.save": np.save,
        "numpy.savetxt": np.savetxt,
        "numpy.memmap": np.memmap,
        "numpy.testing.assert_array_equal": np.testing.assert_array_equal,
        "numpy.testing.tempdir": np.testing.tempdir,
        "scipy.io.savemat": scipy.io.savemat,
        "scipy.io.mmwrite": scipy.io.mmwrite,
        "scipy.io.wavfile.write": scipy.io.wavfile.write,
    }


def _crafted(cancer: pd.DataFrame, func: Callable[..., Any]) -> Any:
    """A fitted pipeline whose first step calls `func` on every row it transforms."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    X = cancer.drop(columns=["label"])
    steps = [("leak", FunctionTransformer()), ("scale", StandardScaler()), ("model", LogisticRegression())]
    pipeline = Pipeline(steps)
    pipeline.fit(X.to_numpy(), cancer["label"])
    pipeline.named_steps["leak"].func = func  # set after fitting: fitting would call it here
    return pipeline


def _attacks(target: Path) -> list[tuple[str, Callable[..., Any], list[str]]]:
    """(case, callable, names the refusal must show) for each writer, bare and bound to `target`."""
    cases: list[tuple[str, Callable[..., Any], list[str]]] = []
    for case, writer in _writers().items():
        written_as = f"{writer.__module__}.{writer.__name__}"
        cases.append((case, writer, [written_as]))
        keywords = {"mode": "w+", "shape": (1,)} if writer is np.memmap else {}
        bound = functools.partial(writer, str(target), **keywords)
        cases.append((f"partial({case})", bound, ["functools.partial", written_as]))
    return cases


ATTACKS = [case for case, _, _ in _attacks(Path("x"))]


@pytest.mark.parametrize("case", ATTACKS)
def test_a_skops_file_that_calls_a_file_writer_is_refused_by_name_and_writes_nothing(
    tmp_path: Path, sqlite_registry: Registry, cancer: pd.DataFrame, case: str
) -> None:
    target = tmp_path / "stolen"
    [(_, func, names)] = [a for a in _attacks(target) if a[0] == case]
    model = _crafted(cancer, func)
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    with pytest.raises(UntrustedArtifactError) as refused:
        sqlite_registry.register_file(path, name="crafted", train_data=cancer, target="label")
    for name in names:
        assert f"--trust-type {name}" in str(refused.value)
    with pytest.raises(UntrustedArtifactError, match=re.escape(names[-1])):
        sqlite_registry.register(model, name="crafted", train_data=cancer, target="label")
    assert not list(tmp_path.glob("stolen*"))
    assert sqlite_registry.list_models() == []


@pytest.mark.parametrize("case", [c for c in ATTACKS if c.startswith("partial(")])
def test_the_cli_refuses_a_skops_file_that_binds_a_file_writer(
    tmp_path: Path, cancer: pd.DataFrame, case: str
) -> None:
    target = tmp_path / "stolen"
    [(_, func, names)] = [a for a in _attacks(target) if a[0] == case]
    sio.dump(_crafted(cancer, func), tmp_path / "model.skops")
    cancer.to_parquet(tmp_path / "train.parquet")
    done = shipyard_cli(
        tmp_path / "home",
        *("models", "register", str(tmp_path / "model.skops")),
        *("--name", "crafted", "--train-data", str(tmp_path / "train.parquet"), "--target", "label"),
        env={"COLUMNS": "400"},
        timeout=120,
    )
    assert done.returncode != 0
    message = " ".join(done.stderr.split())
    for name in names:
        assert f"--trust-type {name}" in message, message
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob("stolen*"))


def test_ordinary_models_with_maths_functions_load_without_trusting_anything(
    tmp_path: Path, sqlite_registry: Registry, cancer: pd.DataFrame
) -> None:
    from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    X = cancer.drop(columns=["label"]).iloc[:, :4]
    X = X.assign(band=np.where(X.iloc[:, 0] > X.iloc[:, 0].median(), "high", "low"))
    numeric = list(X.columns[:4])
    models = {
        "hgb": make_pipeline(
            ColumnTransformer(
                [
                    ("band", OneHotEncoder(handle_unknown="ignore"), ["band"]),
                    ("log", FunctionTransformer(np.log1p), numeric),
                    ("clip", FunctionTransformer(functools.partial(np.clip, a_min=0, a_max=1e6)), numeric),
                ]
            ),
            HistGradientBoostingClassifier(max_iter=5),
        ),
        "search": GridSearchCV(
            TransformedTargetRegressor(Ridge(), func=np.log1p, inverse_func=np.expm1),
            {"regressor__alpha": [0.1, 1.0]},
            cv=2,
            scoring="r2",
        ),
    }
    labels = {"hgb": cancer["label"], "search": X.iloc[:, 0]}
    for name, model in models.items():
        frame = (X if name == "hgb" else X.drop(columns=[X.columns[0], "band"])).assign(y=labels[name])
        model.fit(frame.drop(columns=["y"]), frame["y"])
        sio.dump(model, tmp_path / f"{name}.skops")
        path = tmp_path / f"{name}.skops"
        version = sqlite_registry.register_file(path, name=name, train_data=frame, target="y")
        assert sqlite_registry.load(version.ref).predict(frame.drop(columns=["y"]).head(3)).values is not None


def test_a_function_trusted_by_name_loads_only_with_a_signature(
    tmp_path: Path, sqlite_registry: Registry, cancer: pd.DataFrame, signing_key: SigningKey
) -> None:
    X = cancer.drop(columns=["label"])
    model = _crafted(cancer, np.sort)  # on the allow-list: nothing to trust
    sio.dump(model, tmp_path / "ok.skops")
    sqlite_registry.register_file(tmp_path / "ok.skops", name="ok", train_data=cancer, target="label")
    model.named_steps["leak"].func = np.fliplr  # maths, but not on the reviewed list
    sio.dump(model, tmp_path / "flip.skops")
    refusal = r"numpy.fliplr \(a function that is not on the allow-list\)"
    with pytest.raises(UntrustedArtifactError, match=refusal):
        sqlite_registry.register_file(tmp_path / "flip.skops", name="flip", train_data=cancer, target="label")
    trusted = ["numpy.fliplr"]
    sqlite_registry.register_file(
        tmp_path / "flip.skops", name="flip", train_data=cancer, target="label", trusted_types=trusted
    )
    with pytest.raises(UntrustedArtifactError, match="only when signed"):
        sqlite_registry.load("flip:1")
    sqlite_registry.signatures.sign("flip:1", signing_key)
    assert len(sqlite_registry.load("flip:1").predict(X.head(2)).values) == 2
