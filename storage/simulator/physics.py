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

from storage.simulator.baseline import (
    AirTraits,
    Background,
    Baseline,
    GpuTraits,
    draw_baseline,
)
from storage.simulator.faults import Effects, FaultWindow, apply_fault
from storage.simulator.layout import COMPONENT_SERIES, GPU_METRICS, NODE_SERIES, Grid, make_grid
from storage.simulator.shape import ScenarioSpec
from storage.simulator.signals import fan_weights, poisson_like, thermal_lag
from storage.simulator.spec import FANS_PER_NODE, UP_JOBS, FleetSpec
from storage.simulator.variation import Extra, Variation, unit_metrics
from storage.simulator.workload import Workload

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
    variation: Variation | None = None,
) -> Readings:
    """Build the whole history: normal behaviour, then the faults' effects on it.

    Jobs set utilisation; utilisation sets power; power and the CRAC set the air and the GPUs'
    temperatures; heat throttles clocks and power; the counters integrate; nodes and racks sum
    their GPUs; finally down nodes, scrape gaps and lost GPUs blank their samples. A scenario's
    ``variation`` (needs a ScenarioSpec) changes the workload, GPU models, shared facility
    units, benign events and sampling; without it nothing below differs from the plain fleet.
    """
    grid = make_grid(spec, t0_ns=t0_ns, steps=steps, step=step)
    rng = np.random.default_rng([seed & 0xFFFFFFFF, 0xF1EE7])
    base = draw_baseline(rng, spec, grid)
    ex: Extra | None = None
    if variation is not None:
        if not isinstance(spec, ScenarioSpec):
            raise TypeError("a variation needs the ScenarioSpec it was drawn with")
        base, ex = variation.vary_baseline(spec, grid, base)
    fx = _fault_effects(windows, grid, None if ex is None else ex.tdp)
    if variation is not None and ex is not None and isinstance(spec, ScenarioSpec):
        variation.apply_events(spec, grid, fx, ex, t0_ns=t0_ns)
    util, fb = _faulted_workload(base.workload, fx)
    power = _power(util, base.gpu, fx, ex)
    air = _air(grid, power.draw, base.air, fx, ex)
    heat = _gpu_thermals(grid, base.gpu, fx, util=util, pw=power, air=air, ex=ex)
    gpu = _gpu_metrics(grid, base, fx, util=util, fb=fb, heat=heat, ex=ex)
    nodes, node_power = _node_metrics(grid, base, fx, heat=heat, air=air)
    comp = _facility_metrics(grid, base, fx, node_power=node_power, crac=air.crac)
    if ex is not None and isinstance(spec, ScenarioSpec):
        comp = unit_metrics(spec, comp)
    up = _presence(grid, base.background.gaps, fx, gpu, nodes)
    return Readings(
        gpu=gpu,
        node=nodes,
        component=comp,
        up=up,
        xid_events=_xid_events(grid, base.workload.app_xids, fx),
    )


@dataclass(frozen=True)
class Power:
    """GPU power before thermal throttling, and where the power cap limits it."""

    demand: np.ndarray  # [time, GPU] what the work asks for (W)
    cap: np.ndarray  # [time, GPU] the power cap (faults lower it)
    limited: np.ndarray  # [time, GPU] demand above the cap
    draw: np.ndarray  # [time, GPU] what the GPU draws (W)
    frac: np.ndarray  # [time, GPU] share of the step spent power-throttled


@dataclass(frozen=True)
class Air:
    """Supply air, inlet temperatures, fan speeds and the airflow each GPU gets."""

    crac: np.ndarray  # [time, rack] true CRAC supply air (°C)
    inlet: np.ndarray  # [time, node] (°C)
    fans: np.ndarray  # [time, node, fan] reported speed (rpm)
    fan_ratio: np.ndarray  # [time, node, fan] fan speed relative to healthy
    airflow: np.ndarray  # [time, GPU] relative airflow over each GPU


@dataclass(frozen=True)
class Thermals:
    """GPU and memory temperatures after throttling, clocks and throttle time."""

    temp: np.ndarray  # [time, GPU] (°C)
    mem_temp: np.ndarray  # [time, GPU] (°C)
    power: np.ndarray  # [time, GPU] power after thermal throttling (W)
    busy: np.ndarray  # [time, GPU] a job is running
    sm: np.ndarray  # [time, GPU] SM clock (MHz)
    thermal_incr: np.ndarray  # [time, GPU] thermal-violation time added per step (us)
    power_incr: np.ndarray  # [time, GPU] power-violation time added per step (us)


