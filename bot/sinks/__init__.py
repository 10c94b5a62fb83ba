"""Notification sinks: the ``Sink`` interface (``base``), ``dispatch``, and ``FanOut``.

Concrete sinks live in submodules: ``bot.sinks.console`` (the terminal, with an optional JSON-lines
log), ``bot.sinks.slack`` (Slack, through ``bot.slack``) and ``bot.sinks.alertmanager``
(Alertmanager's v2 API, exported here); ``ByCluster`` routes each row to its cluster's sink.
Read ``Sink``'s docstring to add one.
"""

from __future__ import annotations

from bot.sinks.alertmanager import AlertmanagerSink, resend_open_alerts
from bot.sinks.base import (
    INCIDENT_KINDS,
    KINDS,
    DataSourceNote,
    Envelope,
    Notification,
    Sink,
    UnknownKindError,
    decode,
    dispatch,
)
from bot.sinks.bycluster import ByCluster
from bot.sinks.fanout import FanOut

__all__ = [
    "INCIDENT_KINDS",
    "KINDS",
    "AlertmanagerSink",
    "ByCluster",
    "DataSourceNote",
    "Envelope",
    "FanOut",
    "Notification",
    "Sink",
    "UnknownKindError",
    "decode",
    "dispatch",
    "resend_open_alerts",
]
