"""A randomized scenario matrix: fleet shape, naming, sampling, workload, faults, benign events.

:func:`draw_scenario` draws everything from ``numpy.random.default_rng(seed)`` (the physics of
the drawn fleet then draws from its own seeded streams), so one seed is one scenario and one
set of frames, bit for bit. What is drawn, and from how wide a distribution:

=============  =================================================================================
shape          1-64 racks and 2-32 nodes per rack (log-uniform), 4 or 8 GPUs per node, 1-3 GPU
               models mixed per node (H100/H200/A100/L40S/B200: TDP, clocks, thermal baseline);
               per kind (PDU, cooling, switch) one unit per rack, units shared by 2-4 adjacent
               racks, two units for the fleet (one peer) or a single unit (no peer); names and
               facility metric names from five vendor-like vocabularies each.
sampling       scrape step 15 s / 30 s / 1 min / 2 min / 5 min; extra scrape gaps (0-20 a day
               per target); counter resets and exporter restarts as benign events.
workload       mixed, all busy, mostly idle, bursty, job churn every 10-60 min, diurnal, one
               busy GPU among idle ones.
faults         1-6 (none when ``healthy``), every kind of :data:`~storage.simulator.faults.FAULT_KINDS`,
               precursors 30 min-72 h (slow-burn HBM wear and fan bearings up to 72 h) shaped
               linear, exponential, step or intermittent; onsets in the replay, no two faults on
               the same GPUs within each other's precursor-to-repair window, onsets >= 1 h apart.
benign         2-6 of :data:`BENIGN_KINDS` (job storms, drain+reboot, driver update, fan profile,
               ECC burst, hall ambient change, planned power cap, exporter restart, counter reset).
periods        history 24-48 h (the fit), replay 1-4 days (longer to hold a long precursor).
=============  =================================================================================

Shape truncation: racks and nodes per rack are redrawn (up to 50 times) until the fleet has at
most ``min(max_gpus, CELL_BUDGET // samples)`` GPUs, so a fine scrape step over a long run gets
a smaller fleet; if no draw fits, the larger of racks / nodes per rack is halved (then 8 GPUs
per node become 4) until it does. Typical fleets come out at 16-256 GPUs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import numpy as np

from analysis.types import BenignEvent, Fault, Topology
from storage.simulator.faults import FAULT_KINDS, FAULT_MIX, REPAIR_HOURS, TARGET_LEVEL, affected_of
from storage.simulator.fleet import FleetSimulator
from storage.simulator.scenario_benign import (
    BENIGN_KINDS,
    Busy,
    draw_benign,
    free,
    pick_target,
)
from storage.simulator.scenario_workload import WORKLOAD_STYLES
from storage.simulator.shape import (
    COMPONENT_PATTERNS,
    FACILITY_VOCABULARIES,
    GPU_MODELS,
    NODE_PATTERNS,
    RACK_PATTERNS,
    FacilityUnit,
    ScenarioSpec,
)
from storage.simulator.variation import PRECURSOR_SHAPES, Variation

__all__ = ["BENIGN_KINDS", "CELL_BUDGET", "Scenario", "draw_scenario"]

STEPS_S: tuple[int, ...] = (15, 30, 60, 120, 300)
SHARING: tuple[str, ...] = ("per_rack", "grouped", "pair", "single")
# Precursor hours per kind in a scenario: (min, max), drawn log-uniform.
SCENARIO_PRECURSOR_HOURS: dict[str, tuple[float, float]] = {
    "fan": (1.0, 24.0),
    "thermal_interface": (1.0, 36.0),
    "hbm": (1.0, 24.0),
    "nvlink": (0.5, 12.0),
    "pcie": (0.5, 8.0),
    "pdu": (0.5, 8.0),
    "cooling": (0.5, 6.0),
    "switch": (1.0, 16.0),
}
SLOW_BURN_HOURS = (48.0, 72.0)
#: Samples x GPUs the physics may hold for one scenario (memory and time bound).
CELL_BUDGET = 1_500_000
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Scenario:
    """One drawn scenario: a fleet, its periods and sampling, faults and benign events."""

    seed: int
    spec: ScenarioSpec
    start: datetime
    history: timedelta
    replay: timedelta
    step: timedelta
    faults: tuple[Fault, ...]
    benign: tuple[BenignEvent, ...]
    description: Mapping[str, object]
    variation: Variation = field(repr=False, compare=False, default_factory=lambda: Variation(0))

    @property
    def replay_start(self) -> datetime:
        """Return the first instant of the evaluated period."""
        return self.start + self.history

    @property
    def end(self) -> datetime:
        """Return the end of the replay."""
        return self.start + self.history + self.replay

    def simulator(self) -> FleetSimulator:
        """Return an in-memory ``MetricsSource`` holding this scenario's whole history."""
        return FleetSimulator(
            self.spec,
            start=self.start,
            duration=self.history + self.replay,
            step=self.step,
            seed=self.seed,
            faults=self.faults,
            variation=self.variation,
        )

    @property
    def topology(self) -> Topology:
        """Return the fleet's topology with the drawn PromQL."""
        return self.spec.topology()


