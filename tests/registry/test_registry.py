"""The registry on SQLite and PostgreSQL (the `registry` fixture runs each test on both)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from shipyard import (
    ArtifactIntegrityError,
    ConflictError,
    ContractError,
    ContractViolationError,
    NotFoundError,
    RefError,
    Registry,
    Settings,
    StoreError,
    UnknownFlavorError,
)


@pytest.fixture
def v1(registry: Registry, cancer_model: Any, cancer: pd.DataFrame) -> Any:
    return registry.register(
        cancer_model,
        name="cancer",
        train_data=cancer,
        target="label",
        tags={"team": "onc"},
        description="first",
    )


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


def test_same_data_gives_the_same_fingerprint(
    registry: Registry, cancer_model: Any, cancer: pd.DataFrame, v1: Any
) -> None:
    again = registry.register(cancer_model, name="cancer", train_data=cancer.copy(), target="label")
    changed = registry.register(
        cancer_model,
        name="cancer",
        train_data=cancer.assign(label=cancer["label"].iloc[::-1].values),
        target="label",
    )
    fp = [v.lineage["training_data"]["fingerprint"] for v in (v1, again, changed)]
    assert fp[0] == fp[1] != fp[2]


def test_loaded_model_predicts_like_the_original(
    registry: Registry, v1: Any, cancer_model: Any, cancer: pd.DataFrame
) -> None:
    features = cancer.drop(columns=["label"])
    predictions = registry.load("cancer:1").predict(features)
    np.testing.assert_allclose(predictions.probabilities, cancer_model.predict_proba(features))


def test_alias_moves_and_every_move_is_recorded(
    registry: Registry, cancer_model: Any, cancer: pd.DataFrame, v1: Any
) -> None:
    registry.register(cancer_model, name="cancer", train_data=cancer, target="label")
    registry.set_alias("cancer:1", "staging")
    assert registry.get("cancer@staging").version == 1
    registry.set_alias("cancer:2", "staging")
    assert registry.get("cancer@staging").version == 2
    assert registry.get_model("cancer").aliases == {"staging": 2}
    moves = [c for c in registry.history("cancer") if c.action == "alias"]
    assert [(c.version, c.detail["from"]) for c in moves] == [(2, 1), (1, None)]
    assert moves[0].actor == "tester"
    registry.remove_alias("cancer", "staging")
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        registry.get("cancer@staging")


def test_tags_on_versions_and_models_and_search(
    registry: Registry, cancer_model: Any, cancer: pd.DataFrame, v1: Any
) -> None:
    registry.register(cancer_model, name="fraud", train_data=cancer, target="label")
    registry.set_tag("fraud:1", "team", "risk")
    registry.set_tag("fraud", "owner", "ana")
    registry.set_alias("fraud:1", "stable")
    assert registry.get("fraud:1").tags == {"team": "risk"}
    assert registry.get_model("fraud").tags == {"owner": "ana"}
    assert [m.name for m in registry.list_models(tag="team=risk")] == ["fraud"]
    assert [m.name for m in registry.list_models(tag="team")] == ["cancer", "fraud"]
    assert [m.name for m in registry.list_models(alias="stable")] == ["fraud"]
    assert [m.name for m in registry.list_models(name="fr*")] == ["fraud"]
    registry.remove_tag("fraud:1", "team")
    assert registry.get("fraud:1").tags == {}


def test_archived_version_is_hidden_from_latest_and_never_aliased(
    registry: Registry, cancer_model: Any, cancer: pd.DataFrame, v1: Any
) -> None:
    registry.register(cancer_model, name="cancer", train_data=cancer, target="label")
    registry.archive("cancer:2")
    assert registry.get("cancer").version == 1
    assert registry.get("cancer:2").status == "archived"
    with pytest.raises(ConflictError, match="archived"):
        registry.set_alias("cancer:2", "staging")
    registry.restore("cancer:2")
    assert registry.get("cancer").version == 2


def test_aliased_version_cannot_be_archived_or_deleted(registry: Registry, v1: Any) -> None:
    registry.set_alias("cancer:1", "stable")
    with pytest.raises(ConflictError, match="stable"):
        registry.archive("cancer:1")
    with pytest.raises(ConflictError, match="unalias"):
        registry.delete("cancer:1")


def test_delete_removes_the_version_and_its_artifact_and_numbers_are_not_reused(
    registry: Registry, cancer_model: Any, cancer: pd.DataFrame, v1: Any
) -> None:
    registry.delete("cancer:1")
    assert not registry.artifacts.exists(v1.artifact_digest)
    with pytest.raises(NotFoundError, match="no version 1"):
        registry.get("cancer:1")
    v2 = registry.register(cancer_model, name="cancer", train_data=cancer, target="label")
    assert v2.version == 2


def test_contract_edit_makes_a_new_version_with_the_same_artifact(registry: Registry, v1: Any) -> None:
    edited = v1.contract.replace_feature("mean radius", on_out_of_range="reject")
    v2 = registry.edit_contract("cancer:1", edited)
    assert v2.version == 2
    assert v2.artifact_digest == v1.artifact_digest
    assert v2.lineage["derived_from"] == "cancer:1"
    assert registry.get("cancer:1").contract == v1.contract
    row = {f.name: f.min for f in v1.contract.features} | {"mean radius": 1000.0}
    assert registry.load("cancer:1").validate([row]).ok
    with pytest.raises(ContractViolationError, match="mean radius"):
        registry.load("cancer:2").predict([row])


def test_contract_edit_cannot_change_the_features(registry: Registry, v1: Any) -> None:
    from dataclasses import replace

    fewer = replace(v1.contract, features=v1.contract.features[1:])
    with pytest.raises(ContractError, match="may change rules, not features"):
        registry.edit_contract("cancer:1", fewer)


@pytest.mark.parametrize(
    ("ref", "error", "message"),
    [
        ("cancer:9", NotFoundError, "has no version 9; it has versions \\[1\\]"),
        ("nope", NotFoundError, "no model named 'nope'"),
        ("cancer@prod", NotFoundError, "no alias 'prod'"),
        ("../../etc", RefError, "not allowed"),
    ],
)
def test_bad_references_get_clear_errors(
    registry: Registry, v1: Any, ref: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        registry.get(ref)


def test_object_that_is_not_a_model_is_refused(registry: Registry, cancer: pd.DataFrame) -> None:
    with pytest.raises(UnknownFlavorError, match="no flavor accepts"):
        registry.register(object(), name="x", train_data=cancer, target="label")
    with pytest.raises(UnknownFlavorError, match="unknown flavor 'tensorflow'"):
        registry.register(object(), name="x", flavor="tensorflow")
    assert registry.list_models() == []


def test_tampered_artifact_is_refused_on_load(registry: Registry, v1: Any) -> None:
    path = Path(registry.artifacts.path_of(v1.artifact_digest))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="refusing to load"):
        registry.load("cancer:1")


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
