"""Maintenance windows: planned work during which incidents are recorded but not paged. Pure.

A window matches incidents the way a silence does (``analysis.lifecycle.silence_matches``: a GPU
key, a node, a rack or a component id) and is either one-off (``start`` + ``duration``) or
recurring (every day, or every given weekday, from ``at`` UTC for ``duration``). While a window is
active its target behaves like a silence: an incident inside it is recorded, not posted; if the
trouble outlasts the window, the incident is posted when the window ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: A recurring window may last at most this long (longer: use a silence).
MAX_RECURRING = timedelta(days=7)


class MaintenanceError(ValueError):
    """A window description that cannot be used; the message says which field and why."""


@dataclass(frozen=True)
class MaintenanceWindow:
    """Planned maintenance of ``target`` (a GPU key, node, rack or component id).

    One-off: ``start`` (aware) for ``duration``. Recurring: from ``at`` (UTC time of day) for
    ``duration`` on ``days`` (weekday names; empty = every day). ``reason`` is shown to people.
    """

    target: str
    duration: timedelta
    start: datetime | None = None
    at: time | None = None
    days: tuple[str, ...] = ()
    reason: str = ""

    def __post_init__(self) -> None:
        """Refuse windows that cannot be evaluated (no target, no schedule, bad days)."""
        if not self.target.strip():
            raise MaintenanceError("a maintenance window needs a target (node, rack, component)")
        if self.duration <= timedelta(0):
            raise MaintenanceError(f"{self.target}: duration must be positive")
        if (self.start is None) == (self.at is None):
            raise MaintenanceError(
                f"{self.target}: give either start (one-off, RFC 3339) or at (recurring, HH:MM UTC)"
            )
        if self.start is not None and self.start.utcoffset() is None:
            raise MaintenanceError(f"{self.target}: start needs a time zone, e.g. ...T02:00:00Z")
        if self.at is not None and self.duration > MAX_RECURRING:
            raise MaintenanceError(f"{self.target}: a recurring window lasts at most 7 days")
        bad = [d for d in self.days if d not in WEEKDAYS]
        if bad:
            raise MaintenanceError(
                f"{self.target}: unknown weekday(s) {bad}; use {', '.join(WEEKDAYS)}"
            )

    def active(self, now: datetime) -> bool:
        """Whether the window covers ``now`` (aware)."""
        if self.start is not None:
            return self.start <= now < self.start + self.duration
        assert self.at is not None
        now = now.astimezone(UTC)
        # A recurring window may have started on one of the previous days and still be running.
        for back in range(MAX_RECURRING.days + 1):
            day = (now - timedelta(days=back)).date()
            if self.days and WEEKDAYS[day.weekday()] not in self.days:
                continue
            begin = datetime.combine(day, self.at, tzinfo=UTC)
            if begin <= now < begin + self.duration:
                return True
        return False


def active_targets(windows: Iterable[MaintenanceWindow], now: datetime) -> list[str]:
    """Return the targets under maintenance at ``now`` (sorted, unique)."""
    return sorted({w.target for w in windows if w.active(now)})


def window_from_mapping(
    data: Mapping[str, Any], parse_duration: Any, parse_time: Any
) -> MaintenanceWindow:
    """Build a window from its settings form; errors name the field.

    ``{"target": "rack-a1", "days": ["sun"], "at": "02:00", "duration": "4h", "reason": ...}`` or
    ``{"target": "gpu-node-007", "start": "2026-12-05T00:00:00Z", "duration": "6h"}``.
    ``parse_duration`` / ``parse_time`` turn text into a timedelta / an aware datetime (the
    caller's parsers, so the settings and the Slack command read durations alike).
    """
    unknown = set(data) - {"target", "duration", "start", "at", "days", "reason"}
    if unknown:
        raise MaintenanceError(f"unknown field(s) {sorted(unknown)} in a maintenance window")
    target = str(data.get("target") or "")
    try:
        duration = parse_duration(str(data.get("duration") or ""))
    except ValueError as exc:
        raise MaintenanceError(f"{target or '?'}: duration: {exc}") from None
    start = None
    if data.get("start") is not None:
        try:
            start = parse_time(str(data["start"]))
        except ValueError as exc:
            raise MaintenanceError(f"{target or '?'}: start: {exc}") from None
    at = None
    if data.get("at") is not None:
        try:
            at = time.fromisoformat(str(data["at"]))
        except ValueError:
            raise MaintenanceError(f"{target or '?'}: at {data['at']!r} is not HH:MM") from None
    days_raw = data.get("days") or ()
    if isinstance(days_raw, str):
        days_raw = [days_raw]
    days = tuple(str(d).strip().lower()[:3] for d in days_raw)
    return MaintenanceWindow(
        target=target,
        duration=duration,
        start=start,
        at=at,
        days=days,
        reason=str(data.get("reason") or ""),
    )
