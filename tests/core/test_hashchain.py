"""The audit log's hash chain: one entry's hash from its fields and the link before it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from shipyard.core.hashchain import GENESIS, canonical, entry_hash

AT = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def _entry(**change: Any) -> dict[str, Any]:
    return {
        "seq": 1,
        "at": AT,
        "actor": "ana",
        "action": "register",
        "target": "cancer:1",
        "model": "cancer",
        "version": 1,
        "detail": {"b": 2, "a": [1, 2]},
        "prev_hash": GENESIS,
    } | change


def test_the_hash_is_a_fixed_sha256_of_the_fields() -> None:
    digest = entry_hash(**_entry())
    assert len(digest) == 64 and digest == entry_hash(**_entry())
    assert GENESIS == "0" * 64


def test_every_field_and_the_link_change_the_hash() -> None:
    first = entry_hash(**_entry())
    changes = [
        {"seq": 2},
        {"at": AT + timedelta(microseconds=1)},
        {"actor": "bo"},
        {"action": "load"},
        {"target": "cancer:2"},
        {"model": None},
        {"version": 2},
        {"detail": {"b": 3, "a": [1, 2]}},
        {"prev_hash": first},
    ]
    hashes = {entry_hash(**_entry(**change)) for change in changes}
    assert first not in hashes and len(hashes) == len(changes)


def test_the_same_instant_in_any_zone_or_naive_utc_gives_the_same_hash() -> None:
    berlin = AT.astimezone(timezone(timedelta(hours=1)))
    naive = AT.replace(tzinfo=None)
    assert entry_hash(**_entry(at=berlin)) == entry_hash(**_entry()) == entry_hash(**_entry(at=naive))


def test_details_are_canonical_whatever_their_key_order() -> None:
    assert canonical({"b": 2, "a": "é"}) == canonical({"a": "é", "b": 2}) == '{"a":"é","b":2}'
    assert entry_hash(**_entry(detail={"a": [1, 2], "b": 2})) == entry_hash(**_entry())
