"""Small view models the builders read: an alert's human state and the fleet's status.

The state store has its own rows; ``bot/slack/service.py`` maps them onto these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from analysis.types import Incident


@dataclass(frozen=True)
class AlertState:
    """What people did to an alert: acknowledged, silenced, marked a false alarm, resolved."""

    status: str = "open"  # open | acknowledged | resolved
    acked_by: str | None = None
    acked_at: datetime | None = None
    silenced_until: datetime | None = None
    silenced_by: str | None = None
    silence_reason: str | None = None
    false_alarm_by: str | None = None
    false_alarm_at: datetime | None = None
    resolved_at: datetime | None = None
    merged_into: str | None = None  # resolved because a broader incident took its GPUs


@dataclass(frozen=True)
class IncidentView:
    """An incident as the bot shows it: the finding, its state and where its alert lives."""

    incident: Incident
    state: AlertState = AlertState()
    channel: str | None = None
    ts: str | None = None


@dataclass(frozen=True)
class MaintenanceView:
    """A maintenance window as people see it: its current or next occurrence and its schedule.

    ``id`` is the stored window's (for ``maintenance remove``); None for one from the settings.
    ``schedule`` reads ``one-off``, ``daily at 02:00 UTC`` or ``sun at 02:00 UTC``.
    """

    target: str
    start: datetime
    end: datetime
    active: bool
    schedule: str
    reason: str = ""
    id: int | None = None
    who: str | None = None


@dataclass(frozen=True)
class StatusView:
    """The bot's own health: last scan, data source, model age, open incidents."""

    last_scan_at: datetime | None
    last_scan_ok: bool | None
    gpus_scored: int | None
    data_source: str
    data_healthy: bool | None
    data_detail: str
    model_version: str | None
    model_age_seconds: float | None
    open_incidents: int
    now: datetime
    maintenance: tuple[MaintenanceView, ...] = ()
    clusters: tuple[tuple[str, StatusView], ...] = ()
    """A bot watching several clusters: each cluster's own status, by name."""
