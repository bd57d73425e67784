"""Registering: numbered versions, contract, profile and lineage, one transaction, concurrent
writers (on SQLite and PostgreSQL)."""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import text

from shipyard import Registry, Settings, StoreError


def test_versions_are_numbered_per_name(
    registry: Registry, cancer_model: Any, cancer: pd.DataFrame, v1: Any
) -> None:
    v2 = registry.register(cancer_model, name="cancer", train_data=cancer, target="label")
    other = registry.register(cancer_model, name="other", train_data=cancer, target="label")
    assert (v1.version, v2.version, other.version) == (1, 2, 1)
    assert registry.get("cancer").version == 2
    assert registry.get("cancer:latest").version == 2


def test_version_records_contract_profile_and_lineage(v1: Any, cancer: pd.DataFrame) -> None:
    assert v1.contract.task == "classification"
    assert v1.contract.classes == (0, 1)
    assert v1.contract.target == "label"
    assert len(v1.contract.features) == 30
    assert v1.profile is not None and v1.profile.rows == len(cancer)
    assert set(v1.profile.outputs) == {"prediction", "proba_0", "proba_1"}
    data = v1.lineage["training_data"]
    assert data["rows"] == len(cancer) and len(data["fingerprint"]) == 64
    assert v1.lineage["environment"]["python"]
    assert "scikit-learn" in v1.lineage["environment"]["packages"]
    assert v1.lineage["params"]["memory"] is None
    assert v1.tags == {"team": "onc"}


def test_a_failure_inside_the_transaction_leaves_no_version_and_no_row(
    registry: Registry, cancer_model: Any, cancer: pd.DataFrame
) -> None:
    """The database itself fails the last insert of a registration (a real mid-way crash)."""
    with registry.meta.engine.begin() as conn:
        if registry.meta.dialect == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER boom BEFORE INSERT ON audit_log "
                    "BEGIN SELECT RAISE(FAIL, 'crash half-way'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'crash half-way'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text("CREATE TRIGGER boom BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION boom()")
            )
    with pytest.raises(StoreError, match="crash half-way"):
        registry.register(
            cancer_model, name="cancer", train_data=cancer, target="label", tags={"a": "b"}, alias="staging"
        )
    with registry.meta.read() as conn:
        for table in ("models", "model_versions", "aliases", "tags", "audit_log"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0
    with registry.meta.engine.begin() as conn:
        conn.execute(
            text(
                "DROP TRIGGER boom" if registry.meta.dialect == "sqlite" else "DROP TRIGGER boom ON audit_log"
            )
        )
    assert registry.register(cancer_model, name="cancer", train_data=cancer, target="label").version == 1


def _register_in_process(settings: Settings, start: float, queue: Any) -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :4]
    model = LogisticRegression(max_iter=500).fit(X, y)
    with Registry(settings) as registry:
        time.sleep(max(0.0, start - time.time()))
        versions = [
            registry.register(model, name="race", train_data=X.assign(y=y), target="y").version
            for _ in range(3)
        ]
    queue.put(versions)


def test_concurrent_processes_get_distinct_version_numbers(settings: Settings) -> None:
    Registry(settings).close()  # migrate once, so the race is about registering
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    start = time.time() + 6.0
    workers = [context.Process(target=_register_in_process, args=(settings, start, queue)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    numbers = sorted(n for _ in workers for n in queue.get(timeout=5))
    assert numbers == list(range(1, 10))
