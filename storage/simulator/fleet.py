"""The simulated fleet: normal behaviour (jobs, power, heat, noise), faults, and fetch().

The whole history is generated once, at construction, as numpy arrays over (time x GPU),
(time x node) and (time x component); ``fetch`` slices it like a Prometheus range query.
Same spec, start, duration, step and seed give the same history, bit for bit. The normal
behaviour draws from its own random stream, so a run with faults differs from the healthy run
of the same seed only where a fault acts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from analysis.catalog import DCGM_METRICS
from analysis.types import (
    COMPONENT_COLUMNS,
    GPU_COLUMNS,
    NODE_COLUMNS,
    UP_COLUMNS,
    Fault,
    FleetFrames,
    Topology,
)
from storage.simulator.faults import (
    DEFAULT_FAULT_RATE,
    REPAIR_HOURS,
    Effects,
    FaultWindow,
    apply_fault,
    check_faults,
    draw_schedule,
    fault_rng,
)
from storage.simulator.spec import (
    FANS_PER_NODE,
    JOB_PORTS,
    MODEL_NAME,
    PSUS,
    UP_JOBS,
    FleetSpec,
)
from storage.source import MetricsSourceError
from storage.topology import dump_topology

# dcgm-exporter fields, in the order of the simulator's GPU axis 0.
GPU_METRICS: tuple[str, ...] = DCGM_METRICS

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

NODE_HELP: dict[str, str] = {
    "ipmi_fan_speed_rpm": "Fan speed in rotations per minute.",
    "ipmi_temperature_celsius": "Temperature reading in degree Celsius.",
    "ipmi_dcmi_power_consumption_current_watts": "Current power consumption in Watts.",
    "ipmi_voltage_volts": "Voltage reading in Volts.",
    "node_hwmon_temp_celsius": "Hardware monitor for temperature (input)",
}

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
COUNTER_METRICS = frozenset({"switch_port_errors_total"})

XID_COUNT_WINDOW = timedelta(minutes=5)  # dcgm-exporter's --xid-count-window-size default
FB_TOTAL_MIB = 81559.0
TDP_WATTS = 700.0
SLOWDOWN_C = 86.0


def _ns(ts: datetime) -> int:
    """Return an aware datetime as integer nanoseconds since the epoch."""
    if ts.tzinfo is None:
        raise MetricsSourceError(f"time {ts!r} has no timezone: pass an aware UTC datetime")
    return int(pd.Timestamp(ts).value)


@dataclass(frozen=True)
class Series:
    """One exported series: its labels and its values over the grid (NaN = absent)."""

    labels: tuple[tuple[str, str], ...]
    values: np.ndarray


@dataclass(frozen=True)
class Family:
    """One metric family as exporters expose it (gauge, or counter named ``*_total``)."""

    name: str
    type: str
    help: str
    series: tuple[Series, ...]


class FleetSimulator:
    """A simulated GPU fleet with ground-truth faults; implements ``MetricsSource``."""

    def __init__(
        self,
        spec: FleetSpec | None = None,
        *,
        start: datetime,
        duration: timedelta,
        step: timedelta = timedelta(minutes=1),
        seed: int = 0,
        faults: Sequence[Fault] | None = None,
        fault_rate: float = DEFAULT_FAULT_RATE,
        healthy: bool = False,
        warmup: timedelta | None = None,
    ) -> None:
        """Generate the history of ``spec`` over [start, start + duration) at ``step``.

        ``faults=None`` draws a random schedule (``fault_rate`` faults per 100 GPU-days, none
        in the first ``warmup``, default min(24 h, duration / 3)); ``healthy=True`` means no
        faults at all; an explicit list injects exactly those faults.
        """
        self.spec = spec or FleetSpec()
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        if step <= timedelta(0) or step.total_seconds() != int(step.total_seconds()):
            raise ValueError(f"step must be a positive whole number of seconds, got {step}")
        if duration < step:
            raise ValueError(f"duration ({duration}) must be at least one step ({step})")
        self.start = pd.Timestamp(start).tz_convert("UTC").floor("s").to_pydatetime()
        self.step = step
        self.seed = int(seed)
        self.steps = int(duration / step)
        self.end = self.start + self.steps * step
        self.topology: Topology = self.spec.topology()
        if healthy:
            chosen: tuple[Fault, ...] = ()
        elif faults is None:
            wu = warmup if warmup is not None else min(timedelta(hours=24), duration / 3)
            chosen = draw_schedule(
                self.spec,
                start=self.start,
                end=self.end,
                warmup=wu,
                seed=self.seed,
                fault_rate=fault_rate,
            )
        else:
            chosen = tuple(faults)
            check_faults(chosen, self.spec)
        self.faults: tuple[Fault, ...] = chosen
        self.repairs: dict[str, datetime] = {}
        self._t0_ns = _ns(self.start)
        self._step_ns = int(step.total_seconds()) * 1_000_000_000
        self._generate()

    # ------------------------------------------------------------------ public API

    @property
    def times(self) -> pd.DatetimeIndex:
        """Return the simulator's sample times (UTC)."""
        return pd.to_datetime(self._t0_ns + np.arange(self.steps) * self._step_ns, utc=True)

    def index_at(self, ts: datetime) -> int:
        """Return the grid index of the latest sample at or before ``ts`` (may be out of range)."""
        return (_ns(ts) - self._t0_ns) // self._step_ns

    def fetch(self, start: datetime, end: datetime, step: timedelta) -> FleetFrames:
        """Return the fleet's frames at start, start+step, ... <= end, like a range query.

        Each query time takes the latest simulated sample at or before it. Absent samples
        (scrape gaps, a node that is down, a GPU that fell off the bus) are absent rows.
        """
        s_ns, e_ns = _ns(start), _ns(end)
        step_ns = int(step.total_seconds() * 1e9)
        if step_ns <= 0:
            raise MetricsSourceError(f"step must be positive, got {step}")
        if e_ns < s_ns:
            raise MetricsSourceError(f"end ({end}) is before start ({start})")
        if (e_ns - s_ns) // step_ns > 1_000_000:
            raise MetricsSourceError("too many points in one query: raise the step")
        q = np.arange(s_ns, e_ns + 1, step_ns, dtype=np.int64)
        idx = (q - self._t0_ns) // self._step_ns
        ok = (q >= self._t0_ns) & (idx < self.steps)
        q, idx = q[ok], idx[ok]
        return FleetFrames(
            gpu=self._gpu_frame(q, idx),
            node=self._node_frame(q, idx),
            component=self._component_frame(q, idx),
            up=self._up_frame(q, idx),
            start=start,
            end=end,
            step=step,
        )

    def families(self) -> tuple[Family, ...]:
        """Return every exported metric family with full exporter labels (views, no copies)."""
        spec = self.spec
        out: list[Family] = []
        nodes = spec.node_names
        gpn = spec.gpus_per_node
        gpu_labels: list[tuple[tuple[str, str], ...]] = []
        for n, node in enumerate(nodes):
            for g in range(gpn):
                gpu_labels.append(
                    (
                        ("gpu", str(g)),
                        ("UUID", spec.gpu_uuid(node, g)),
                        ("device", f"nvidia{g}"),
                        ("modelName", MODEL_NAME),
                        ("Hostname", node),
                        ("pci_bus_id", spec.pci_bus_id(g)),
                        ("instance", f"{node}:{JOB_PORTS['dcgm']}"),
                        ("job", "dcgm"),
                    )
                )
            del n
        for m, name in enumerate(GPU_METRICS):
            series = tuple(Series(gpu_labels[i], self._gpu[m, :, i]) for i in range(spec.n_gpus))
            out.append(Family(name, "gauge", GPU_HELP[name], series))
        out.append(self._xid_count_family(gpu_labels))
        by_metric: dict[str, list[Series]] = {}
        for s, (metric, sensor, job, extra) in enumerate(NODE_SERIES):
            for n, node in enumerate(nodes):
                labels = [*extra]
                if sensor:
                    labels.append(("name", sensor))
                labels += [("instance", f"{node}:{JOB_PORTS[job]}"), ("job", job)]
                by_metric.setdefault(metric, []).append(Series(tuple(labels), self._node[s, :, n]))
        for metric, series_list in by_metric.items():
            out.append(Family(metric, "gauge", NODE_HELP[metric], tuple(series_list)))
        for c, (_key, prom, label, _kind, helptext) in enumerate(COMPONENT_SERIES):
            comp_ids = self._component_ids[c]
            series = tuple(
                Series(
                    ((label, cid), ("instance", "facility-exporter:9116"), ("job", "facility")),
                    self._comp[c, :, r],
                )
                for r, cid in enumerate(comp_ids)
            )
            kind = "counter" if prom in COUNTER_METRICS else "gauge"
            out.append(Family(prom, kind, helptext, series))
        up_series = tuple(
            Series(
                (("instance", f"{node}:{JOB_PORTS[job]}"), ("job", job)),
                self._up[j, :, n],
            )
            for j, job in enumerate(UP_JOBS)
            for n, node in enumerate(nodes)
        )
        out.append(Family("up", "gauge", "1 if the scrape target was reachable.", up_series))
        return tuple(out)

    def _xid_count_family(self, gpu_labels: Sequence[tuple[tuple[str, str], ...]]) -> Family:
        """dcgm-exporter's opt-in DCGM_EXP_XID_ERRORS_COUNT{xid}: XIDs in the last 5 minutes.

        One series per GPU and XID code that GPU ever shows in the run; absent with the GPU.
        """
        window = max(1, int(XID_COUNT_WINDOW / self.step))
        counts: dict[tuple[int, int], np.ndarray] = {}
        for t, g, code in self._xid_events:
            arr = counts.setdefault((g, code), np.zeros(self.steps))
            arr[t : t + window] += 1.0
        absent = np.isnan(self._gpu[0])
        series = []
        for (g, code), arr in sorted(counts.items()):
            arr[absent[:, g]] = np.nan
            series.append(Series((*gpu_labels[g][:6], ("xid", str(code)), *gpu_labels[g][6:]), arr))
        return Family(
            "DCGM_EXP_XID_ERRORS_COUNT",
            "gauge",
            "Count of XID errors within the configured time window.",
            tuple(series),
        )

    def write_history(self, out_dir: Path) -> None:
        """Write ``metrics.om`` (OpenMetrics), ``topology.yaml`` and ``faults.json`` to out_dir."""
        from storage.simulator.openmetrics import write_openmetrics

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_openmetrics(self, out / "metrics.om")
        dump_topology(self.topology, out / "topology.yaml")
        (out / "faults.json").write_text(
            json.dumps([f.as_dict() for f in self.faults], indent=2) + "\n", encoding="utf-8"
        )

    # ------------------------------------------------------------------ frames

    def _gpu_frame(self, q: np.ndarray, idx: np.ndarray) -> pd.DataFrame:
        """Tidy GPU frame for query times ``q`` mapped to grid indices ``idx``."""
        if len(idx) == 0:
            return FleetFrames.empty_frame(GPU_COLUMNS)
        sub = self._gpu[:, idx, :]
        mask = ~np.isnan(sub)
        mi, ki, gi = np.nonzero(mask)
        return pd.DataFrame(
            {
                "ts": pd.to_datetime(q[ki], utc=True),
                "node": self._gpu_node_arr[gi],
                "gpu": self._gpu_idx_arr[gi],
                "metric": self._gpu_metric_arr[mi],
                "value": sub[mask],
            }
        )

    def _node_frame(self, q: np.ndarray, idx: np.ndarray) -> pd.DataFrame:
        """Tidy node frame (metric = Prometheus name, sensor = its ``name`` label)."""
        if len(idx) == 0:
            return FleetFrames.empty_frame(NODE_COLUMNS)
        sub = self._node[:, idx, :]
        mask = ~np.isnan(sub)
        si, ki, ni = np.nonzero(mask)
        return pd.DataFrame(
            {
                "ts": pd.to_datetime(q[ki], utc=True),
                "node": self._node_name_arr[ni],
                "metric": self._node_metric_arr[si],
                "sensor": self._node_sensor_arr[si],
                "value": sub[mask],
            }
        )

    def _component_frame(self, q: np.ndarray, idx: np.ndarray) -> pd.DataFrame:
        """Tidy component frame (metric = the key in topology's components[].metrics)."""
        if len(idx) == 0:
            return FleetFrames.empty_frame(COMPONENT_COLUMNS)
        sub = self._comp[:, idx, :]
        mask = ~np.isnan(sub)
        ci, ki, ri = np.nonzero(mask)
        return pd.DataFrame(
            {
                "ts": pd.to_datetime(q[ki], utc=True),
                "component": self._comp_id_arr[ci, ri],
                "metric": self._comp_key_arr[ci],
                "value": sub[mask],
            }
        )

    def _up_frame(self, q: np.ndarray, idx: np.ndarray) -> pd.DataFrame:
        """Tidy ``up`` frame: one row per target (node x job) and time, value 1 or 0."""
        if len(idx) == 0:
            return FleetFrames.empty_frame(UP_COLUMNS)
        sub = self._up[:, idx, :]
        ji, ki, ni = np.indices(sub.shape).reshape(3, -1)
        return pd.DataFrame(
            {
                "ts": pd.to_datetime(q[ki], utc=True),
                "node": self._node_name_arr[ni],
                "job": self._job_arr[ji],
                "value": sub.reshape(-1),
            }
        )

    # ------------------------------------------------------------------ generation

    def _generate(self) -> None:
        """Build the whole history: normal behaviour, then the faults' effects on it."""
        spec, t_n = self.spec, self.steps
        g_n, n_n, r_n, gpn = spec.n_gpus, spec.n_nodes, spec.racks, spec.gpus_per_node
        step_s = self.step.total_seconds()
        step_min = step_s / 60.0
        step_us = step_s * 1e6
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, 0xF1EE7])
        epoch = self._t0_ns / 1e9 + np.arange(t_n) * step_s
        hour = (epoch % 86400.0) / 3600.0
        diurnal = 0.5 * (1.0 + np.cos(2 * np.pi * (hour - 15.0) / 24.0))  # 1 at 15:00 UTC
        node_of_gpu = np.repeat(np.arange(n_n), gpn)
        rack_of_node = np.arange(n_n) // spec.nodes_per_rack

        # --- normal behaviour: everything below draws from rng in a fixed order
        util, fb, job, job_end, app_xids = _jobs(rng, spec, t_n, step_min, diurnal)
        idle_w = rng.uniform(62.0, 80.0, g_n)
        eff = rng.normal(1.0, 0.035, g_n)
        power_noise = rng.normal(0.0, 5.0, (t_n, g_n))
        r0 = 0.062 * rng.normal(1.0, 0.05, g_n)
        slot = np.arange(g_n) % gpn
        temp_off = np.where(slot >= gpn / 2, 2.0, 0.0) + rng.normal(0.0, 1.2, g_n)
        # a few healthy GPUs run steadily hotter (paste, airflow) without ever failing
        temp_off += np.where(rng.random(g_n) < 0.03, rng.uniform(4.0, 7.0, g_n), 0.0)
        mem_off = rng.normal(0.0, 1.5, g_n)
        temp_noise = rng.normal(0.0, 0.4, (t_n, g_n))
        mem_noise = rng.normal(0.0, 0.4, (t_n, g_n))
        clock_noise = rng.normal(0.0, 8.0, (t_n, g_n))
        crac_off = rng.normal(0.0, 0.5, r_n)
        crac_ar = _ar1(rng.normal(0.0, 0.05, (t_n, r_n)), 0.98)
        crac_noise = rng.normal(0.0, 0.08, (t_n, r_n))
        node_pos = (np.arange(n_n) % spec.nodes_per_rack) / max(1, spec.nodes_per_rack - 1)
        inlet_off = 2.5 * node_pos + rng.normal(0.0, 0.4, n_n)
        inlet_ar = _ar1(rng.normal(0.0, 0.08, (t_n, n_n)), 0.95)
        inlet_noise = rng.normal(0.0, 0.3, (t_n, n_n))
        fan_off = rng.normal(1.0, 0.03, (n_n, FANS_PER_NODE))
        # a few healthy nodes have one fan that steadily runs slow (a tolerance, not a fault)
        weak = rng.random(n_n) < 0.06
        fan_off[np.arange(n_n), rng.integers(0, FANS_PER_NODE, n_n)] *= np.where(
            weak, rng.uniform(0.75, 0.85, n_n), 1.0
        )
        fan_noise = rng.normal(0.0, 60.0, (t_n, n_n, FANS_PER_NODE))
        exhaust_noise = rng.normal(0.0, 0.4, (t_n, n_n))
        node_pw_noise = rng.normal(0.0, 15.0, (t_n, n_n))
        psu_off = rng.normal(0.0, 0.03, (n_n, len(PSUS)))
        psu_noise = rng.normal(0.0, 0.008, (t_n, n_n, len(PSUS)))
        cpu_noise = rng.normal(0.0, 0.8, (t_n, n_n))
        pdu_off_v = rng.normal(0.0, 0.8, r_n)
        pdu_ar = _ar1(rng.normal(0.0, 0.1, (t_n, r_n)), 0.97)
        pdu_noise = rng.normal(0.0, 0.25, (t_n, r_n))
        pdu_w_noise = rng.normal(0.0, 40.0, (t_n, r_n))
        leaky = _leaky_counters(rng, t_n, g_n, step_min)
        port_base = _port_errors_base(rng, t_n, r_n, step_min)
        gaps = _scrape_gaps(rng, t_n, n_n, step_min)
        fault_noise = rng.random((t_n, g_n))  # shared randomness for fault counters

        # --- faults
        fx = Effects(t_n, g_n, n_n, r_n)
        for window in self._windows():
            apply_fault(window, fx, step_min)
        for t, g in sorted(fx.crashes):
            j = int(job[t, g])
            if j < 0:
                continue
            end = int(job_end[j])
            blk = job[t:end] == j
            util[t:end][blk] = 0.0
            fb[t:end][blk] = 0.0
            job[t:end][blk] = -1
        util = np.clip(util * fx.util_mult, 0.0, 1.0)
        util[fx.drain] = 0.0
        fb[fx.drain] = 0.0

        # --- power
        demand = idle_w + (715.0 - idle_w) * util**0.9 * eff + power_noise
        demand = np.maximum(demand, 40.0)
        cap = fx.power_cap
        limited = demand > cap
        power = np.where(limited, cap - np.abs(power_noise) * 0.5, demand)
        power_frac = np.where(limited, np.clip(0.3 + (demand - cap) / 100.0, 0.0, 1.0), 0.0)

        # --- air: CRAC supply -> rack inlet -> fans -> per-GPU airflow
        rack_power = power.reshape(t_n, r_n, -1).sum(axis=2)
        rack_load = rack_power / (TDP_WATTS * spec.nodes_per_rack * gpn)
        crac = 18.0 + crac_off + 0.6 * diurnal[:, None] + crac_ar + fx.crac_add  # true supply air
        inlet = (
            crac[:, rack_of_node]
            + inlet_off
            + 1.5 * rack_load[:, rack_of_node]
            + inlet_ar
            + 0.5 * np.maximum(fx.crac_add[:, rack_of_node], 0.0) * node_pos
        )
        node_gpu_power = power.reshape(t_n, n_n, gpn).mean(axis=2)
        fan_base = 5200.0 + 7000.0 * node_gpu_power / TDP_WATTS + 250.0 * (inlet - 22.0)
        fan_base = np.clip(_lag(fan_base, step_s, 180.0), 3500.0, 16000.0)
        fan_ratio = fx.fan_mult * fx.fan_boost[:, :, None]
        fans = fan_base[:, :, None] * fan_off[None] * fan_ratio + fan_noise
        fans = np.round(np.clip(fans, 0.0, None) / 60.0) * 60.0
        weights = _fan_weights(gpn)
        airflow = np.einsum("tnf,gf->tng", fan_ratio, weights).reshape(t_n, g_n)

        # --- GPU temperatures, throttling, clocks
        inlet_g = inlet[:, node_of_gpu]
        r_eff = r0 * fx.r_mult * airflow**-0.9
        target = inlet_g + 8.0 + r_eff * power + temp_off
        temp = _lag(target, step_s, 120.0)
        # Above the slowdown temperature the GPU throttles: clocks and power fall until the
        # temperature holds a few degrees above it (never past ~92 °C, the shutdown point).
        excess = np.maximum(temp - SLOWDOWN_C, 0.0)
        thr = np.clip(excess / 6.0, 0.0, 1.0)
        depth = 1.0 - np.exp(-excess / 15.0)
        power = power * (1.0 - 0.5 * depth)
        temp = np.where(excess > 0, SLOWDOWN_C + 6.0 * np.tanh(excess / 6.0), temp)
        r_mem = 0.052 * (1.0 + 0.3 * (fx.r_mult - 1.0)) * airflow**-0.6
        mem_temp = _lag(inlet_g + 10.0 + r_mem * power + mem_off, step_s, 150.0)
        busy = util > 0.02
        sm = np.where(busy, 1980.0 - 140.0 * util**2 + clock_noise, 345.0)
        sm = sm * np.where(limited, np.clip(cap / demand, 0.0, 1.0) ** 0.5, 1.0)
        sm = sm * (1.0 - 0.25 * thr - 0.4 * depth)
        sm = np.round(sm / 15.0) * 15.0
        thermal_incr = np.where(thr > 0, np.clip(thr * 1.6, 0.05, 1.0), 0.0) * step_us
        power_incr = power_frac * step_us

        # --- counters
        sbe = np.cumsum(leaky["sbe"] + _poisson_like(fx.sbe_rate * step_min, fault_noise), axis=0)
        crc = np.cumsum(leaky["crc"] + _poisson_like(fx.crc_rate * step_min, fault_noise), axis=0)
        replay = np.cumsum(
            leaky["replay"] + _poisson_like(fx.replay_rate * step_min, fault_noise), axis=0
        )
        thermal_v = np.cumsum(thermal_incr, axis=0)
        power_v = np.cumsum(power_incr, axis=0)
        for counter in (sbe, crc, replay, thermal_v, power_v):
            for t, g in fx.counter_resets:
                if 0 < t < t_n:
                    counter[t:, g] -= counter[t - 1, g]
        xid = np.zeros((t_n, g_n))
        events = sorted(app_xids + fx.xids)
        for t, g, code, hold in events:
            if 0 <= t < t_n:
                xid[t : t + hold, g] = code
        self._xid_events = [(t, g, code) for t, g, code, _hold in events if 0 <= t < t_n]

        # --- assemble GPU metrics [metric, time, gpu]
        gpu = np.empty((len(GPU_METRICS), t_n, g_n))
        gpu[0] = np.round(temp + temp_noise)
        gpu[1] = np.round(mem_temp + mem_noise)
        gpu[2] = np.round(power, 3)
        gpu[3] = sm
        gpu[4] = 2619.0
        gpu[5] = np.round(util * 100.0)
        gpu[6] = np.round(fb)
        gpu[7] = xid
        gpu[8] = replay
        gpu[9] = leaky["rows"][None, :] + fx.corr_rows
        gpu[10] = fx.uncorr_rows
        gpu[11] = fx.remap_fail
        gpu[12] = sbe
        gpu[13] = fx.dbe
        gpu[14] = crc
        gpu[15] = np.round(thermal_v)
        gpu[16] = np.round(power_v)

        # --- node metrics [series, time, node]
        node_power = power.reshape(t_n, n_n, gpn).sum(axis=2)
        node_busy = busy.reshape(t_n, n_n, gpn).mean(axis=2)
        node_power = np.round(node_power + 900.0 + 300.0 * node_busy + node_pw_noise)
        node_air = fan_ratio.mean(axis=2)
        nodes = np.empty((len(NODE_SERIES), t_n, n_n))
        nodes[0:FANS_PER_NODE] = np.moveaxis(fans, 2, 0)
        k = FANS_PER_NODE
        nodes[k] = np.round(inlet + inlet_noise)
        nodes[k + 1] = np.round(inlet + 11.0 * (node_power / 7000.0) / node_air + exhaust_noise)
        nodes[k + 2] = node_power
        psu = 12.10 + psu_off[None] - 0.012 * (node_power / 7000.0)[:, :, None]
        psu = psu + fx.psu_volt_add[:, :, None] + psu_noise
        nodes[k + 3] = np.round(psu[:, :, 0], 3)
        nodes[k + 4] = np.round(psu[:, :, 1], 3)
        nodes[k + 5] = np.round(inlet + 22.0 + 14.0 * node_busy / np.sqrt(node_air) + cpu_noise, 1)

        # --- component metrics [series, time, rack]
        live_nodes = ~fx.node_down
        rack_watts = (node_power * live_nodes).reshape(t_n, r_n, -1).sum(axis=2)
        comp = np.empty((len(COMPONENT_SERIES), t_n, r_n))
        comp[0] = np.where(fx.pdu_off, 0.0, np.round(1.04 * rack_watts + 350.0 + pdu_w_noise))
        volts = 230.5 + pdu_off_v + pdu_ar - 3.0 * rack_watts / 70000.0 + fx.pdu_volt_add
        comp[1] = np.where(fx.pdu_off, 0.0, np.round(volts + pdu_noise, 1))
        comp[2] = np.round(crac + crac_noise, 1)
        comp[3] = np.cumsum(
            port_base + _poisson_like(fx.port_err_rate * step_min, fault_noise[:, :r_n]), axis=0
        )

        # --- presence: node down, scrape gaps, GPUs fallen off the bus
        down = fx.node_down
        up = np.empty((len(UP_JOBS), t_n, n_n))
        for j, job_name in enumerate(UP_JOBS):
            up[j] = np.where(down | gaps[job_name], 0.0, 1.0)
        gpu_absent = (up[0] == 0.0)[:, node_of_gpu] | fx.gpu_absent
        gpu[:, gpu_absent] = np.nan
        for s, (_m, _sensor, job_name, _extra) in enumerate(NODE_SERIES):
            nodes[s][up[UP_JOBS.index(job_name)] == 0.0] = np.nan

        self._gpu = gpu
        self._node = nodes
        self._comp = comp
        self._up = up
        self._index_labels()

    def _windows(self) -> list[FaultWindow]:
        """Locate every fault on the grid, with its progress ramp and repair time."""
        spec = self.spec
        index = {key: i for i, key in enumerate(spec.gpu_keys)}
        node_index = {name: i for i, name in enumerate(spec.node_names)}
        out = []
        for f in self.faults:
            frng = fault_rng(self.seed, f.id)
            repair_after = timedelta(hours=float(frng.uniform(*REPAIR_HOURS)))
            on_i = max(0, self.index_at(f.onset))
            if f.failure is not None:
                fail_i = self.index_at(f.failure)
                span = max(1, fail_i - self.index_at(f.onset))
                repair_i = self.index_at(f.failure + repair_after)
                self.repairs[f.id] = f.failure + repair_after
            else:
                fail_i = self.steps
                span = max(1, int(timedelta(hours=8) / self.step))
                repair_i = self.steps
            if on_i >= self.steps or fail_i < 0:
                continue
            lo = self.index_at(f.onset)
            ramp_end = min(fail_i, self.steps)
            progress = (np.arange(on_i, ramp_end) - lo) / span
            gpus = np.array([index[k] for k in f.affected if k in index], dtype=int)
            node_ids = sorted({node_index[k.rpartition("/")[0]] for k in f.affected})
            rack = spec.component_rack(f.target)
            if rack is None:
                rack = spec.rack_of_node(node_ids[0])
            out.append(
                FaultWindow(
                    fault=f,
                    on=on_i,
                    fail=fail_i if (f.failure is not None and fail_i < self.steps) else None,
                    repair=min(max(repair_i, fail_i + 1), self.steps),
                    progress=np.clip(progress, 0.0, 0.999),
                    gpus=gpus,
                    nodes=np.array(node_ids, dtype=int),
                    rack=rack,
                    rng=frng,
                )
            )
        return out

    def _index_labels(self) -> None:
        """Precompute the label arrays fetch() gathers from."""
        spec = self.spec
        nodes = np.array(spec.node_names, dtype=object)
        self._gpu_node_arr = np.repeat(nodes, spec.gpus_per_node)
        self._gpu_idx_arr = np.array(
            [str(g) for _ in range(spec.n_nodes) for g in range(spec.gpus_per_node)],
            dtype=object,
        )
        self._gpu_metric_arr = np.array(GPU_METRICS, dtype=object)
        self._node_name_arr = nodes
        self._node_metric_arr = np.array([s[0] for s in NODE_SERIES], dtype=object)
        self._node_sensor_arr = np.array([s[1] for s in NODE_SERIES], dtype=object)
        ids_by_kind = {
            "pdu": [spec.pdu_id(r) for r in range(spec.racks)],
            "cooling": [spec.crac_id(r) for r in range(spec.racks)],
            "switch": [spec.leaf_id(r) for r in range(spec.racks)],
        }
        self._component_ids = [ids_by_kind[c[3]] for c in COMPONENT_SERIES]
        self._comp_id_arr = np.array(self._component_ids, dtype=object)
        self._comp_key_arr = np.array([c[0] for c in COMPONENT_SERIES], dtype=object)
        self._job_arr = np.array(UP_JOBS, dtype=object)


