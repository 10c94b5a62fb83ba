"""The metrics-source interface the pipeline reads through (Prometheus or the simulator)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from analysis.types import FleetFrames


class MetricsSourceError(RuntimeError):
    """The metrics source could not answer; the message says what failed and what to check."""


@runtime_checkable
class MetricsSource(Protocol):
    """Anything that returns the fleet's frames for a time window."""

    def fetch(self, start: datetime, end: datetime, step: timedelta) -> FleetFrames:
        """Return every GPU, node, component and ``up`` series in [start, end] at ``step``."""
        ...
