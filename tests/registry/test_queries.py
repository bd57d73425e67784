"""Reading the registry's tables: references resolved to versions, and what is named when none is."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from shipyard import Registry
from shipyard.errors import NotFoundError, RefError
from shipyard.registry.queries import as_ref


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


def test_an_unknown_name_is_answered_with_a_close_name_the_names_there_are_or_an_empty_registry(
    registry: Registry, cancer_model: Any, cancer: pd.DataFrame
) -> None:
    with pytest.raises(NotFoundError, match="no model named 'cancer'; the registry is empty"):
        registry.get("cancer")
    registry.register(cancer_model, name="cancer", train_data=cancer, target="label")
    with pytest.raises(NotFoundError, match="no model named 'canser'; did you mean 'cancer'"):
        registry.get("canser")
    with pytest.raises(NotFoundError, match=r"no model named 'iris'; registered models: \['cancer'\]"):
        registry.get("iris")


def test_a_model_whose_versions_are_all_archived_has_no_latest(registry: Registry, v1: Any) -> None:
    registry.archive("cancer:1")
    with pytest.raises(NotFoundError, match="'cancer' has no live version"):
        registry.get("cancer")
    assert registry.get("cancer:1").status == "archived"  # a number still names it


def test_references_are_parsed_once_and_kept_when_already_parsed() -> None:
    ref = as_ref("cancer@prod")
    assert (ref.name, ref.alias, ref.version) == ("cancer", "prod", None)
    assert as_ref(ref) is ref
    with pytest.raises(RefError):
        as_ref("../../etc")