# ---------------------------------------------------------------------- helpers


def _ar1(noise: np.ndarray, phi: float) -> np.ndarray:
    """Return an AR(1) process x[t] = phi x[t-1] + noise[t] along axis 0."""
    out: np.ndarray = lfilter([1.0], [1.0, -phi], noise, axis=0)
    return out


def _lag(x: np.ndarray, step_s: float, tau_s: float) -> np.ndarray:
    """First-order thermal lag with time constant ``tau_s``, starting at equilibrium."""
    alpha = 1.0 - math.exp(-step_s / tau_s)
    zi = ((1.0 - alpha) * x[0])[None]
    out, _ = lfilter([alpha], [1.0, -(1.0 - alpha)], x, axis=0, zi=zi)
    result: np.ndarray = out
    return result


def _fan_weights(gpn: int) -> np.ndarray:
    """How much each fan cools each GPU slot (rows sum to 1): the two nearest fans dominate."""
    x = (np.arange(gpn) + 0.5) / gpn * FANS_PER_NODE
    centres = np.arange(FANS_PER_NODE) + 0.5
    w = np.exp(-((x[:, None] - centres[None, :]) ** 2) / (2 * 0.7**2))
    result: np.ndarray = w / w.sum(axis=1, keepdims=True)
    return result


def _poisson_like(lam: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Integer counts with mean ``lam`` from uniforms ``u`` (deterministic, vectorised).

    Uses the normal approximation above 10 and an inverse-CDF on the first terms below, so the
    fault counters reuse one uniform draw per cell instead of a random stream per fault.
    """
    out = np.zeros_like(lam)
    small = (lam > 0) & (lam < 10)
    if small.any():
        lam_s = lam[small]
        us = u[small]
        k = np.zeros_like(lam_s)
        p = np.exp(-lam_s)
        cdf = p.copy()
        for i in range(1, 30):
            more = us > cdf
            if not more.any():
                break
            k += more
            p = p * lam_s / i
            cdf = cdf + p
        out[small] = k
    big = lam >= 10
    if big.any():
        z = np.sqrt(2.0) * _erfinv(2.0 * u[big] - 1.0)
        out[big] = np.maximum(0.0, np.round(lam[big] + np.sqrt(lam[big]) * z))
    return out


def _erfinv(y: np.ndarray) -> np.ndarray:
    """Inverse error function (scipy's), kept local for typing."""
    from scipy.special import erfinv

    result: np.ndarray = erfinv(np.clip(y, -0.999999, 0.999999))
    return result


def _jobs(
    rng: np.random.Generator, spec: FleetSpec, t_n: int, step_min: float, diurnal: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[tuple[int, int, int, int]]]:
    """Schedule jobs on groups of 1, 2 or 4 nodes: utilisation, memory, job ids, app XIDs."""
    g_n, gpn, npr = spec.n_gpus, spec.gpus_per_node, spec.nodes_per_rack
    util = np.zeros((t_n, g_n))
    fb = np.zeros((t_n, g_n))
    job = np.full((t_n, g_n), -1, dtype=np.int32)
    ends: list[int] = []
    xids: list[tuple[int, int, int, int]] = []
    for r in range(spec.racks):
        first = r * npr
        groups: list[list[int]] = []
        i = 0
        while i < npr:
            size = min(int(rng.choice([1, 2, 4], p=[0.3, 0.35, 0.35])), npr - i)
            groups.append(list(range(first + i, first + i + size)))
            i += size
        for grp in groups:
            all_gpus = np.array([n * gpn + g for n in grp for g in range(gpn)])
            t = 0 if rng.random() < 0.75 else int(rng.exponential(90.0) / step_min)
            while t < t_n:
                minutes = float(np.clip(rng.lognormal(np.log(240.0), 0.8), 20.0, 2160.0))
                t1 = min(t_n, t + int(minutes / step_min) + 1)
                n = t1 - t
                if len(grp) == 1 and gpn > 1:
                    choices = [gpn, gpn, gpn, max(1, gpn // 2), max(1, gpn // 4), 1]
                    count = int(rng.choice(choices))
                    sel = np.sort(rng.choice(all_gpus, size=count, replace=False))
                else:
                    sel = all_gpus
                if rng.random() < 0.7:  # training: flat and high, checkpoint dips
                    base = rng.uniform(0.72, 0.98) + 0.015 * rng.standard_normal(n)
                    period = rng.uniform(20.0, 60.0) / step_min
                    dip = max(1.0, rng.uniform(1.0, 3.0) / step_min)
                    phase = rng.uniform(0.0, period)
                    if period >= 3 * dip:
                        dips = ((np.arange(n) + phase) % period) < dip
                        base = np.where(dips, rng.uniform(0.05, 0.25), base)
                else:  # inference: follows the day
                    level = rng.uniform(0.45, 0.85)
                    wobble = _ar1(0.02 * rng.standard_normal(n), 0.9)
                    base = level * (0.35 + 0.65 * diurnal[t:t1]) + wobble
                per = base[:, None] * rng.uniform(0.97, 1.0, len(sel))[None, :]
                per = per + 0.012 * rng.standard_normal((n, len(sel)))
                util[t:t1, sel] = np.clip(per, 0.0, 1.0)
                frac = rng.uniform(0.35, 0.95)
                fb[t:t1, sel] = (
                    frac * FB_TOTAL_MIB * (1.0 + 0.005 * rng.standard_normal((n, len(sel))))
                )
                job[t:t1, sel] = len(ends)
                ends.append(t1)
                if rng.random() < 0.12 and t1 < t_n:  # the job dies with an application XID
                    code = int(rng.choice([13, 31, 43]))
                    hold = int(rng.uniform(5.0, 30.0) / step_min) + 1
                    hit = sel if code == 13 else [int(rng.choice(sel))]
                    xids.extend((t1 - 1, int(g), code, hold) for g in hit)
                busy = 0.55 + 0.4 * diurnal[min(t1, t_n - 1)]
                gap = rng.exponential(15.0) if rng.random() < busy else rng.exponential(120.0)
                t = t1 + int(gap / step_min) + 1
    return util, fb, job, np.array(ends, dtype=np.int64), xids


def _leaky_counters(
    rng: np.random.Generator, t_n: int, g_n: int, step_min: float
) -> dict[str, np.ndarray]:
    """Harmless background counts on a minority of healthy GPUs (real fleets have them)."""
    per_day = step_min / 1440.0
    out: dict[str, np.ndarray] = {}
    for name, share, lo, hi, noisy_share, noisy_lo, noisy_hi in (
        ("sbe", 0.06, 0.5, 4.0, 0.02, 20.0, 150.0),
        ("crc", 0.10, 1.0, 30.0, 0.03, 50.0, 500.0),
        ("replay", 0.10, 0.5, 8.0, 0.03, 20.0, 200.0),
    ):
        rate = np.where(rng.random(g_n) < share, rng.uniform(lo, hi, g_n), 0.0)
        # a few healthy GPUs count steadily at a high rate and never fail
        noisy = rng.random(g_n) < noisy_share
        rate = np.where(noisy, rng.uniform(noisy_lo, noisy_hi, g_n), rate)
        counts = rng.poisson(rate[None, :] * per_day, (t_n, g_n)).astype(float)
        # rare benign bursts (a retrained link, a noisy cable): ~1 per GPU-month
        bursts = rng.random((t_n, g_n)) < per_day / 30.0
        counts += bursts * rng.integers(5, 60, (t_n, g_n))
        out[name] = counts
    out["rows"] = np.where(rng.random(g_n) < 0.08, rng.integers(1, 3, g_n), 0).astype(float)
    return out


def _port_errors_base(rng: np.random.Generator, t_n: int, r_n: int, step_min: float) -> np.ndarray:
    """Background switch port errors: a trickle plus rare harmless bursts."""
    rate = rng.uniform(0.02, 0.2, r_n)
    counts = rng.poisson(rate[None, :] * step_min, (t_n, r_n)).astype(float)
    bursts = rng.random((t_n, r_n)) < step_min / 1440.0
    counts += bursts * rng.integers(10, 200, (t_n, r_n))
    return counts


def _scrape_gaps(
    rng: np.random.Generator, t_n: int, n_n: int, step_min: float
) -> dict[str, np.ndarray]:
    """Occasional failed scrapes per target (~1.5 per day, 1-3 samples each)."""
    out: dict[str, np.ndarray] = {}
    for job in UP_JOBS:
        starts = rng.random((t_n, n_n)) < 1.5 * step_min / 1440.0
        lengths = rng.integers(1, 4, (t_n, n_n))
        gap = np.zeros((t_n, n_n), dtype=bool)
        for t, n in zip(*np.nonzero(starts), strict=True):
            gap[t : t + int(lengths[t, n]), n] = True
        out[job] = gap
    return out


def default_start(days: float, now: datetime | None = None) -> datetime:
    """Return midnight UTC today minus ``days`` (the CLI's default history start)."""
    ref = now or datetime.now(UTC)
    midnight = ref.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=days)