def _fault_effects(
    windows: Sequence[FaultWindow], grid: Grid, tdp: np.ndarray | None = None
) -> Effects:
    """Write every fault's precursor, failure and repair into one set of effect arrays."""
    fx = Effects(grid.t_n, grid.g_n, grid.n_n, grid.r_n, tdp=tdp)
    for window in windows:
        apply_fault(window, fx, grid.step_min)
    return fx


def _faulted_workload(work: Workload, fx: Effects) -> tuple[np.ndarray, np.ndarray]:
    """Return utilisation and memory after crashes (the job ends), slowdowns and drains."""
    util, fb, job = work.util, work.fb, work.job
    for t, g in sorted(fx.crashes):
        j = int(job[t, g])
        if j < 0:
            continue
        end = int(work.job_end[j])
        blk = job[t:end] == j
        util[t:end][blk] = 0.0
        fb[t:end][blk] = 0.0
        job[t:end][blk] = -1
    util = np.clip(util * fx.util_mult, 0.0, 1.0)
    util[fx.drain] = 0.0
    fb[fx.drain] = 0.0
    return util, fb


def _power(util: np.ndarray, gt: GpuTraits, fx: Effects, ex: Extra | None = None) -> Power:
    """GPU power from utilisation, held under the power cap."""
    full = 715.0 if ex is None else ex.tdp + 15.0
    demand = gt.idle_w + (full - gt.idle_w) * util**0.9 * gt.eff + gt.power_noise
    if ex is not None:
        demand = demand + ex.power_add
    demand = np.maximum(demand, 40.0)
    cap = fx.power_cap
    limited = demand > cap
    draw = np.where(limited, cap - np.abs(gt.power_noise) * 0.5, demand)
    frac = np.where(limited, np.clip(0.3 + (demand - cap) / 100.0, 0.0, 1.0), 0.0)
    return Power(demand=demand, cap=cap, limited=limited, draw=draw, frac=frac)


def _air(grid: Grid, power: np.ndarray, at: AirTraits, fx: Effects, ex: Extra | None = None) -> Air:
    """CRAC supply -> rack inlet -> fans -> per-GPU airflow."""
    t_n, r_n, n_n, g_n, gpn = grid.t_n, grid.r_n, grid.n_n, grid.g_n, grid.gpn
    rack_of_node = grid.rack_of_node
    rack_power = power.reshape(t_n, r_n, -1).sum(axis=2)
    if ex is None:
        rack_load = rack_power / (TDP_WATTS * grid.nodes_per_rack * gpn)
    else:
        rack_load = rack_power / ex.rack_tdp
    crac = 18.0 + at.crac_off + 0.6 * grid.diurnal[:, None] + at.crac_ar + fx.crac_add
    inlet = (
        crac[:, rack_of_node]
        + at.inlet_off
        + 1.5 * rack_load[:, rack_of_node]
        + at.inlet_ar
        + 0.5 * np.maximum(fx.crac_add[:, rack_of_node], 0.0) * grid.node_pos
    )
    if ex is not None:
        inlet = inlet + ex.inlet_add
    node_gpu_power = power.reshape(t_n, n_n, gpn).mean(axis=2)
    node_tdp = TDP_WATTS if ex is None else ex.node_tdp
    fan_base = 5200.0 + 7000.0 * node_gpu_power / node_tdp + 250.0 * (inlet - 22.0)
    fan_base = np.clip(thermal_lag(fan_base, grid.step_s, 180.0), 3500.0, 16000.0)
    fan_ratio = fx.fan_mult * fx.fan_boost[:, :, None]
    fans = fan_base[:, :, None] * at.fan_off[None] * fan_ratio + at.fan_noise
    fans = np.round(np.clip(fans, 0.0, None) / 60.0) * 60.0
    weights = fan_weights(gpn)
    airflow = np.einsum("tnf,gf->tng", fan_ratio, weights).reshape(t_n, g_n)
    return Air(crac=crac, inlet=inlet, fans=fans, fan_ratio=fan_ratio, airflow=airflow)


