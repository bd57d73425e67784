"""Time spans as people type them: `90s`, `15m`, `6h`, `1d`, `2w`."""

from __future__ import annotations

import math
from datetime import timedelta

from shipyard.errors import ConfigError

__all__ = ["parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """`90s`, `15m`, `6h`, `1d` or `2w` as a time span.

    Args:
        text: what was typed.
        what: the option it came from, for the error (e.g. '--interval').

    Raises:
        ConfigError: the text is not a number above 0 followed by s, m, h, d or w.
    """
    body, unit = text.strip()[:-1], text.strip()[-1:].lower()
    try:
        amount = float(body)
    except ValueError:
        amount = -1.0
    if unit not in _UNITS or not amount > 0 or not math.isfinite(amount):
        raise ConfigError(
            f"{what} {text!r} is not understood; expected a number and a unit, like 90s, 15m, 6h, 1d"
        )
    return timedelta(seconds=amount * _UNITS[unit])
