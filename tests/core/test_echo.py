"""How a caller's value is shown back in an error: whole when short, else cut with its length."""

from __future__ import annotations

from shipyard.core.echo import ECHO_LIMIT, capped, echo


def test_a_short_value_is_echoed_as_its_repr() -> None:
    assert echo("abc") == "'abc'"
    assert echo([1, 2]) == "[1, 2]"


def test_a_long_value_is_cut_and_says_its_length_in_its_own_unit() -> None:
    assert echo("x" * 1000) == repr("x" * 1000)[:ECHO_LIMIT] + "... (1000 characters)"
    assert echo(list(range(100))).endswith("... (100 items)")
    assert echo(b"y" * 200, limit=10) == repr(b"y" * 200)[:10] + "... (200 bytes)"


def test_capped_keeps_short_json_data_as_it_is() -> None:
    for value in (None, True, 1.5, 7, "short", [1, 2], {"a": 1}):
        assert capped(value) == value


def test_capped_cuts_long_text_big_integers_and_long_lists() -> None:
    assert capped("x" * 100) == "x" * ECHO_LIMIT + "... (100 characters)"
    assert capped(2**70) == echo(2**70)  # past 64 bits: shown as text, never a huge JSON number
    assert capped(2**70, limit=10) == "1180591620... (22 characters)"
    assert capped(list(range(100))).endswith("... (100 items)")
