"""Maintenance windows added in Slack: add, list, remove (``/gpu-risk maintenance``).

A mixin of ``storage.repository.Repository``. The windows themselves are
``analysis.maintenance.MaintenanceWindow``; the pipeline reads the live ones once per cycle
(``maintenance_windows(at)``) and treats their targets like silences. Settings windows
(``GPU_RISK_MAINTENANCE``) are not stored here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from analysis.maintenance import MaintenanceWindow
from storage.models import MaintenanceWindowRow
from storage.records import require_aware


@dataclass(frozen=True)
class MaintenanceRecord:
    """A stored maintenance window: its id (for ``remove``), the window, who added it and when."""

    id: int
    window: MaintenanceWindow
    who: str
    created_at: datetime


class MaintenanceStore:
    """Reads and writes of stored maintenance windows; one short transaction per call."""

    _sessions: sessionmaker[Session]
    _readers: sessionmaker[Session]

    def add_maintenance(
        self, window: MaintenanceWindow, who: str, at: datetime
    ) -> MaintenanceRecord:
        """Store ``window`` (added by ``who`` at ``at``); return it with its id."""
        require_aware(at, "at")
        with self._sessions.begin() as s:
            row = MaintenanceWindowRow(
                target=window.target.strip(),
                start=window.start,
                at=window.at.strftime("%H:%M") if window.at is not None else None,
                days=",".join(window.days),
                duration_s=int(window.duration.total_seconds()),
                reason=window.reason,
                who=who,
                created_at=at,
                removed_at=None,
                removed_by=None,
            )
            s.add(row)
            s.flush()
            return _record(row)

    def maintenance_windows(self, at: datetime | None = None) -> list[MaintenanceRecord]:
        """The windows not removed, oldest first; with ``at``, one-off windows over by then drop out.

        One indexed query: cheap enough for every cycle.
        """
        q = select(MaintenanceWindowRow).where(MaintenanceWindowRow.removed_at.is_(None))
        with self._readers() as s:
            rows = [_record(r) for r in s.scalars(q.order_by(MaintenanceWindowRow.id))]
        if at is None:
            return rows
        require_aware(at, "at")
        return [
            r for r in rows if r.window.start is None or r.window.start + r.window.duration > at
        ]

    def remove_maintenance(
        self, window_id: int, at: datetime, who: str
    ) -> MaintenanceRecord | None:
        """Remove a stored window; return it, or None when no such window is in force."""
        require_aware(at, "at")
        with self._sessions.begin() as s:
            row = s.get(MaintenanceWindowRow, window_id)
            if row is None or row.removed_at is not None:
                return None
            row.removed_at, row.removed_by = at, who
            return _record(row)


def _record(row: MaintenanceWindowRow) -> MaintenanceRecord:
    """The public record of a stored window."""
    window = MaintenanceWindow(
        target=row.target,
        duration=timedelta(seconds=row.duration_s),
        start=row.start,
        at=time.fromisoformat(row.at) if row.at else None,
        days=tuple(d for d in row.days.split(",") if d),
        reason=row.reason,
    )
    return MaintenanceRecord(id=row.id, window=window, who=row.who, created_at=row.created_at)
