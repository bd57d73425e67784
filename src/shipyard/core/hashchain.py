"""The audit log's hash chain: the pure function that links one entry to the one before.

The stored chain depends on it byte for byte, so it never changes; a new form would be a new
version tag (`shipyard-audit-v2`) beside this one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from shipyard.core.jsonsafe import json_safe

__all__ = ["GENESIS", "canonical", "entry_hash"]

GENESIS = "0" * 64  # the link of the first entry


def entry_hash(
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    model: str | None,
    version: int | None,
    detail: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """SHA-256 of an entry's fields and its link, over a canonical JSON form (version 1)."""
    fields = [seq, _instant(at), actor, action, target, model, version, canonical(detail), prev_hash]
    body = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(b"shipyard-audit-v1\n" + body.encode()).hexdigest()


def canonical(detail: Mapping[str, Any]) -> str:
    """The details as JSON with sorted keys and no spaces: the same text before and after storing."""
    return json.dumps(
        json_safe(dict(detail)), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def _instant(at: datetime) -> str:
    moment = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
