"""A simulated GPU fleet with ground-truth faults: the demo's, the tests' and the backtest's data.

``FleetSimulator`` implements ``storage.source.MetricsSource``; ``write_history`` writes
OpenMetrics + topology.yaml + faults.json; ``storage.simulator.exporter`` serves live /metrics.
``draw_scenario(seed)`` draws a whole randomized scenario (shape, names, PromQL, sampling,
workload, faults, benign events): :mod:`storage.simulator.scenario`.
"""

from storage.simulator.faults import (
    DEFAULT_FAULT_RATE,
    FAULT_KINDS,
    FAULT_MIX,
    FAULT_SIGNALS,
    PRECURSOR_HOURS,
    affected_of,
    make_fault,
)
from storage.simulator.fleet import FleetSimulator
from storage.simulator.layout import GPU_METRICS, NODE_SERIES
from storage.simulator.scenario import BENIGN_KINDS, Scenario, draw_scenario
from storage.simulator.spec import FleetSpec

__all__ = [
    "BENIGN_KINDS",
    "DEFAULT_FAULT_RATE",
    "FAULT_KINDS",
    "FAULT_MIX",
    "FAULT_SIGNALS",
    "GPU_METRICS",
    "NODE_SERIES",
    "PRECURSOR_HOURS",
    "FleetSimulator",
    "FleetSpec",
    "Scenario",
    "affected_of",
    "draw_scenario",
    "make_fault",
]
