"""Time spans as people type them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shipyard.core.durations import parse_duration
from shipyard.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("6h", timedelta(hours=6)),
        ("1d", timedelta(days=1)),
        ("2w", timedelta(weeks=2)),
        (" 1.5H ", timedelta(minutes=90)),
    ],
)
def test_a_number_and_a_unit_is_a_time_span(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "15", "15x", "0m", "-1h", "nanh", "infd", "m"])
def test_anything_else_is_refused_naming_the_option_and_the_text(text: str) -> None:
    with pytest.raises(ConfigError, match=rf"--interval {text!r} is not understood; expected a number"):
        parse_duration(text, what="--interval")
