"""The simulator's axes: the time grid, and which series exist in the order of the array axes.

The physics fills arrays along these axes, ``fetch`` turns them into tidy frames and the
exposition gives them exporter labels, so all three read the same tables from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from analysis.catalog import DCGM_METRICS
from storage.simulator.spec import FANS_PER_NODE, PSUS, FleetSpec

# dcgm-exporter fields, in the order of the simulator's GPU axis 0.
GPU_METRICS: tuple[str, ...] = DCGM_METRICS

# Node series: (metric, ``name`` label or "", exporter job, extra labels).
NODE_SERIES: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    *(
        ("ipmi_fan_speed_rpm", f"FAN{k + 1}", "ipmi", (("id", str(30 + k)),))
        for k in range(FANS_PER_NODE)
    ),
    ("ipmi_temperature_celsius", "Inlet Temp", "ipmi", (("id", "4"),)),
    ("ipmi_temperature_celsius", "Exhaust Temp", "ipmi", (("id", "5"),)),
    ("ipmi_dcmi_power_consumption_current_watts", "", "ipmi", ()),
    ("ipmi_voltage_volts", PSUS[0], "ipmi", (("id", "60"),)),
    ("ipmi_voltage_volts", PSUS[1], "ipmi", (("id", "61"),)),
    ("node_hwmon_temp_celsius", "", "node", (("chip", "platform_coretemp_0"), ("sensor", "temp1"))),
)

# Component series: (topology metric key, Prometheus name, label, kind, help).
COMPONENT_SERIES: tuple[tuple[str, str, str, str, str], ...] = (
    ("output_watts", "pdu_output_watts", "pdu", "pdu", "PDU output power in Watts."),
    ("output_volts", "pdu_output_volts", "pdu", "pdu", "PDU output voltage in Volts."),
    (
        "supply_temp_celsius",
        "crac_supply_air_celsius",
        "unit",
        "cooling",
        "CRAC/CDU supply air temperature in degree Celsius.",
    ),
    (
        "port_errors_total",
        "switch_port_errors_total",
        "switch",
        "switch",
        "Errors on the switch's ports (CRC, symbol, discards), summed.",
    ),
)

#: dcgm-exporter's --xid-count-window-size default: DCGM_EXP_XID_ERRORS_COUNT counts XIDs
#: of the last 5 minutes.
XID_COUNT_WINDOW = timedelta(minutes=5)


def component_ids(spec: FleetSpec) -> list[list[str]]:
    """Return, per row of :data:`COMPONENT_SERIES`, the id of each component column.

    A fleet with a PDU, CRAC and leaf per rack has one column per rack; a fleet whose components
    serve several racks has one column per distinct component, padded with "" to the widest kind
    (the readings hold NaN there).
    """
    ids_by_kind = {
        kind: [cid for cid, _racks in spec.components_of_kind(kind)]
        for kind in ("pdu", "cooling", "switch")
    }
    width = max(len(v) for v in ids_by_kind.values())
    return [ids_by_kind[c[3]] + [""] * (width - len(ids_by_kind[c[3]])) for c in COMPONENT_SERIES]


@dataclass(frozen=True)
class Grid:
    """The history's time grid and the fleet's axes: sizes, step lengths and index maps."""

    t_n: int  # time steps
    g_n: int  # GPUs
    n_n: int  # nodes
    r_n: int  # racks
    gpn: int  # GPUs per node
    nodes_per_rack: int
    step_s: float  # step in seconds
    diurnal: np.ndarray  # [time] the day's load shape, 1 at 15:00 UTC
    node_of_gpu: np.ndarray  # [GPU] node index
    rack_of_node: np.ndarray  # [node] rack index
    node_pos: np.ndarray  # [node] height in the rack, 0 (bottom) .. 1 (top)

    @property
    def step_min(self) -> float:
        """Return the step in minutes."""
        return self.step_s / 60.0

    @property
    def step_us(self) -> float:
        """Return the step in microseconds (the unit of DCGM's violation counters)."""
        return self.step_s * 1e6


def make_grid(spec: FleetSpec, *, t0_ns: int, steps: int, step: timedelta) -> Grid:
    """Return the grid of ``steps`` samples ``step`` apart from ``t0_ns`` over ``spec``'s fleet."""
    n_n, gpn = spec.n_nodes, spec.gpus_per_node
    step_s = step.total_seconds()
    epoch = t0_ns / 1e9 + np.arange(steps) * step_s
    hour = (epoch % 86400.0) / 3600.0
    return Grid(
        t_n=steps,
        g_n=spec.n_gpus,
        n_n=n_n,
        r_n=spec.racks,
        gpn=gpn,
        nodes_per_rack=spec.nodes_per_rack,
        step_s=step_s,
        diurnal=0.5 * (1.0 + np.cos(2 * np.pi * (hour - 15.0) / 24.0)),
        node_of_gpu=np.repeat(np.arange(n_n), gpn),
        rack_of_node=np.arange(n_n) // spec.nodes_per_rack,
        node_pos=(np.arange(n_n) % spec.nodes_per_rack) / max(1, spec.nodes_per_rack - 1),
    )
