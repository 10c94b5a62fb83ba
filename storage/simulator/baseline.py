"""The healthy fleet's random make-up: jobs, per-unit offsets, sensor noise, background counts.

:func:`draw_baseline` draws everything the normal behaviour needs from one random stream, in a
fixed order (the order is part of the seed's meaning: changing it changes every history).
Faults never draw from this stream, so a run with faults differs from the healthy run of the
same seed only where a fault acts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from storage.simulator.layout import Grid
from storage.simulator.signals import ar1
from storage.simulator.spec import FANS_PER_NODE, PSUS, UP_JOBS, FleetSpec
from storage.simulator.workload import Workload, schedule_jobs


@dataclass(frozen=True)
class GpuTraits:
    """Per-GPU power and thermal constants, and the GPUs' sensor noise over time."""

    idle_w: np.ndarray  # [GPU] idle power (W)
    eff: np.ndarray  # [GPU] power efficiency factor
    power_noise: np.ndarray  # [time, GPU]
    r0: np.ndarray  # [GPU] thermal resistance at nominal airflow (°C/W)
    temp_off: np.ndarray  # [GPU] temperature offset (slot position, a few hot GPUs)
    mem_off: np.ndarray  # [GPU] memory temperature offset
    temp_noise: np.ndarray  # [time, GPU]
    mem_noise: np.ndarray  # [time, GPU]
    clock_noise: np.ndarray  # [time, GPU]


@dataclass(frozen=True)
class AirTraits:
    """CRAC supply, rack inlet and fan constants and noise."""

    crac_off: np.ndarray  # [rack]
    crac_ar: np.ndarray  # [time, rack] slow drift
    crac_noise: np.ndarray  # [time, rack] sensor noise
    inlet_off: np.ndarray  # [node] (warmer near the top of the rack)
    inlet_ar: np.ndarray  # [time, node] slow drift
    inlet_noise: np.ndarray  # [time, node] sensor noise
    fan_off: np.ndarray  # [node, fan] speed factor (a few healthy fans run slow)
    fan_noise: np.ndarray  # [time, node, fan]
    exhaust_noise: np.ndarray  # [time, node]


@dataclass(frozen=True)
class PowerTraits:
    """Node power, PSU and PDU constants and noise (and the node CPU sensor's noise)."""

    node_pw_noise: np.ndarray  # [time, node]
    psu_off: np.ndarray  # [node, PSU] volts
    psu_noise: np.ndarray  # [time, node, PSU]
    cpu_noise: np.ndarray  # [time, node] CPU temperature noise (drawn here: stream order)
    pdu_off_v: np.ndarray  # [rack] volts
    pdu_ar: np.ndarray  # [time, rack] slow voltage drift
    pdu_noise: np.ndarray  # [time, rack] voltage noise
    pdu_w_noise: np.ndarray  # [time, rack] power noise


@dataclass(frozen=True)
class Background:
    """What a healthy fleet counts and misses anyway, and the uniforms fault counters reuse."""

    leaky: dict[str, np.ndarray]  # "sbe"/"crc"/"replay": [time, GPU] counts; "rows": [GPU]
    port_base: np.ndarray  # [time, rack] switch port errors
    gaps: dict[str, np.ndarray]  # exporter job -> [time, node] failed scrapes
    fault_noise: np.ndarray  # [time, GPU] uniforms shared by the fault counters


@dataclass(frozen=True)
class Baseline:
    """Everything the healthy fleet's behaviour is drawn from."""

    workload: Workload
    gpu: GpuTraits
    air: AirTraits
    power: PowerTraits
    background: Background


def draw_baseline(rng: np.random.Generator, spec: FleetSpec, grid: Grid) -> Baseline:
    """Draw the healthy fleet from ``rng``, in the fixed order the seed's history depends on."""
    workload = schedule_jobs(rng, spec, grid.t_n, grid.step_min, grid.diurnal)
    gpu = _draw_gpu(rng, grid)
    air = _draw_air(rng, grid)
    power = _draw_power(rng, grid)
    background = Background(
        leaky=leaky_counters(rng, grid.t_n, grid.g_n, grid.step_min),
        port_base=port_errors_base(rng, grid.t_n, grid.r_n, grid.step_min),
        gaps=scrape_gaps(rng, grid.t_n, grid.n_n, grid.step_min),
        fault_noise=rng.random((grid.t_n, grid.g_n)),
    )
    return Baseline(workload, gpu, air, power, background)


