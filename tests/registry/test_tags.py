"""Tags and descriptions (`Registry.tags`) on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pandas as pd

from shipyard import Registry


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
    registry.tags.remove("fraud:1", "team")
    assert registry.get("fraud:1").tags == {}
