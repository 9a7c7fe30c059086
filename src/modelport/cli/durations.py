"""Durations on the command line: '90s', '15m', '12h', '30d' or plain seconds."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, *, allow_zero: bool = False) -> int:
    """'3600', '3600s', '90m', '12h', '30d' → seconds; ValueError saying what was expected."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", str(text).lower())
    if not match or (int(match.group(1)) == 0 and not allow_zero):
        least = "0 or more" if allow_zero else "more than 0"
        raise ValueError(
            f"expected a duration such as 3600 (seconds), 90m, 12h or 30d ({least}), got {text!r}"
        )
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


def format_duration(seconds: int) -> str:
    """The largest whole unit: 3600 → '1h', 5400 → '90m', 0 → '0s'."""
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"