def _gpu_thermals(
    grid: Grid,
    gt: GpuTraits,
    fx: Effects,
    *,
    util: np.ndarray,
    pw: Power,
    air: Air,
    ex: Extra | None = None,
) -> Thermals:
    """GPU temperatures, thermal throttling (of clocks and power) and clocks."""
    step_s = grid.step_s
    inlet_g = air.inlet[:, grid.node_of_gpu]
    r_eff = gt.r0 * fx.r_mult * air.airflow**-0.9
    target = inlet_g + 8.0 + r_eff * pw.draw + gt.temp_off
    temp = thermal_lag(target, step_s, 120.0)
    # Above the slowdown temperature the GPU throttles: clocks and power fall until the
    # temperature holds a few degrees above it (never past ~92 °C, the shutdown point).
    excess = np.maximum(temp - SLOWDOWN_C, 0.0)
    thr = np.clip(excess / 6.0, 0.0, 1.0)
    depth = 1.0 - np.exp(-excess / 15.0)
    power = pw.draw * (1.0 - 0.5 * depth)
    temp = np.where(excess > 0, SLOWDOWN_C + 6.0 * np.tanh(excess / 6.0), temp)
    r_mem = 0.052 * (1.0 + 0.3 * (fx.r_mult - 1.0)) * air.airflow**-0.6
    if ex is not None:  # memory heat scales with the board, not the watts
        r_mem = r_mem * (TDP_WATTS / ex.tdp)
    mem_temp = thermal_lag(inlet_g + 10.0 + r_mem * power + gt.mem_off, step_s, 150.0)
    busy = util > 0.02
    sm_max = 1980.0 if ex is None else ex.sm_max + ex.clock_add
    sm = np.where(busy, sm_max - 140.0 * util**2 + gt.clock_noise, 345.0)
    sm = sm * np.where(pw.limited, np.clip(pw.cap / pw.demand, 0.0, 1.0) ** 0.5, 1.0)
    sm = sm * (1.0 - 0.25 * thr - 0.4 * depth)
    sm = np.round(sm / 15.0) * 15.0
    return Thermals(
        temp=temp,
        mem_temp=mem_temp,
        power=power,
        busy=busy,
        sm=sm,
        thermal_incr=np.where(thr > 0, np.clip(thr * 1.6, 0.05, 1.0), 0.0) * grid.step_us,
        power_incr=pw.frac * grid.step_us,
    )


