"""The fleet's normal activity: jobs on the GPUs, and the harmless background noise of a fleet.

Every function draws from the random stream it is given, in a fixed order, so the physics that
calls them in a fixed order reproduces the same history from the same seed.
"""

from __future__ import annotations

import numpy as np

from storage.simulator.signals import ar1
from storage.simulator.spec import UP_JOBS, FleetSpec

FB_TOTAL_MIB = 81559.0


def schedule_jobs(
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
                    wobble = ar1(0.02 * rng.standard_normal(n), 0.9)
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
