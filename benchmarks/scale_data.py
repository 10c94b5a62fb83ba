"""A synthetic fleet of N GPUs for the scale benchmark, streamed into VictoriaMetrics.

The series carry the exporters' real names and labels (``analysis.catalog`` DCGM_METRICS and
NODE_METRICS, the simulator's label sets: Hostname, gpu, UUID, device, modelName, pci_bus_id,
instance, job; ipmi/node series with ``name`` and ``instance="<node>:<port>"``; the facility
exporter's PDU/CRAC/switch series; ``up``), but no physics and no faults: healthy noise around a
per-GPU level, so N can reach 100k without holding the fleet in memory. The fleet is generated
one rack (32 nodes x 8 GPUs) at a time and posted as JSON lines to ``/api/v1/import`` while the
next rack is being formatted.

Layout: racks of ``NODES_PER_RACK`` nodes of 8 GPUs (the last rack may be short), one PDU, CRAC
and leaf switch per rack, written as ``topology.yaml`` by ``storage.topology.dump_topology``.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import requests

from analysis.catalog import DCGM_METRICS
from analysis.types import Component, Rack, Topology

# The simulator's exporter labels (storage/simulator/spec.py and layout.py), copied so that this
# benchmark does not import the simulator package (its physics is not needed here).
MODEL_NAME = "NVIDIA H100 80GB HBM3"
HGX_BUS_IDS = ("18", "2A", "3A", "5D", "9A", "AB", "BA", "DB")
JOB_PORTS = {"dcgm": 9400, "ipmi": 9290, "node": 9100}
UP_JOBS = ("dcgm", "ipmi", "node")
PSUS = ("PSU1 12V", "PSU2 12V")
# Node series: (metric, ``name`` label or "", exporter job, extra labels).
NODE_SERIES: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    *(("ipmi_fan_speed_rpm", f"FAN{k + 1}", "ipmi", (("id", str(30 + k)),)) for k in range(6)),
    ("ipmi_temperature_celsius", "Inlet Temp", "ipmi", (("id", "4"),)),
    ("ipmi_temperature_celsius", "Exhaust Temp", "ipmi", (("id", "5"),)),
    ("ipmi_dcmi_power_consumption_current_watts", "", "ipmi", ()),
    ("ipmi_voltage_volts", PSUS[0], "ipmi", (("id", "60"),)),
    ("ipmi_voltage_volts", PSUS[1], "ipmi", (("id", "61"),)),
    ("node_hwmon_temp_celsius", "", "node", (("chip", "platform_coretemp_0"), ("sensor", "temp1"))),
)
# Facility series: (Prometheus name, component label, component kind).
COMPONENT_SERIES: tuple[tuple[str, str, str], ...] = (
    ("pdu_output_watts", "pdu", "pdu"),
    ("pdu_output_volts", "pdu", "pdu"),
    ("crac_supply_air_celsius", "unit", "cooling"),
    ("switch_port_errors_total", "switch", "switch"),
)

GPUS_PER_NODE = 8
NODES_PER_RACK = 32

# Per DCGM field: (typical level, spread between GPUs, noise per sample, decimals, counter?).
_GPU_SHAPE: dict[str, tuple[float, float, float, int, bool]] = {
    "DCGM_FI_DEV_GPU_TEMP": (62.0, 4.0, 1.0, 0, False),
    "DCGM_FI_DEV_MEMORY_TEMP": (70.0, 4.0, 1.0, 0, False),
    "DCGM_FI_DEV_POWER_USAGE": (520.0, 40.0, 15.0, 1, False),
    "DCGM_FI_DEV_SM_CLOCK": (1755.0, 30.0, 20.0, 0, False),
    "DCGM_FI_DEV_MEM_CLOCK": (2619.0, 0.0, 0.0, 0, False),
    "DCGM_FI_DEV_GPU_UTIL": (85.0, 8.0, 5.0, 0, False),
    "DCGM_FI_DEV_FB_USED": (61000.0, 4000.0, 300.0, 0, False),
    "DCGM_FI_DEV_XID_ERRORS": (0.0, 0.0, 0.0, 0, False),
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": (0.0, 0.0, 0.0, 0, True),
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": (0.0, 0.0, 0.0, 0, False),
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": (0.0, 0.0, 0.0, 0, False),
    "DCGM_FI_DEV_ROW_REMAP_FAILURE": (0.0, 0.0, 0.0, 0, False),
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": (0.0, 0.0, 0.05, 0, True),
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": (0.0, 0.0, 0.0, 0, True),
    "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL": (0.0, 0.0, 0.0, 0, True),
    "DCGM_FI_DEV_THERMAL_VIOLATION": (0.0, 0.0, 0.0, 0, True),
    "DCGM_FI_DEV_POWER_VIOLATION": (0.0, 0.0, 0.0, 0, True),
}
# Per node metric name: (level, spread, noise, decimals).
_NODE_SHAPE: dict[str, tuple[float, float, float, int]] = {
    "ipmi_fan_speed_rpm": (9000.0, 400.0, 80.0, 0),
    "ipmi_temperature_celsius": (27.0, 2.0, 0.3, 1),
    "ipmi_dcmi_power_consumption_current_watts": (6200.0, 300.0, 60.0, 0),
    "ipmi_voltage_volts": (12.1, 0.05, 0.02, 2),
    "node_hwmon_temp_celsius": (55.0, 3.0, 1.0, 1),
}
# Per component Prometheus name: (level, spread, noise, decimals, counter?).
_COMPONENT_SHAPE: dict[str, tuple[float, float, float, int, bool]] = {
    "pdu_output_watts": (52000.0, 2000.0, 400.0, 0, False),
    "pdu_output_volts": (415.0, 2.0, 0.5, 1, False),
    "crac_supply_air_celsius": (18.0, 0.5, 0.1, 2, False),
    "switch_port_errors_total": (0.0, 0.0, 0.0, 0, True),
}


@dataclass(frozen=True)
class FleetShape:
    """N GPUs as racks of 32 nodes x 8 GPUs (N is rounded up to whole nodes)."""

    gpus: int

    @property
    def nodes(self) -> int:
        """Number of nodes."""
        return -(-self.gpus // GPUS_PER_NODE)

    @property
    def racks(self) -> int:
        """Number of racks (the last one may hold fewer than 32 nodes)."""
        return -(-self.nodes // NODES_PER_RACK)

    @property
    def n_gpus(self) -> int:
        """GPUs actually generated (whole nodes)."""
        return self.nodes * GPUS_PER_NODE

    def node_name(self, n: int) -> str:
        """Node ``n`` (0-based): gpu-node-00001 ..."""
        return f"gpu-node-{n + 1:05d}"

    def rack_nodes(self, r: int) -> range:
        """Node indices of rack ``r``."""
        return range(r * NODES_PER_RACK, min(self.nodes, (r + 1) * NODES_PER_RACK))

    def topology(self) -> Topology:
        """Racks with one PDU, CRAC and leaf switch each, with the facility exporter's PromQL."""
        racks, components = [], {}
        for r in range(self.racks):
            pdu, crac, leaf = f"pdu-a{r + 1}", f"crac-a{r + 1}", f"leaf-a{r + 1}"
            nodes = tuple(self.node_name(n) for n in self.rack_nodes(r))
            racks.append(
                Rack(
                    id=f"rack-a{r + 1}",
                    nodes=nodes,
                    power=(pdu,),
                    cooling=(crac,),
                    network=(leaf,),
                )
            )
            components[pdu] = Component(
                id=pdu,
                kind="pdu",
                metrics={
                    "output_watts": f'pdu_output_watts{{pdu="{pdu}"}}',
                    "output_volts": f'pdu_output_volts{{pdu="{pdu}"}}',
                },
            )
            components[crac] = Component(
                id=crac,
                kind="cooling",
                metrics={"supply_temp_celsius": f'crac_supply_air_celsius{{unit="{crac}"}}'},
            )
            components[leaf] = Component(
                id=leaf,
                kind="switch",
                metrics={"port_errors_total": f'switch_port_errors_total{{switch="{leaf}"}}'},
            )
        return Topology(racks=tuple(racks), components=components)


