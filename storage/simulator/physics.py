"""The simulated fleet's physics: jobs, power, air, heat, counters and faults, over time.

:func:`generate_readings` builds the whole history of a fleet as numpy arrays over
(series x time x GPU / node / rack). Same spec, grid and seed give the same arrays, bit for bit.
The normal behaviour draws from its own random stream, so a run with faults differs from the
healthy run of the same seed only where a fault acts. Nothing here knows how the arrays are
exposed (frames, OpenMetrics, a live /metrics).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from storage.simulator.faults import Effects, FaultWindow, apply_fault
from storage.simulator.layout import COMPONENT_SERIES, GPU_METRICS, NODE_SERIES
from storage.simulator.signals import ar1, fan_weights, poisson_like, thermal_lag
from storage.simulator.spec import FANS_PER_NODE, PSUS, UP_JOBS, FleetSpec
from storage.simulator.workload import (
    leaky_counters,
    port_errors_base,
    schedule_jobs,
    scrape_gaps,
)

TDP_WATTS = 700.0
SLOWDOWN_C = 86.0


@dataclass(frozen=True)
class Readings:
    """The fleet's whole history on the time grid (NaN = the sample is absent).

    ``gpu`` is [GPU_METRICS, time, GPU], ``node`` [NODE_SERIES, time, node], ``component``
    [COMPONENT_SERIES, time, rack], ``up`` [UP_JOBS, time, node] (1.0 or 0.0); ``xid_events``
    lists every XID raised as (time index, GPU index, code).
    """

    gpu: np.ndarray
    node: np.ndarray
    component: np.ndarray
    up: np.ndarray
    xid_events: tuple[tuple[int, int, int], ...]


def generate_readings(
    spec: FleetSpec,
    windows: Sequence[FaultWindow],
    *,
    seed: int,
    t0_ns: int,
    steps: int,
    step: timedelta,
) -> Readings:
    """Build the whole history: normal behaviour, then the faults' effects on it."""
    t_n = steps
    g_n, n_n, r_n, gpn = spec.n_gpus, spec.n_nodes, spec.racks, spec.gpus_per_node
    step_s = step.total_seconds()
    step_min = step_s / 60.0
    step_us = step_s * 1e6
    rng = np.random.default_rng([seed & 0xFFFFFFFF, 0xF1EE7])
    epoch = t0_ns / 1e9 + np.arange(t_n) * step_s
    hour = (epoch % 86400.0) / 3600.0
    diurnal = 0.5 * (1.0 + np.cos(2 * np.pi * (hour - 15.0) / 24.0))  # 1 at 15:00 UTC
    node_of_gpu = np.repeat(np.arange(n_n), gpn)
    rack_of_node = np.arange(n_n) // spec.nodes_per_rack

    # --- normal behaviour: everything below draws from rng in a fixed order
    util, fb, job, job_end, app_xids = schedule_jobs(rng, spec, t_n, step_min, diurnal)
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
    crac_ar = ar1(rng.normal(0.0, 0.05, (t_n, r_n)), 0.98)
    crac_noise = rng.normal(0.0, 0.08, (t_n, r_n))
    node_pos = (np.arange(n_n) % spec.nodes_per_rack) / max(1, spec.nodes_per_rack - 1)
    inlet_off = 2.5 * node_pos + rng.normal(0.0, 0.4, n_n)
    inlet_ar = ar1(rng.normal(0.0, 0.08, (t_n, n_n)), 0.95)
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
    pdu_ar = ar1(rng.normal(0.0, 0.1, (t_n, r_n)), 0.97)
    pdu_noise = rng.normal(0.0, 0.25, (t_n, r_n))
    pdu_w_noise = rng.normal(0.0, 40.0, (t_n, r_n))
    leaky = leaky_counters(rng, t_n, g_n, step_min)
    port_base = port_errors_base(rng, t_n, r_n, step_min)
    gaps = scrape_gaps(rng, t_n, n_n, step_min)
    fault_noise = rng.random((t_n, g_n))  # shared randomness for fault counters

    # --- faults
    fx = Effects(t_n, g_n, n_n, r_n)
    for window in windows:
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
    fan_base = np.clip(thermal_lag(fan_base, step_s, 180.0), 3500.0, 16000.0)
    fan_ratio = fx.fan_mult * fx.fan_boost[:, :, None]
    fans = fan_base[:, :, None] * fan_off[None] * fan_ratio + fan_noise
    fans = np.round(np.clip(fans, 0.0, None) / 60.0) * 60.0
    weights = fan_weights(gpn)
    airflow = np.einsum("tnf,gf->tng", fan_ratio, weights).reshape(t_n, g_n)

    # --- GPU temperatures, throttling, clocks
    inlet_g = inlet[:, node_of_gpu]
    r_eff = r0 * fx.r_mult * airflow**-0.9
    target = inlet_g + 8.0 + r_eff * power + temp_off
    temp = thermal_lag(target, step_s, 120.0)
    # Above the slowdown temperature the GPU throttles: clocks and power fall until the
    # temperature holds a few degrees above it (never past ~92 °C, the shutdown point).
    excess = np.maximum(temp - SLOWDOWN_C, 0.0)
    thr = np.clip(excess / 6.0, 0.0, 1.0)
    depth = 1.0 - np.exp(-excess / 15.0)
    power = power * (1.0 - 0.5 * depth)
    temp = np.where(excess > 0, SLOWDOWN_C + 6.0 * np.tanh(excess / 6.0), temp)
    r_mem = 0.052 * (1.0 + 0.3 * (fx.r_mult - 1.0)) * airflow**-0.6
    mem_temp = thermal_lag(inlet_g + 10.0 + r_mem * power + mem_off, step_s, 150.0)
    busy = util > 0.02
    sm = np.where(busy, 1980.0 - 140.0 * util**2 + clock_noise, 345.0)
    sm = sm * np.where(limited, np.clip(cap / demand, 0.0, 1.0) ** 0.5, 1.0)
    sm = sm * (1.0 - 0.25 * thr - 0.4 * depth)
    sm = np.round(sm / 15.0) * 15.0
    thermal_incr = np.where(thr > 0, np.clip(thr * 1.6, 0.05, 1.0), 0.0) * step_us
    power_incr = power_frac * step_us

    # --- counters
    sbe = np.cumsum(leaky["sbe"] + poisson_like(fx.sbe_rate * step_min, fault_noise), axis=0)
    crc = np.cumsum(leaky["crc"] + poisson_like(fx.crc_rate * step_min, fault_noise), axis=0)
    replay = np.cumsum(
        leaky["replay"] + poisson_like(fx.replay_rate * step_min, fault_noise), axis=0
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
    xid_events = tuple((t, g, code) for t, g, code, _hold in events if 0 <= t < t_n)

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
        port_base + poisson_like(fx.port_err_rate * step_min, fault_noise[:, :r_n]), axis=0
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

    return Readings(gpu=gpu, node=nodes, component=comp, up=up, xid_events=xid_events)
