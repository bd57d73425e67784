"""Slices: parsing the spec, cutting categories and bins, missing values."""

from __future__ import annotations

import numpy as np
import pytest

from shipyard import EvaluationError
from shipyard.evaluation.slices import MISSING, OTHER, SliceSpec, grouping


def test_specs_parse_by_value_bins_and_edges() -> None:
    assert SliceSpec.parse("country") == SliceSpec("country")
    assert SliceSpec.parse("age:4") == SliceSpec("age", bins=4)
    assert SliceSpec.parse("age:18,30,50") == SliceSpec("age", edges=(18.0, 30.0, 50.0))
    assert str(SliceSpec.parse("age:18,30,50")) == "age:18,30,50"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("age:1", "whole number >= 2"),
        ("age:30,18", "strictly increasing"),
        ("age:x", "bin count"),
    ],
)
def test_bad_specs_say_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        SliceSpec.parse(text)


def test_edges_cut_half_open_bins_and_missing_values_get_their_group() -> None:
    values = np.array([18.0, 29.9, 30.0, 49.0, 50.0, 79.0, np.nan])
    labels, index, kind = grouping(values, SliceSpec.parse("age:18,30,50"))
    assert kind == "binned"
    assert labels == ["[18, 30)", "[30, 50)", "[50, 79]", MISSING]
    assert index.tolist() == [0, 0, 1, 1, 2, 2, 3]


def test_many_categories_keep_the_most_frequent_and_pool_the_rest() -> None:
    values = np.array([f"c{i}" for i in range(30)] + ["c0"] * 5, dtype=object)
    labels, index, kind = grouping(values, SliceSpec("cat"))
    assert kind == "categorical" and len(labels) == 20
    assert labels[0] == "c0" and labels[-1] == OTHER
    assert (index == 19).sum() == 30 - 19


def test_binning_an_all_missing_column_gives_one_missing_group() -> None:
    labels, index, kind = grouping(np.full(5, np.nan), SliceSpec.parse("x:4"))
    assert (labels, index.tolist(), kind) == ([MISSING], [0] * 5, "binned")