def _draw_gpu(rng: np.random.Generator, grid: Grid) -> GpuTraits:
    """Draw the GPUs' constants and noise."""
    t_n, g_n, gpn = grid.t_n, grid.g_n, grid.gpn
    idle_w = rng.uniform(62.0, 80.0, g_n)
    eff = rng.normal(1.0, 0.035, g_n)
    power_noise = rng.normal(0.0, 5.0, (t_n, g_n))
    r0 = 0.062 * rng.normal(1.0, 0.05, g_n)
    slot = np.arange(g_n) % gpn
    temp_off = np.where(slot >= gpn / 2, 2.0, 0.0) + rng.normal(0.0, 1.2, g_n)
    # a few healthy GPUs run steadily hotter (paste, airflow) without ever failing
    temp_off += np.where(rng.random(g_n) < 0.03, rng.uniform(4.0, 7.0, g_n), 0.0)
    return GpuTraits(
        idle_w=idle_w,
        eff=eff,
        power_noise=power_noise,
        r0=r0,
        temp_off=temp_off,
        mem_off=rng.normal(0.0, 1.5, g_n),
        temp_noise=rng.normal(0.0, 0.4, (t_n, g_n)),
        mem_noise=rng.normal(0.0, 0.4, (t_n, g_n)),
        clock_noise=rng.normal(0.0, 8.0, (t_n, g_n)),
    )


def _draw_air(rng: np.random.Generator, grid: Grid) -> AirTraits:
    """Draw the CRACs', inlets' and fans' constants and noise."""
    t_n, n_n, r_n = grid.t_n, grid.n_n, grid.r_n
    crac_off = rng.normal(0.0, 0.5, r_n)
    crac_ar = ar1(rng.normal(0.0, 0.05, (t_n, r_n)), 0.98)
    crac_noise = rng.normal(0.0, 0.08, (t_n, r_n))
    inlet_off = 2.5 * grid.node_pos + rng.normal(0.0, 0.4, n_n)
    inlet_ar = ar1(rng.normal(0.0, 0.08, (t_n, n_n)), 0.95)
    inlet_noise = rng.normal(0.0, 0.3, (t_n, n_n))
    fan_off = rng.normal(1.0, 0.03, (n_n, FANS_PER_NODE))
    # a few healthy nodes have one fan that steadily runs slow (a tolerance, not a fault)
    weak = rng.random(n_n) < 0.06
    fan_off[np.arange(n_n), rng.integers(0, FANS_PER_NODE, n_n)] *= np.where(
        weak, rng.uniform(0.75, 0.85, n_n), 1.0
    )
    return AirTraits(
        crac_off=crac_off,
        crac_ar=crac_ar,
        crac_noise=crac_noise,
        inlet_off=inlet_off,
        inlet_ar=inlet_ar,
        inlet_noise=inlet_noise,
        fan_off=fan_off,
        fan_noise=rng.normal(0.0, 60.0, (t_n, n_n, FANS_PER_NODE)),
        exhaust_noise=rng.normal(0.0, 0.4, (t_n, n_n)),
    )


def _draw_power(rng: np.random.Generator, grid: Grid) -> PowerTraits:
    """Draw the nodes', PSUs' and PDUs' constants and noise."""
    t_n, n_n, r_n = grid.t_n, grid.n_n, grid.r_n
    node_pw_noise = rng.normal(0.0, 15.0, (t_n, n_n))
    psu_off = rng.normal(0.0, 0.03, (n_n, len(PSUS)))
    psu_noise = rng.normal(0.0, 0.008, (t_n, n_n, len(PSUS)))
    cpu_noise = rng.normal(0.0, 0.8, (t_n, n_n))
    pdu_off_v = rng.normal(0.0, 0.8, r_n)
    pdu_ar = ar1(rng.normal(0.0, 0.1, (t_n, r_n)), 0.97)
    return PowerTraits(
        node_pw_noise=node_pw_noise,
        psu_off=psu_off,
        psu_noise=psu_noise,
        cpu_noise=cpu_noise,
        pdu_off_v=pdu_off_v,
        pdu_ar=pdu_ar,
        pdu_noise=rng.normal(0.0, 0.25, (t_n, r_n)),
        pdu_w_noise=rng.normal(0.0, 40.0, (t_n, r_n)),
    )


def leaky_counters(
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


def port_errors_base(rng: np.random.Generator, t_n: int, r_n: int, step_min: float) -> np.ndarray:
    """Background switch port errors: a trickle plus rare harmless bursts."""
    rate = rng.uniform(0.02, 0.2, r_n)
    counts = rng.poisson(rate[None, :] * step_min, (t_n, r_n)).astype(float)
    bursts = rng.random((t_n, r_n)) < step_min / 1440.0
    counts += bursts * rng.integers(10, 200, (t_n, r_n))
    return counts


def scrape_gaps(
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
