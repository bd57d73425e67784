"""Archive, restore and delete (`Registry.lifecycle`) on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from shipyard import ConflictError, NotFoundError, Registry


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