def draw_scenario(seed: int, *, healthy: bool = False, max_gpus: int = 512) -> Scenario:
    """Draw one scenario from ``numpy.random.default_rng(seed)`` (see the module docstring).

    Parameters
    ----------
    seed : int
        The scenario's seed: same seed, same scenario and same frames.
    healthy : bool
        No faults, only the workload and benign events: the scenario of the same seed with its
        faults taken out (same fleet, periods, workload and benign events).
    max_gpus : int
        Upper bound of the fleet's GPUs (the shape is redrawn or shrunk to fit).

    Returns
    -------
    Scenario
    """
    if max_gpus < 8:
        raise ValueError(f"max_gpus must be at least 8 (1 rack x 2 nodes x 4 GPUs), got {max_gpus}")
    rng = np.random.default_rng(seed)
    step_s = int(rng.choice(STEPS_S, p=[0.15, 0.2, 0.35, 0.15, 0.15]))
    history_h = int(rng.integers(24, 49))
    replay_h = int(rng.integers(24, 97))
    n_faults = int(rng.integers(1, 7))
    slow = None
    if rng.random() < 0.35:
        hours = 72.0 if rng.random() < 0.4 else float(rng.uniform(*SLOW_BURN_HOURS))
        slow = (str(rng.choice(["hbm", "fan"])), hours)
        replay_h = min(96, max(replay_h, math.ceil(hours) + int(rng.integers(3, 13))))
    start = _EPOCH + timedelta(days=int(rng.integers(0, 330)), hours=int(rng.integers(0, 24)))
    samples = (history_h + replay_h) * 3600 // step_s
    budget = max(8, min(max_gpus, CELL_BUDGET // samples))
    spec, shape_info = _draw_shape(rng, budget)
    style = str(rng.choice(WORKLOAD_STYLES))
    churn = float(rng.uniform(10.0, 60.0))
    gap_rate = 0.0 if rng.random() < 0.4 else float(rng.uniform(1.0, 20.0))
    history, replay, step = (
        timedelta(hours=history_h),
        timedelta(hours=replay_h),
        timedelta(seconds=step_s),
    )
    end = start + history + replay
    faults, shapes = _draw_faults(rng, spec, start + history, end, n_faults, slow)
    benign, sizes = draw_benign(rng, spec, start, history, end, step, faults)
    if healthy:  # the same scenario (same stream, shape and benign events) without its faults
        faults, shapes = (), ()
    variation = Variation(
        seed=seed,
        workload=style,
        churn_minutes=churn,
        gap_rate_per_day=gap_rate,
        fault_shapes=shapes,
        benign=benign,
        magnitudes=sizes,
    )
    faults = tuple(_with_signal_start(f, variation.quiet_share(f.id), step) for f in faults)
    description: dict[str, object] = {
        "seed": seed,
        "healthy": healthy,
        "shape": shape_info,
        "sampling": {
            "step_s": step_s,
            "gap_rate_per_day": round(gap_rate, 2),
            "budget_gpus": budget,
        },
        "workload": {"style": style, "churn_minutes": round(churn, 1)},
        "history_h": history_h,
        "replay_h": replay_h,
        "faults": [
            {
                "id": f.id,
                "kind": f.kind,
                "target": f.target,
                "level": TARGET_LEVEL[f.kind],
                "gpus": len(f.affected),
                "precursor_h": round((f.failure - f.onset).total_seconds() / 3600.0, 2)
                if f.failure
                else None,
                "shape": s,
                "signal_h": round((f.failure - f.signal_start).total_seconds() / 3600.0, 2)
                if f.failure and f.signal_start
                else None,
            }
            for f, (_fid, _k, s) in zip(faults, shapes, strict=True)
        ],
        "benign": [{"id": e.id, "kind": e.kind, "target": e.target} for e in benign],
    }
    return Scenario(
        seed=seed,
        spec=spec,
        start=start,
        history=history,
        replay=replay,
        step=step,
        faults=faults,
        benign=benign,
        description=description,
        variation=variation,
    )


def _with_signal_start(fault: Fault, quiet: float, step: timedelta) -> Fault:
    """Return ``fault`` with its signal's start: the first scrape at ``quiet`` of its precursor."""
    if fault.failure is None:
        return fault
    steps = math.ceil(quiet * ((fault.failure - fault.onset) / step) - 1e-9)
    return replace(fault, signal_start=fault.onset + steps * step)


def _log_int(rng: np.random.Generator, lo: int, hi: int) -> int:
    """Return an integer drawn log-uniform in [lo, hi]."""
    return int(np.clip(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))), lo, hi))