def _counters(
    grid: Grid, heat: Thermals, bg: Background, fx: Effects
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative SBE, NVLink CRC, PCIe replay, thermal- and power-violation counters."""
    step_min, fault_noise, leaky = grid.step_min, bg.fault_noise, bg.leaky
    sbe = np.cumsum(leaky["sbe"] + poisson_like(fx.sbe_rate * step_min, fault_noise), axis=0)
    crc = np.cumsum(leaky["crc"] + poisson_like(fx.crc_rate * step_min, fault_noise), axis=0)
    replay = np.cumsum(
        leaky["replay"] + poisson_like(fx.replay_rate * step_min, fault_noise), axis=0
    )
    thermal_v = np.cumsum(heat.thermal_incr, axis=0)
    power_v = np.cumsum(heat.power_incr, axis=0)
    for counter in (sbe, crc, replay, thermal_v, power_v):
        for t, g in fx.counter_resets:
            if 0 < t < grid.t_n:
                counter[t:, g] -= counter[t - 1, g]
    return sbe, crc, replay, thermal_v, power_v


def _xids_in_order(
    app_xids: list[tuple[int, int, int, int]], fx: Effects
) -> list[tuple[int, int, int, int]]:
    """Return the jobs' and the faults' XIDs as (step, GPU, code, steps held), in time order."""
    return sorted(app_xids + fx.xids)


def _last_xid(grid: Grid, app_xids: list[tuple[int, int, int, int]], fx: Effects) -> np.ndarray:
    """DCGM_FI_DEV_XID_ERRORS: the last XID's code, held for a while after it is raised."""
    xid = np.zeros((grid.t_n, grid.g_n))
    for t, g, code, hold in _xids_in_order(app_xids, fx):
        if 0 <= t < grid.t_n:
            xid[t : t + hold, g] = code
    return xid


def _xid_events(
    grid: Grid, app_xids: list[tuple[int, int, int, int]], fx: Effects
) -> tuple[tuple[int, int, int], ...]:
    """Every XID raised on the grid as (step, GPU, code), in time order."""
    return tuple(
        (t, g, code) for t, g, code, _hold in _xids_in_order(app_xids, fx) if 0 <= t < grid.t_n
    )


def _gpu_metrics(
    grid: Grid,
    base: Baseline,
    fx: Effects,
    *,
    util: np.ndarray,
    fb: np.ndarray,
    heat: Thermals,
    ex: Extra | None = None,
) -> np.ndarray:
    """Assemble the dcgm-exporter fields, [GPU_METRICS, time, GPU]."""
    gt, leaky = base.gpu, base.background.leaky
    sbe, crc, replay, thermal_v, power_v = _counters(grid, heat, base.background, fx)
    gpu = np.empty((len(GPU_METRICS), grid.t_n, grid.g_n))
    gpu[0] = np.round(heat.temp + gt.temp_noise)
    gpu[1] = np.round(heat.mem_temp + gt.mem_noise)
    gpu[2] = np.round(heat.power, 3)
    gpu[3] = heat.sm
    gpu[4] = 2619.0 if ex is None else ex.mem_clock[None, :]
    gpu[5] = np.round(util * 100.0)
    gpu[6] = np.round(fb)
    gpu[7] = _last_xid(grid, base.workload.app_xids, fx)
    gpu[8] = replay
    gpu[9] = leaky["rows"][None, :] + fx.corr_rows
    gpu[10] = fx.uncorr_rows
    gpu[11] = fx.remap_fail
    gpu[12] = sbe
    gpu[13] = fx.dbe
    gpu[14] = crc
    gpu[15] = np.round(thermal_v)
    gpu[16] = np.round(power_v)
    return gpu


def _node_metrics(
    grid: Grid, base: Baseline, fx: Effects, *, heat: Thermals, air: Air
) -> tuple[np.ndarray, np.ndarray]:
    """Assemble the IPMI and node exporter series, [NODE_SERIES, time, node], and node power."""
    t_n, n_n, gpn = grid.t_n, grid.n_n, grid.gpn
    at, pt = base.air, base.power
    inlet = air.inlet
    node_power = heat.power.reshape(t_n, n_n, gpn).sum(axis=2)
    node_busy = heat.busy.reshape(t_n, n_n, gpn).mean(axis=2)
    node_power = np.round(node_power + 900.0 + 300.0 * node_busy + pt.node_pw_noise)
    node_air = air.fan_ratio.mean(axis=2)
    nodes = np.empty((len(NODE_SERIES), t_n, n_n))
    nodes[0:FANS_PER_NODE] = np.moveaxis(air.fans, 2, 0)
    k = FANS_PER_NODE
    nodes[k] = np.round(inlet + at.inlet_noise)
    nodes[k + 1] = np.round(inlet + 11.0 * (node_power / 7000.0) / node_air + at.exhaust_noise)
    nodes[k + 2] = node_power
    psu = 12.10 + pt.psu_off[None] - 0.012 * (node_power / 7000.0)[:, :, None]
    psu = psu + fx.psu_volt_add[:, :, None] + pt.psu_noise
    nodes[k + 3] = np.round(psu[:, :, 0], 3)
    nodes[k + 4] = np.round(psu[:, :, 1], 3)
    nodes[k + 5] = np.round(inlet + 22.0 + 14.0 * node_busy / np.sqrt(node_air) + pt.cpu_noise, 1)
    return nodes, node_power


def _facility_metrics(
    grid: Grid, base: Baseline, fx: Effects, *, node_power: np.ndarray, crac: np.ndarray
) -> np.ndarray:
    """Assemble the PDU, CRAC and switch series, [COMPONENT_SERIES, time, rack]."""
    t_n, r_n = grid.t_n, grid.r_n
    at, pt, bg = base.air, base.power, base.background
    live_nodes = ~fx.node_down
    rack_watts = (node_power * live_nodes).reshape(t_n, r_n, -1).sum(axis=2)
    comp = np.empty((len(COMPONENT_SERIES), t_n, r_n))
    comp[0] = np.where(fx.pdu_off, 0.0, np.round(1.04 * rack_watts + 350.0 + pt.pdu_w_noise))
    volts = 230.5 + pt.pdu_off_v + pt.pdu_ar - 3.0 * rack_watts / 70000.0 + fx.pdu_volt_add
    comp[1] = np.where(fx.pdu_off, 0.0, np.round(volts + pt.pdu_noise, 1))
    comp[2] = np.round(crac + at.crac_noise, 1)
    port_faults = poisson_like(fx.port_err_rate * grid.step_min, bg.fault_noise[:, :r_n])
    comp[3] = np.cumsum(bg.port_base + port_faults, axis=0)
    return comp


def _presence(
    grid: Grid, gaps: dict[str, np.ndarray], fx: Effects, gpu: np.ndarray, nodes: np.ndarray
) -> np.ndarray:
    """Return ``up`` per exporter job; set what goes unreported to NaN in ``gpu`` and ``nodes``.

    Unreported: everything of a down node, a failed scrape's series, a GPU fallen off the bus.
    """
    up = np.empty((len(UP_JOBS), grid.t_n, grid.n_n))
    for j, job_name in enumerate(UP_JOBS):
        up[j] = np.where(fx.node_down | gaps[job_name], 0.0, 1.0)
    gpu_absent = (up[0] == 0.0)[:, grid.node_of_gpu] | fx.gpu_absent
    gpu[:, gpu_absent] = np.nan
    for s, (_m, _sensor, job_name, _extra) in enumerate(NODE_SERIES):
        nodes[s][up[UP_JOBS.index(job_name)] == 0.0] = np.nan
    return up
