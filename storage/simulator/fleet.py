"""The simulated fleet as the rest of gpu-risk uses it: history, fetch(), families and files.

:class:`FleetSimulator` is the fleet's history (:class:`~storage.simulator.history.FleetHistory`,
whose physics is :mod:`storage.simulator.physics`) plus its exposition: the exporters' metric
families (:mod:`storage.simulator.exposition`) and the OpenMetrics history written for promtool
(:mod:`storage.simulator.openmetrics`). Same spec, start, duration, step and seed give the same
history, bit for bit.

The names this module used to define are re-exported so existing imports keep working.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storage.simulator.exposition import (
    COUNTER_METRICS,
    GPU_HELP,
    NODE_HELP,
    XID_COUNT_WINDOW,
    Family,
    Series,
    fleet_families,
)
from storage.simulator.history import FleetHistory
from storage.simulator.layout import COMPONENT_SERIES, GPU_METRICS, NODE_SERIES
from storage.simulator.openmetrics import write_openmetrics
from storage.simulator.physics import SLOWDOWN_C, TDP_WATTS
from storage.simulator.workload import FB_TOTAL_MIB
from storage.topology import dump_topology

__all__ = [
    "COMPONENT_SERIES",
    "COUNTER_METRICS",
    "FB_TOTAL_MIB",
    "GPU_HELP",
    "GPU_METRICS",
    "NODE_HELP",
    "NODE_SERIES",
    "SLOWDOWN_C",
    "TDP_WATTS",
    "XID_COUNT_WINDOW",
    "Family",
    "FleetSimulator",
    "Series",
    "default_start",
]


class FleetSimulator(FleetHistory):
    """A simulated GPU fleet with ground-truth faults; implements ``MetricsSource``."""

    def families(self) -> tuple[Family, ...]:
        """Return every exported metric family with full exporter labels (views, no copies)."""
        return fleet_families(self)

    def write_history(self, out_dir: Path) -> None:
        """Write ``metrics.om``, ``topology.yaml``, ``faults.json`` (and a scenario's ``benign.json``)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_openmetrics(self, out / "metrics.om")
        dump_topology(self.topology, out / "topology.yaml")
        (out / "faults.json").write_text(
            json.dumps([f.as_dict() for f in self.faults], indent=2) + "\n", encoding="utf-8"
        )
        if self.variation is not None:  # a drawn scenario: its benign events too
            (out / "benign.json").write_text(
                json.dumps([e.as_dict() for e in self.benign], indent=2) + "\n", encoding="utf-8"
            )


def default_start(days: float, now: datetime | None = None) -> datetime:
    """Return midnight UTC today minus ``days`` (the CLI's default history start)."""
    ref = now or datetime.now(UTC)
    midnight = ref.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=days)
