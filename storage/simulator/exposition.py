"""How the simulated fleet is exposed: metric families with the real exporters' labels and help.

:func:`fleet_families` turns a :class:`~storage.simulator.history.FleetHistory` into the
families dcgm-exporter, the IPMI and node exporters and a facility exporter would expose; the
OpenMetrics history (:mod:`storage.simulator.openmetrics`) and the live /metrics endpoint
(:mod:`storage.simulator.exporter`) both format these families.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from storage.simulator.history import FleetHistory
from storage.simulator.layout import COMPONENT_SERIES, GPU_METRICS, NODE_SERIES, XID_COUNT_WINDOW
from storage.simulator.shape import ScenarioSpec
from storage.simulator.spec import JOB_PORTS, UP_JOBS, FleetSpec

GPU_HELP: dict[str, str] = {
    "DCGM_FI_DEV_GPU_TEMP": "GPU temperature (in C).",
    "DCGM_FI_DEV_MEMORY_TEMP": "Memory temperature (in C).",
    "DCGM_FI_DEV_POWER_USAGE": "Power draw (in W).",
    "DCGM_FI_DEV_SM_CLOCK": "SM clock frequency (in MHz).",
    "DCGM_FI_DEV_MEM_CLOCK": "Memory clock frequency (in MHz).",
    "DCGM_FI_DEV_GPU_UTIL": "GPU utilization (in %).",
    "DCGM_FI_DEV_FB_USED": "Framebuffer memory used (in MiB).",
    "DCGM_FI_DEV_XID_ERRORS": "Value of the last XID error encountered.",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": "Total number of PCIe retries.",
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": "Number of remapped rows for correctable errors",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": "Number of remapped rows for uncorrectable errors",
    "DCGM_FI_DEV_ROW_REMAP_FAILURE": "Whether remapping of rows has failed",
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": "Total number of single-bit volatile ECC errors.",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": "Total number of double-bit volatile ECC errors.",
    "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL": "Total number of NVLink flow-control CRC errors.",
    "DCGM_FI_DEV_THERMAL_VIOLATION": "Throttling duration due to thermal constraints (in us).",
    "DCGM_FI_DEV_POWER_VIOLATION": "Throttling duration due to power constraints (in us).",
}

NODE_HELP: dict[str, str] = {
    "ipmi_fan_speed_rpm": "Fan speed in rotations per minute.",
    "ipmi_temperature_celsius": "Temperature reading in degree Celsius.",
    "ipmi_dcmi_power_consumption_current_watts": "Current power consumption in Watts.",
    "ipmi_voltage_volts": "Voltage reading in Volts.",
    "node_hwmon_temp_celsius": "Hardware monitor for temperature (input)",
}

COUNTER_METRICS = frozenset({"switch_port_errors_total"})


Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Series:
    """One exported series: its labels and its values over the grid (NaN = absent)."""

    labels: Labels
    values: np.ndarray


@dataclass(frozen=True)
class Family:
    """One metric family as exporters expose it (gauge, or counter named ``*_total``)."""

    name: str
    type: str
    help: str
    series: tuple[Series, ...]


def fleet_families(history: FleetHistory) -> tuple[Family, ...]:
    """Return every exported metric family with full exporter labels (views, no copies)."""
    gpu_labels = _gpu_labels(history.spec)
    return (
        *_gpu_families(history, gpu_labels),
        _xid_count_family(history, gpu_labels),
        *_node_families(history),
        *_component_families(history),
        _up_family(history),
    )


def _gpu_labels(spec: FleetSpec) -> list[Labels]:
    """Return dcgm-exporter's labels of every GPU, in the order of the GPU axis."""
    models = [spec.model_name(n) for n in range(spec.n_nodes)]
    return [
        (
            ("gpu", str(g)),
            ("UUID", spec.gpu_uuid(node, g)),
            ("device", f"nvidia{g}"),
            ("modelName", models[n]),
            ("Hostname", node),
            ("pci_bus_id", spec.pci_bus_id(g)),
            ("instance", f"{node}:{JOB_PORTS['dcgm']}"),
            ("job", "dcgm"),
        )
        for n, node in enumerate(spec.node_names)
        for g in range(spec.gpus_per_node)
    ]


