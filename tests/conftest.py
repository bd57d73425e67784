"""Shared fixtures: registries on SQLite and PostgreSQL, and small real models and data."""

from __future__ import annotations

import os

# One OpenMP thread per test process (subprocesses inherit it): the xdist workers already keep
# every core busy, and scikit-learn's histogram boosting with a thread per core spins against
# the other workers (3 to 6 times slower per test under that load). Set before scikit-learn
# loads its OpenMP runtime, which reads it once.
os.environ.setdefault("OMP_NUM_THREADS", "1")
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from homes import copy_home, home_made_once
from shipyard import Registry, Settings
from shipyard.core.scores import ClassificationData
from shipyard.datasets import fit_credit_model, make_credit
from shipyard.security.signing import SigningKey, new_signing_key

PG_ENV = "SHIPYARD_TEST_PG_URL"


# The longest modules, longest first. With `--dist loadfile` a module runs whole on one worker in
# the order collected, so one that starts last keeps its worker busy long after the others are
# done (the README's module alone takes several minutes): started first, they overlap the rest.
LONGEST_FIRST = (
    "tests/test_readme.py",
    "tests/serving/test_rollout_fleet.py",
    "tests/batch/test_explained.py",
    "tests/packaging/test_k8s.py",
    "tests/packaging/test_context.py",
    "tests/batch/test_local.py",
    "tests/cli/test_monitor.py",
    "tests/evaluation/test_robustness.py",
    "tests/edge/test_zoo.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the longest modules first (`LONGEST_FIRST`), and mark `postgres` every test that asks
    for a PostgreSQL schema, so `-m postgres` selects it.

    Tests on both databases (the `settings` fixture) carry the mark on their PostgreSQL case only.
    """
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))
    for item in items:
        if "pg_schema_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


def pg_url() -> str | None:
    """The PostgreSQL URL tests may use, in psycopg 3 form, or None."""
    url = os.environ.get(PG_ENV)
    if not url:
        return None
    return Settings.from_env({"SHIPYARD_DB_URL": url}).db_url


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose connections use a fresh schema, dropped afterwards."""
    url = pg_url()
    if url is None:
        pytest.skip(f"{PG_ENV} is not set; PostgreSQL tests need a database")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    yield scoped.render_as_string(hide_password=False)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings on SQLite, then on PostgreSQL (skipped with a reason when it is not configured)."""
    base = Settings.for_home(tmp_path / "home")
    if request.param == "sqlite":
        return base
    url = request.getfixturevalue("pg_schema_url")
    return Settings(home=base.home, db_url=url, store_url=base.store_url)


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    """A registry on a fresh database and artifact folder."""
    with Registry(settings, actor="tester") as reg:
        yield reg


@pytest.fixture
def signing_key(tmp_path: Path) -> SigningKey:
    """A new Ed25519 signing key; `sqlite_registry` trusts its public half."""
    (tmp_path / "keys").mkdir(exist_ok=True)
    new_signing_key(tmp_path / "keys" / "signing.pem")
    return SigningKey.from_file(tmp_path / "keys" / "signing.pem")


@pytest.fixture
def sqlite_registry(tmp_path: Path, signing_key: SigningKey) -> Iterator[Registry]:
    """A registry on SQLite only, for tests of flavors and files rather than databases; it trusts
    `signing_key`, so a test can sign a custom (pyfunc) model and load it."""
    settings = replace(
        Settings.for_home(tmp_path / "home"), trusted_keys=(tmp_path / "keys" / "signing.pub",)
    )
    with Registry(settings, actor="tester") as reg:
        yield reg


@pytest.fixture(scope="session")
def cancer() -> pd.DataFrame:
    """The breast cancer data set with its label column 'label'."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X.assign(label=y)


@pytest.fixture(scope="session")
def cancer_model(cancer: pd.DataFrame) -> Any:
    """A logistic regression pipeline fitted on the breast cancer data."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return model.fit(cancer.drop(columns=["label"]), cancer["label"])


@pytest.fixture(scope="session")
def credit() -> pd.DataFrame:
    """Synthetic credit applications with numeric and categorical features."""
    return make_credit(1500, seed=1)


@pytest.fixture(scope="session")
def credit_pipeline(credit: pd.DataFrame) -> Any:
    """The demo's gradient-boosting pipeline fitted on `credit`."""
    return fit_credit_model(credit)


@pytest.fixture(scope="session")
def holdout() -> pd.DataFrame:
    """Labelled credit rows the models were not trained on."""
    return make_credit(800, seed=7)


@pytest.fixture(scope="session")
def weaker_pipeline() -> Any:
    """A credit model trained on fewer rows: a plausible, somewhat worse challenger."""
    return fit_credit_model(make_credit(300, seed=3))


@pytest.fixture(scope="module")
def binary() -> ClassificationData:
    """A binary classifier's scores on scikit-learn's breast cancer data."""
    from sklearn.datasets import load_breast_cancer

    from classifiers import fitted

    return fitted(load_breast_cancer)


@pytest.fixture(scope="module")
def multi() -> ClassificationData:
    """A multiclass classifier's scores on scikit-learn's wine data."""
    from sklearn.datasets import load_wine

    from classifiers import fitted

    return fitted(load_wine)


@pytest.fixture(scope="session")
def credit_v1_home(
    tmp_path_factory: pytest.TempPathFactory, credit: pd.DataFrame, credit_pipeline: Any
) -> Path:
    """A home with `credit_pipeline` registered as credit:1 (target 'default', no alias); copy it."""

    def fill(registry: Registry) -> None:
        registry.register(credit_pipeline, name="credit", train_data=credit, target="default")

    return home_made_once(tmp_path_factory.mktemp("credit-v1-home"), fill)


@pytest.fixture(scope="session")
def production_home(credit_v1_home: Path) -> Path:
    """A home with the credit model registered as `credit@production` (version 1), made once: copy it."""
    home = copy_home(credit_v1_home, credit_v1_home.parent / "credit-production-home")
    with Registry(replace(Settings.for_home(home), protected_aliases=()), actor="tester") as registry:
        registry.set_alias("credit:1", "production")
    return home


@pytest.fixture(scope="session")
def credit_v1_v2_home(credit_v1_home: Path, credit: pd.DataFrame, weaker_pipeline: Any) -> Path:
    """`credit_v1_home` and `weaker_pipeline` as credit:2 (trained on the same rows); copy it."""

    def fill(registry: Registry) -> None:
        registry.register(weaker_pipeline, name="credit", train_data=credit, target="default")

    return home_made_once(copy_home(credit_v1_home, credit_v1_home.parent / "credit-v1-v2-home"), fill)


@pytest.fixture(scope="session")
def applications() -> pd.DataFrame:
    """300 credit rows with a bool column `vip` (tests/edge_models.py); `income` has missing values."""
    from edge_models import applications_frame

    return applications_frame()


@pytest.fixture(scope="session")
def edge_home(tmp_path_factory: pytest.TempPathFactory, applications: pd.DataFrame) -> Path:
    """A home with the models the export tests convert (`fill_edge_home`): credit:1, mlp:1, plain:1,
    debt:1, svc:1, rbf:1, spline:1, custom:1; copy it to change it."""
    from edge_models import fill_edge_home

    return home_made_once(
        tmp_path_factory.mktemp("edge-home"), lambda registry: fill_edge_home(registry, applications)
    )