def _draw_shape(rng: np.random.Generator, budget: int) -> tuple[ScenarioSpec, dict[str, object]]:
    """Draw racks, nodes, GPU models, names and facility units within ``budget`` GPUs."""
    gpn = int(rng.choice([4, 8], p=[0.35, 0.65]))
    racks, npr = 1, 2
    for _ in range(50):
        racks, npr = _log_int(rng, 1, 64), _log_int(rng, 2, 32)
        if racks * npr * gpn <= budget:
            break
    shrunk = racks * npr * gpn > budget
    while racks * npr * gpn > budget:
        if npr > 2 and (npr >= racks or racks == 1):
            npr = max(2, npr // 2)
        elif racks > 1:
            racks = max(1, racks // 2)
        else:
            gpn = 4
    keys = sorted(GPU_MODELS)
    fleet_models = list(
        rng.choice(keys, size=int(rng.choice([1, 2, 3], p=[0.35, 0.4, 0.25])), replace=False)
    )
    weights = rng.dirichlet(np.ones(len(fleet_models)) * 2.0)
    node_models = tuple(str(m) for m in rng.choice(fleet_models, size=racks * npr, p=weights))
    pattern = NODE_PATTERNS[int(rng.integers(len(NODE_PATTERNS)))]
    nodes = tuple(
        pattern.format(n=r * npr + k + 1, r=r + 1, k=k + 1)
        for r in range(racks)
        for k in range(npr)
    )
    rack_pattern = RACK_PATTERNS[int(rng.integers(len(RACK_PATTERNS)))]
    row = "abcdefgh"[int(rng.integers(8))]
    rack_ids = tuple(rack_pattern.format(i=r + 1, row=row) for r in range(racks))
    units: list[FacilityUnit] = []
    info_units: dict[str, object] = {}
    for kind in ("pdu", "cooling", "switch"):
        mode = str(rng.choice(SHARING, p=[0.4, 0.3, 0.15, 0.15]))
        groups = _groups(rng, racks, mode)
        names, label = FACILITY_VOCABULARIES[kind][int(rng.integers(5))]
        cpattern = COMPONENT_PATTERNS[kind][int(rng.integers(5))]
        for i, grp in enumerate(groups):
            units.append(FacilityUnit(cpattern.format(i=i + 1, row=row), kind, grp, names, label))
        info_units[kind] = {
            "mode": mode,
            "units": len(groups),
            "racks_per_unit": [len(g) for g in groups],
            "metrics": dict(names),
            "label": label,
        }
    spec = ScenarioSpec(
        racks=racks,
        nodes_per_rack=npr,
        gpus_per_node=gpn,
        nodes=nodes,
        rack_ids=rack_ids,
        node_models=node_models,
        units=tuple(units),
    )
    info: dict[str, object] = {
        "racks": racks,
        "nodes_per_rack": npr,
        "gpus_per_node": gpn,
        "gpus": spec.n_gpus,
        "shrunk": shrunk,
        "models": {GPU_MODELS[m].name: node_models.count(m) for m in sorted(set(node_models))},
        "node_pattern": pattern,
        "rack_pattern": rack_pattern,
        "units": info_units,
    }
    return spec, info


def _groups(rng: np.random.Generator, racks: int, mode: str) -> list[tuple[int, ...]]:
    """Split racks 0..racks-1 into adjacent groups served by one unit each."""
    if mode == "single" or racks == 1:
        return [tuple(range(racks))]
    if mode == "pair":
        cut = int(rng.integers(1, racks))
        return [tuple(range(cut)), tuple(range(cut, racks))]
    if mode == "per_rack":
        return [(r,) for r in range(racks)]
    out: list[tuple[int, ...]] = []
    r = 0
    while r < racks:
        size = int(rng.integers(2, 5))
        out.append(tuple(range(r, min(racks, r + size))))
        r += size
    return out


def _draw_faults(  # noqa: PLR0917 - one private step of draw_scenario
    rng: np.random.Generator,
    spec: ScenarioSpec,
    replay_start: datetime,
    end: datetime,
    n: int,
    slow: tuple[str, float] | None,
) -> tuple[tuple[Fault, ...], tuple[tuple[str, str, str], ...]]:
    """Draw ``n`` separated faults (a slow-burn one first) with onsets inside the replay."""
    mix = np.array([0.5 * FAULT_MIX[k] + 0.5 / len(FAULT_KINDS) for k in FAULT_KINDS])
    wanted: list[tuple[str, float | None]] = [(slow[0], slow[1])] if slow else []
    wanted += [
        (str(rng.choice(FAULT_KINDS, p=mix / mix.sum())), None)
        for _ in range(max(0, n - len(wanted)))
    ]
    busy: Busy = {}
    placed: list[tuple[datetime, str, str, datetime, str]] = []
    margin = timedelta(hours=1)
    for kind, asked in wanted:
        shape = str(rng.choice(PRECURSOR_SHAPES))
        hours = asked
        for _attempt in range(60):
            lo_h, hi_h = SCENARIO_PRECURSOR_HOURS[kind]
            h = (
                hours
                if hours is not None
                else math.exp(rng.uniform(math.log(lo_h), math.log(hi_h)))
            )
            length = timedelta(minutes=max(30, int(h * 60)))
            latest = end - timedelta(hours=1) - length
            first = replay_start + timedelta(minutes=30)
            if latest <= first:
                hours = None if hours is None else hours * 0.9
                continue
            onset = first + timedelta(
                minutes=int(rng.uniform(0, (latest - first).total_seconds() / 60))
            )
            target = pick_target(rng, spec, TARGET_LEVEL[kind])
            keys = affected_of(kind, target, spec)
            window_end = onset + length + timedelta(hours=REPAIR_HOURS[1]) + margin
            if not free(busy, keys, onset - margin, window_end):
                continue
            if any(abs((onset - o).total_seconds()) < 3600 for o, *_ in placed):
                continue
            for k in keys:
                busy.setdefault(k, []).append((onset - margin, window_end))
            placed.append((onset, kind, target, onset + length, shape))
            break
    placed.sort()
    faults, shapes = [], []
    for i, (onset, kind, target, failure, shape) in enumerate(placed):
        fid = f"{kind}-{i + 1:03d}"
        faults.append(Fault(fid, kind, target, affected_of(kind, target, spec), onset, failure))
        shapes.append((fid, kind, shape))
    return tuple(faults), tuple(shapes)
