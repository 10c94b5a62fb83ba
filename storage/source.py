"""The metrics-source interface the pipeline reads through (Prometheus or the simulator)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from analysis.types import FleetFrames


class MetricsSourceError(RuntimeError):
    """The metrics source could not answer; the message says what failed and what to check."""


@runtime_checkable
class MetricsSource(Protocol):
    """Anything that returns the fleet's frames for a time window, and the cordoned nodes."""

    def fetch(self, start: datetime, end: datetime, step: timedelta) -> FleetFrames:
        """Return every GPU, node, component and ``up`` series in [start, end] at ``step``."""
        ...

    def cordoned(self, at: datetime) -> frozenset[str]:
        """Return the nodes cordoned (unschedulable) at ``at``: treated as under maintenance.

        Node names as the GPU frames name them (the DCGM ``Hostname``); empty when nothing is
        cordoned or the source does not know. MetricsSourceError when the source cannot answer.
        """
        ...
