"""Workload styles of a drawn scenario: all busy, mostly idle, bursty, churn, diurnal, lone busy.

Same shape of result as :func:`storage.simulator.workload.schedule_jobs` (the ``mixed`` style is
that function itself), drawn from the stream it is given.
"""

from __future__ import annotations

import numpy as np

from storage.simulator.faults import SIMULATED_APPLICATION_XIDS
from storage.simulator.signals import ar1
from storage.simulator.spec import FleetSpec
from storage.simulator.workload import (
    FB_TOTAL_MIB,
    Workload,
    _job_profile,
    _node_groups,
    schedule_jobs,
)

WORKLOAD_STYLES: tuple[str, ...] = (
    "mixed",
    "all_busy",
    "mostly_idle",
    "bursty",
    "churn",
    "diurnal",
    "lone_busy",
)

# style -> (median job minutes, sigma, min, max, busy gap mean, idle gap mean, P(busy gap)).
_PARAMS: dict[str, tuple[float, float, float, float, float, float, float]] = {
    "all_busy": (600.0, 0.6, 60.0, 2880.0, 2.0, 10.0, 0.95),
    "mostly_idle": (90.0, 0.7, 15.0, 600.0, 240.0, 720.0, 0.3),
    "bursty": (20.0, 0.6, 5.0, 90.0, 30.0, 240.0, 0.5),
    "diurnal": (720.0, 0.5, 120.0, 2880.0, 5.0, 30.0, 0.9),
}


def schedule_styled(  # noqa: PLR0917 - schedule_jobs' arguments plus the style's two
    rng: np.random.Generator,
    spec: FleetSpec,
    t_n: int,
    step_min: float,
    diurnal: np.ndarray,
    style: str,
    churn_minutes: float,
) -> Workload:
    """Return the jobs of one workload style over the fleet (see :data:`WORKLOAD_STYLES`)."""
    if style == "mixed":
        return schedule_jobs(rng, spec, t_n, step_min, diurnal)
    if style == "churn":
        params = (churn_minutes, 0.25, 10.0, 60.0, 1.0, 5.0, 0.9)
    elif style == "lone_busy":
        params = _PARAMS["mostly_idle"]
    else:
        params = _PARAMS[style]
    median, sigma, lo, hi, busy_gap, idle_gap, p_busy = params
    g_n, gpn, npr = spec.n_gpus, spec.gpus_per_node, spec.nodes_per_rack
    util = np.zeros((t_n, g_n))
    fb = np.zeros((t_n, g_n))
    job = np.full((t_n, g_n), -1, dtype=np.int32)
    ends: list[int] = []
    xids: list[tuple[int, int, int, int]] = []
    lone = style == "lone_busy"
    for r in range(spec.racks):
        for grp in _node_groups(rng, r * npr, npr):
            all_gpus = np.array([n * gpn + g for n in grp for g in range(gpn)])
            if lone:  # on some nodes one GPU works while its neighbours idle
                if rng.random() < 0.5:
                    continue
                all_gpus = np.array([grp[0] * gpn + int(rng.integers(gpn))])
                median, lo, hi, busy_gap, p_busy = 900.0, 120.0, 4000.0, 2.0, 0.95
            t = 0 if rng.random() < p_busy else int(rng.exponential(idle_gap) / step_min)
            while t < t_n:
                minutes = float(np.clip(rng.lognormal(np.log(median), sigma), lo, hi))
                t1 = min(t_n, t + int(minutes / step_min) + 1)
                n = t1 - t
                if style == "diurnal":
                    level = rng.uniform(0.5, 0.9)
                    base = level * (0.2 + 0.8 * diurnal[t:t1]) + ar1(
                        0.02 * rng.standard_normal(n), 0.9
                    )
                elif style == "bursty":
                    base = rng.uniform(0.85, 1.0) + 0.02 * rng.standard_normal(n)
                else:
                    base = _job_profile(rng, n, step_min, diurnal[t:t1])
                per = base[:, None] * rng.uniform(0.97, 1.0, len(all_gpus))[None, :]
                per = per + 0.012 * rng.standard_normal((n, len(all_gpus)))
                util[t:t1, all_gpus] = np.clip(per, 0.0, 1.0)
                fb[t:t1, all_gpus] = rng.uniform(0.35, 0.95) * FB_TOTAL_MIB
                job[t:t1, all_gpus] = len(ends)
                ends.append(t1)
                if rng.random() < 0.08 and t1 < t_n:
                    code = int(rng.choice(SIMULATED_APPLICATION_XIDS))
                    hold = int(rng.uniform(5.0, 30.0) / step_min) + 1
                    xids.append((t1 - 1, int(rng.choice(all_gpus)), code, hold))
                mean = busy_gap if rng.random() < p_busy else idle_gap
                t = t1 + int(rng.exponential(mean) / step_min) + 1
    return Workload(util, fb, job, np.array(ends, dtype=np.int64), xids)
