"""Maintenance windows for people: their current or next occurrence and a readable schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from analysis.maintenance import MAX_RECURRING, WEEKDAYS, MaintenanceWindow
from bot.blocks.models import MaintenanceView


def occurrence(window: MaintenanceWindow, now: datetime) -> tuple[datetime, datetime] | None:
    """The window's occurrence running at ``now``, else its next one; None when it is over."""
    if window.start is not None:
        end = window.start + window.duration
        return (window.start, end) if end > now else None
    assert window.at is not None
    now = now.astimezone(UTC)
    for offset in range(-MAX_RECURRING.days - 1, 8):
        day = (now + timedelta(days=offset)).date()
        if window.days and WEEKDAYS[day.weekday()] not in window.days:
            continue
        begin = datetime.combine(day, window.at, tzinfo=UTC)
        if begin + window.duration > now:
            return begin, begin + window.duration
    return None


def schedule_text(window: MaintenanceWindow) -> str:
    """``one-off``, ``daily at 02:00 UTC for 4h`` or ``sun,wed at 02:00 UTC for 4h``."""
    from bot.durations import describe

    length = describe(window.duration).split(" (")[0]
    if window.at is None:
        return f"one-off, {length}"
    days = ",".join(window.days) if window.days else "daily"
    return f"{days} at {window.at:%H:%M} UTC for {length}"


def maintenance_view(
    window: MaintenanceWindow, now: datetime, *, id: int | None = None, who: str | None = None
) -> MaintenanceView | None:
    """The window as shown in Slack, or None when it will not happen again."""
    when = occurrence(window, now)
    if when is None:
        return None
    start, end = when
    return MaintenanceView(
        target=window.target,
        start=start,
        end=end,
        active=start <= now < end,
        schedule=schedule_text(window),
        reason=window.reason,
        id=id,
        who=who,
    )
