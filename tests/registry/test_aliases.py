"""Aliases (`Registry.aliases`) on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from shipyard import NotFoundError, Registry


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