def _gpu_labels(node: str, g: int) -> dict[str, str]:
    """dcgm-exporter's labels of GPU ``g`` of ``node`` (as the simulator's exposition)."""
    bus = HGX_BUS_IDS[g] if g < len(HGX_BUS_IDS) else f"{0xC0 + g:02X}"
    return {
        "gpu": str(g),
        "UUID": "GPU-" + str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{node}/{g}.gpu-risk.sim")),
        "device": f"nvidia{g}",
        "modelName": MODEL_NAME,
        "Hostname": node,
        "pci_bus_id": f"00000000:{bus}:00.0",
        "instance": f"{node}:{JOB_PORTS['dcgm']}",
        "job": "dcgm",
    }


def _values(
    rng: np.random.Generator,
    rows: int,
    steps: int,
    shape: tuple[float, float, float, int, bool],
) -> np.ndarray:
    """[rows, steps] healthy values: a per-row level plus noise; counters never decrease."""
    level, spread, noise, decimals, counter = shape
    if counter:
        if noise == 0:
            return np.zeros((rows, steps))
        return np.cumsum(rng.poisson(noise, (rows, steps)), axis=1).astype(float)
    base = level + spread * rng.standard_normal((rows, 1))
    out = base + noise * rng.standard_normal((rows, steps)) if noise else np.repeat(base, steps, 1)
    return np.round(np.maximum(out, 0.0), decimals)


def _format_rows(values: np.ndarray) -> list[str]:
    """Each row as a JSON array body ("1,2.5,3"), integers without a fraction."""
    if np.all(values == np.round(values)):
        return [",".join(map(str, row)) for row in values.astype(np.int64).tolist()]
    return [",".join(map(repr, row)) for row in values.tolist()]


