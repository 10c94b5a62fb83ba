"""The simulator's series tables: which series exist, in the order of the history's array axes.

The physics fills arrays along these axes, ``fetch`` turns them into tidy frames and the
exposition gives them exporter labels, so all three read the same tables from here.
"""

from __future__ import annotations

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


def component_ids(spec: FleetSpec) -> list[list[str]]:
    """Return, per row of :data:`COMPONENT_SERIES`, the component id of each rack."""
    ids_by_kind = {
        "pdu": [spec.pdu_id(r) for r in range(spec.racks)],
        "cooling": [spec.crac_id(r) for r in range(spec.racks)],
        "switch": [spec.leaf_id(r) for r in range(spec.racks)],
    }
    return [ids_by_kind[c[3]] for c in COMPONENT_SERIES]
