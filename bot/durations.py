"""The one duration parser: ``90s``, ``5m``, ``4h``, ``2d``, ``1w``, bounded, with clear messages.

Used by Slack (``/gpu-risk silence``, the Silence… modal and buttons) and by the CLI
(``backtest --step``); pure: no clock, no I/O.
"""

from __future__ import annotations

import re
from datetime import timedelta

MAX_DURATION = timedelta(days=365)
_MAX_DIGITS = 12  # more digits than any bounded duration needs; refused before int()
_DURATION = re.compile(r"^([0-9]+)\s*(s|sec|m|min|h|d|w)$", re.IGNORECASE | re.ASCII)
_BARE = re.compile(r"^[0-9]+$", re.ASCII)
_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_NAMES = {"w": "week", "d": "day", "h": "hour", "m": "minute", "s": "second"}
EXAMPLES = "90s, 5m, 4h, 2d or 1w"


class DurationError(ValueError):
    """Text that is not a duration, or one out of bounds; the message says which and why."""


def describe(value: timedelta) -> str:
    """``value`` for people, in its largest exact unit with the parser's spelling: ``30 days (30d)``."""
    seconds = int(value.total_seconds())
    unit = next((u for u in ("w", "d", "h", "m") if seconds and seconds % _SECONDS[u] == 0), "s")
    n = seconds // _SECONDS[unit]
    return f"{n} {_NAMES[unit]}{'' if n == 1 else 's'} ({n}{unit})"


def parse_duration(
    text: str,
    *,
    maximum: timedelta = MAX_DURATION,
    bare_seconds: bool = False,
    what: str = "a duration",
) -> timedelta:
    """Parse ``text`` into a positive timedelta of at most ``maximum``; DurationError otherwise.

    ``bare_seconds`` also accepts a plain number as seconds (only for settings that took seconds).
    """
    if not isinstance(text, str):
        raise DurationError(f"{what} must be text like {EXAMPLES}")
    shown = repr(text[:50])
    shown = shown if len(shown) <= 42 and len(text) <= 50 else shown[:40] + "…'"
    cleaned = text.strip()
    if bare_seconds and _BARE.match(cleaned):
        cleaned += "s"
    m = _DURATION.match(cleaned)
    if m is None:
        raise DurationError(f"{shown} is not a duration: use e.g. {EXAMPLES}")
    limit = describe(maximum)
    digits = m.group(1).lstrip("0") or "0"
    if len(digits) > _MAX_DIGITS:
        raise DurationError(f"{shown} is too long: {what} can be at most {limit}")
    seconds = int(digits) * _SECONDS[m.group(2).lower()]
    if seconds <= 0:
        raise DurationError(f"{what} must be longer than 0 (e.g. {EXAMPLES})")
    if seconds > maximum.total_seconds():
        raise DurationError(f"{shown} is too long: {what} can be at most {limit}")
    return timedelta(seconds=seconds)