def _lines(labels: list[dict[str, str]], values: np.ndarray, ts: str) -> Iterator[str]:
    """JSON lines of /api/v1/import: one per series."""
    for lab, body in zip(labels, _format_rows(values), strict=True):
        yield f'{{"metric":{json.dumps(lab)},"values":[{body}],"timestamps":{ts}}}\n'


def rack_lines(
    shape: FleetShape, r: int, times_ms: np.ndarray, ts: str, seed: int = 0
) -> Iterator[str]:
    """Every series of rack ``r`` (its GPUs, nodes, ``up`` and its three components)."""
    rng = np.random.default_rng([seed, r])
    steps = len(times_ms)
    nodes = [shape.node_name(n) for n in shape.rack_nodes(r)]
    gpu_labels = [_gpu_labels(node, g) for node in nodes for g in range(GPUS_PER_NODE)]
    for metric in DCGM_METRICS:
        labels = [{"__name__": metric, **lab} for lab in gpu_labels]
        yield from _lines(labels, _values(rng, len(labels), steps, _GPU_SHAPE[metric]), ts)
    for metric, sensor, job, extra in NODE_SERIES:
        labels = []
        for node in nodes:
            lab = {"__name__": metric, **dict(extra)}
            if sensor:
                lab["name"] = sensor
            lab |= {"instance": f"{node}:{JOB_PORTS[job]}", "job": job}
            labels.append(lab)
        level, spread, noise, decimals = _NODE_SHAPE[metric]
        vals = _values(rng, len(labels), steps, (level, spread, noise, decimals, False))
        yield from _lines(labels, vals, ts)
    up = [
        {"__name__": "up", "instance": f"{node}:{JOB_PORTS[job]}", "job": job}
        for job in UP_JOBS
        for node in nodes
    ]
    yield from _lines(up, np.ones((len(up), steps)), ts)
    ids = {"pdu": f"pdu-a{r + 1}", "cooling": f"crac-a{r + 1}", "switch": f"leaf-a{r + 1}"}
    for prom, label, kind in COMPONENT_SERIES:
        lab = {
            "__name__": prom,
            label: ids[kind],
            "instance": "facility-exporter:9116",
            "job": "facility",
        }
        yield from _lines([lab], _values(rng, 1, steps, _COMPONENT_SHAPE[prom]), ts)


@dataclass(frozen=True)
class LoadStats:
    """What a load sent: series, samples, bytes, and how long generating and importing took."""

    series: int
    samples: int
    bytes: int
    seconds: float
    generate_seconds: float


def load_fleet(
    url: str | None,
    shape: FleetShape,
    start: datetime,
    end: datetime,
    step: timedelta,
    *,
    seed: int = 0,
    racks_per_post: int = 4,
) -> LoadStats:
    """Generate the fleet rack by rack and POST it to ``url``/api/v1/import (None: dry run).

    A sender thread posts one batch while the next is generated (bounded queue: at most two
    batches in memory). Samples are on the ``step`` grid in [start, end].
    """
    t0 = time.perf_counter()
    times_ms = np.arange(
        int(start.timestamp() * 1000),
        int(end.timestamp() * 1000) + 1,
        int(step / timedelta(milliseconds=1)),
    )
    ts = "[" + ",".join(map(str, times_ms.tolist())) + "]"
    batches: queue.Queue[bytes | None] = queue.Queue(maxsize=2)
    errors: list[BaseException] = []
    session = requests.Session()

    def sender() -> None:
        while (body := batches.get()) is not None:
            if errors or url is None:
                continue
            try:
                r = session.post(url + "/api/v1/import", data=body, timeout=600)
                r.raise_for_status()
            except BaseException as exc:  # reported by the generating thread
                errors.append(exc)

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    series = nbytes = 0
    gen = 0.0
    try:
        for first in range(0, shape.racks, racks_per_post):
            g0 = time.perf_counter()
            parts: list[str] = []
            for r in range(first, min(shape.racks, first + racks_per_post)):
                parts.extend(rack_lines(shape, r, times_ms, ts, seed))
            body = "".join(parts).encode()
            gen += time.perf_counter() - g0
            series += len(parts)
            nbytes += len(body)
            del parts
            if errors:
                break
            batches.put(body)
    finally:
        batches.put(None)
        thread.join()
    if errors:
        raise RuntimeError(f"import into {url} failed: {errors[0]}")
    if url is not None:
        session.get(url + "/internal/force_flush", timeout=120).raise_for_status()
    return LoadStats(series, series * len(times_ms), nbytes, time.perf_counter() - t0, gen)


def write_topology(shape: FleetShape, path: Path) -> Path:
    """Write the fleet's topology.yaml (storage.topology.dump_topology)."""
    from storage.topology import dump_topology

    dump_topology(shape.topology(), path)
    return path
