"""How a value a caller sent is shown back in an error: in full when short, else cut with its length.

A caller's value can be anything up to the body limit (a 10 MB string for a numeric feature); an
error that quoted it whole would be as large as the request, and a gRPC trailer that large is
refused by the transport. Every message and violation that repeats a caller's value goes
through `echo` (for text) or `capped` (for JSON data).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ECHO_LIMIT", "capped", "echo"]

ECHO_LIMIT = 80  # characters of a caller's value shown in an error


def echo(value: Any, *, limit: int = ECHO_LIMIT) -> str:
    """`repr(value)` when it is at most `limit` characters, else its start, '...' and its length.

    Args:
        value: what the caller sent.
        limit: the most characters shown.
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    size = len(value) if isinstance(value, str | bytes | list | dict | tuple) else len(text)
    unit = "items" if isinstance(value, list | dict | tuple) else "characters"
    if isinstance(value, bytes):
        unit = "bytes"
    return f"{text[:limit]}... ({size} {unit})"


def capped(value: Any, *, limit: int = ECHO_LIMIT) -> Any:
    """`value` itself when short (JSON data kept as it is), else the text `echo` shows for it.

    Args:
        value: a plain Python value (str, number, bool, None, list, dict).
        limit: the most characters shown.
    """
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= limit else f"{value[:limit]}... ({len(value)} characters)"
    if isinstance(value, int):
        return value if value.bit_length() <= 64 else echo(value, limit=limit)
    return value if len(repr(value)) <= limit else echo(value, limit=limit)