def _gpu_families(history: FleetHistory, gpu_labels: Sequence[Labels]) -> list[Family]:
    """Return one dcgm-exporter gauge family per field of :data:`GPU_METRICS`."""
    gpu = history.readings.gpu
    out = []
    for m, name in enumerate(GPU_METRICS):
        series = tuple(Series(gpu_labels[i], gpu[m, :, i]) for i in range(history.spec.n_gpus))
        out.append(Family(name, "gauge", GPU_HELP[name], series))
    return out


def _xid_count_family(history: FleetHistory, gpu_labels: Sequence[Labels]) -> Family:
    """dcgm-exporter's opt-in DCGM_EXP_XID_ERRORS_COUNT{xid}: XIDs in the last 5 minutes.

    One series per GPU and XID code, from that code's first XID on (the exporter cannot know
    a code before it happens); absent with the GPU.
    """
    window = max(1, int(XID_COUNT_WINDOW / history.step))
    counts: dict[tuple[int, int], np.ndarray] = {}
    first: dict[tuple[int, int], int] = {}
    for t, g, code in history.readings.xid_events:
        arr = counts.setdefault((g, code), np.zeros(history.steps))
        arr[t : t + window] += 1.0
        first[(g, code)] = min(first.get((g, code), t), t)
    absent = np.isnan(history.readings.gpu[0])
    series = []
    for (g, code), arr in sorted(counts.items()):
        arr[: first[(g, code)]] = np.nan  # the exporter shows a code from its first XID on
        arr[absent[:, g]] = np.nan
        series.append(Series((*gpu_labels[g][:6], ("xid", str(code)), *gpu_labels[g][6:]), arr))
    return Family(
        "DCGM_EXP_XID_ERRORS_COUNT",
        "gauge",
        "Count of XID errors within the configured time window.",
        tuple(series),
    )


def _node_families(history: FleetHistory) -> list[Family]:
    """Return the IPMI and node exporter gauges, one family per metric name."""
    by_metric: dict[str, list[Series]] = {}
    for s, (metric, sensor, job, extra) in enumerate(NODE_SERIES):
        for n, node in enumerate(history.spec.node_names):
            labels = [*extra]
            if sensor:
                labels.append(("name", sensor))
            labels += [("instance", f"{node}:{JOB_PORTS[job]}"), ("job", job)]
            series = Series(tuple(labels), history.readings.node[s, :, n])
            by_metric.setdefault(metric, []).append(series)
    return [
        Family(metric, "gauge", NODE_HELP[metric], tuple(series_list))
        for metric, series_list in by_metric.items()
    ]


def _component_families(history: FleetHistory) -> list[Family]:
    """Return the facility exporter's PDU, CRAC and switch families.

    A drawn scenario's units name their metrics and unit label in their vendor's vocabulary
    (one family per distinct Prometheus name); the plain fleet uses :data:`COMPONENT_SERIES`.
    """
    spec = history.spec
    by_name: dict[str, tuple[str, str, list[Series]]] = {}
    for c, (key, prom, label, _kind, helptext) in enumerate(COMPONENT_SERIES):
        for r, cid in enumerate(history.component_ids[c]):
            if not cid:
                continue
            name, unit_label = prom, label
            if isinstance(spec, ScenarioSpec):
                unit = spec.unit(cid)
                name, unit_label = dict(unit.names)[key], unit.label
            kind = "counter" if name in COUNTER_METRICS or key == "port_errors_total" else "gauge"
            series = Series(
                ((unit_label, cid), ("instance", "facility-exporter:9116"), ("job", "facility")),
                history.readings.component[c, :, r],
            )
            by_name.setdefault(name, (kind, helptext, []))[2].append(series)
    return [Family(name, kind, text, tuple(ss)) for name, (kind, text, ss) in by_name.items()]


def _up_family(history: FleetHistory) -> Family:
    """Return ``up`` of every scrape target (node x exporter job)."""
    up_series = tuple(
        Series(
            (("instance", f"{node}:{JOB_PORTS[job]}"), ("job", job)),
            history.readings.up[j, :, n],
        )
        for j, job in enumerate(UP_JOBS)
        for n, node in enumerate(history.spec.node_names)
    )
    return Family("up", "gauge", "1 if the scrape target was reachable.", up_series)
