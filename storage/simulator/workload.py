"""The fleet's workload: jobs on groups of nodes, their utilisation, memory and application XIDs.

Drawn from the random stream it is given, in a fixed order, so the same stream gives the same
jobs. Faults act on the result later (:mod:`storage.simulator.physics`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from storage.simulator.faults import SIMULATED_APPLICATION_XIDS
from storage.simulator.signals import ar1
from storage.simulator.spec import FleetSpec

FB_TOTAL_MIB = 81559.0


@dataclass(frozen=True)
class Workload:
    """The jobs over (time x GPU); ``job`` is -1 where the GPU is idle.

    ``job_end`` holds each job's end step; ``app_xids`` the XIDs of jobs that died, as
    (step, GPU, code, steps held).
    """

    util: np.ndarray
    fb: np.ndarray
    job: np.ndarray
    job_end: np.ndarray
    app_xids: list[tuple[int, int, int, int]]


def schedule_jobs(
    rng: np.random.Generator, spec: FleetSpec, t_n: int, step_min: float, diurnal: np.ndarray
) -> Workload:
    """Schedule jobs on groups of 1, 2 or 4 nodes: utilisation, memory, job ids, app XIDs."""
    g_n, gpn, npr = spec.n_gpus, spec.gpus_per_node, spec.nodes_per_rack
    util = np.zeros((t_n, g_n))
    fb = np.zeros((t_n, g_n))
    job = np.full((t_n, g_n), -1, dtype=np.int32)
    ends: list[int] = []
    xids: list[tuple[int, int, int, int]] = []
    for r in range(spec.racks):
        for grp in _node_groups(rng, r * npr, npr):
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
                base = _job_profile(rng, n, step_min, diurnal[t:t1])
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
                    code = int(rng.choice(SIMULATED_APPLICATION_XIDS))
                    hold = int(rng.uniform(5.0, 30.0) / step_min) + 1
                    hit = sel if code == 13 else [int(rng.choice(sel))]
                    xids.extend((t1 - 1, int(g), code, hold) for g in hit)
                busy = 0.55 + 0.4 * diurnal[min(t1, t_n - 1)]
                gap = rng.exponential(15.0) if rng.random() < busy else rng.exponential(120.0)
                t = t1 + int(gap / step_min) + 1
    return Workload(util, fb, job, np.array(ends, dtype=np.int64), xids)


def _node_groups(rng: np.random.Generator, first: int, npr: int) -> list[list[int]]:
    """Split one rack's nodes ``first..first+npr-1`` into groups of 1, 2 or 4 that share jobs."""
    groups: list[list[int]] = []
    i = 0
    while i < npr:
        size = min(int(rng.choice([1, 2, 4], p=[0.3, 0.35, 0.35])), npr - i)
        groups.append(list(range(first + i, first + i + size)))
        i += size
    return groups


def _job_profile(
    rng: np.random.Generator, n: int, step_min: float, diurnal: np.ndarray
) -> np.ndarray:
    """Return one job's utilisation over its ``n`` steps, before the per-GPU spread."""
    if rng.random() < 0.7:  # training: flat and high, checkpoint dips
        base: np.ndarray = rng.uniform(0.72, 0.98) + 0.015 * rng.standard_normal(n)
        period = rng.uniform(20.0, 60.0) / step_min
        dip = max(1.0, rng.uniform(1.0, 3.0) / step_min)
        phase = rng.uniform(0.0, period)
        if period >= 3 * dip:
            dips = ((np.arange(n) + phase) % period) < dip
            base = np.where(dips, rng.uniform(0.05, 0.25), base)
        return base
    # inference: follows the day
    level = rng.uniform(0.45, 0.85)
    wobble = ar1(0.02 * rng.standard_normal(n), 0.9)
    inference: np.ndarray = level * (0.35 + 0.65 * diurnal) + wobble
    return inference
