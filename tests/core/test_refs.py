from __future__ import annotations

import pytest

from shipyard import ModelRef, RefError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fraud", ModelRef("fraud")),
        ("fraud:3", ModelRef("fraud", version=3)),
        ("fraud:latest", ModelRef("fraud")),
        ("fraud@production", ModelRef("fraud", alias="production")),
        ("churn-v2.1_x", ModelRef("churn-v2.1_x")),
    ],
)
def test_references_parse_to_name_version_or_alias(text: str, expected: ModelRef) -> None:
    assert ModelRef.parse(text) == expected


@pytest.mark.parametrize("text", ["fraud:3", "fraud@production", "fraud"])
def test_references_print_as_they_parse(text: str) -> None:
    assert str(ModelRef.parse(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "../../etc",
        "a/b",
        "fraud\x00",
        "",
        ".hidden",
        "fraud:0",
        "fraud:-1",
        "fraud:x",
        "fraud@",
        "fraud@1abc",
        "x" * 129,
        "a..b",
        "fraud@latest",
        "fraud:٣",
    ],
)
def test_malformed_references_are_rejected_with_the_expected_form(text: str) -> None:
    with pytest.raises(RefError, match="expected|reserved|not allowed"):
        ModelRef.parse(text)


def test_path_like_name_error_names_the_allowed_characters() -> None:
    with pytest.raises(RefError, match=r"letters, digits, '\.', '_' and '-'"):
        ModelRef.parse("../../etc")
