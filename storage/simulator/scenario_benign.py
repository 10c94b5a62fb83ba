"""Benign events of a drawn scenario: things that move the metrics but must not page.

Drawn by :func:`storage.simulator.scenario.draw_scenario` from its random stream; each becomes an
:class:`~analysis.types.BenignEvent` (``benign.json``) plus one size that
:meth:`storage.simulator.variation.Variation.apply_events` writes into the physics.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from analysis.types import BenignEvent, Fault
from storage.simulator.faults import REPAIR_HOURS
from storage.simulator.shape import ScenarioSpec

BENIGN_KINDS: tuple[str, ...] = (
    "job_churn",
    "drain_reboot",
    "driver_update",
    "fan_profile",
    "ecc_burst",
    "ambient_change",
    "power_cap",
    "exporter_restart",
    "counter_reset",
)


def pick_target(rng: np.random.Generator, spec: ScenarioSpec, level: str) -> str:
    """Pick a random target of ``level`` (gpu, node, pdu, cooling, switch, rack, fleet)."""
    if level == "gpu":
        return (
            f"{spec.nodes[int(rng.integers(spec.n_nodes))]}/{int(rng.integers(spec.gpus_per_node))}"
        )
    if level == "node":
        return spec.nodes[int(rng.integers(spec.n_nodes))]
    if level == "rack":
        return spec.rack_ids[int(rng.integers(spec.racks))]
    units = spec.components_of_kind(level)
    return units[int(rng.integers(len(units)))][0]


Busy = dict[str, list[tuple[datetime, datetime]]]


def free(busy: Busy, keys: tuple[str, ...], lo: datetime, hi: datetime) -> bool:
    """Whether none of ``keys`` is busy in [lo, hi)."""
    return not any(a < hi and lo < b for k in keys for a, b in busy.get(k, ()))


def draw_benign(  # noqa: PLR0917 - one private step of draw_scenario
    rng: np.random.Generator,
    spec: ScenarioSpec,
    start: datetime,
    history: timedelta,
    end: datetime,
    step: timedelta,
    faults: tuple[Fault, ...],
) -> tuple[tuple[BenignEvent, ...], tuple[float, ...]]:
    """Draw 2-6 benign events away from the faults' GPUs (a hall-wide one may overlap)."""
    busy: Busy = {}
    for f in faults:
        hi = (f.failure or end) + timedelta(hours=REPAIR_HOURS[1] + 1)
        for k in f.affected:
            busy.setdefault(k, []).append((f.onset - timedelta(hours=1), hi))
    drawn: list[tuple[datetime, str, str, tuple[str, ...], datetime, float]] = []
    for _ in range(int(rng.integers(2, 7))):
        kind = str(rng.choice(BENIGN_KINDS))
        for _attempt in range(30):
            in_replay = rng.random() < 0.7
            lo = start + history if in_replay else start + timedelta(hours=2)
            hi = end - timedelta(hours=1) if in_replay else start + history - timedelta(hours=1)
            t0 = lo + timedelta(
                minutes=int(rng.uniform(0, max(1.0, (hi - lo).total_seconds() / 60)))
            )
            target, size, length = _benign_params(rng, spec, kind, step)
            t1 = min(end, t0 + length) if length is not None else end
            keys = _benign_affected(spec, target)
            if kind != "ambient_change" and not free(busy, keys, t0, t1 + timedelta(hours=1)):
                continue
            if kind != "ambient_change":
                for k in keys:
                    busy.setdefault(k, []).append((t0, t1 + timedelta(hours=1)))
            drawn.append((t0, kind, target, keys, t1, size))
            break
    drawn.sort(key=lambda d: (d[0], d[1], d[2]))
    events = tuple(
        BenignEvent(f"benign-{i + 1:02d}-{kind}", kind, target, keys, t0, t1)
        for i, (t0, kind, target, keys, t1, _s) in enumerate(drawn)
    )
    return events, tuple(d[5] for d in drawn)


def _benign_params(
    rng: np.random.Generator, spec: ScenarioSpec, kind: str, step: timedelta
) -> tuple[str, float, timedelta | None]:
    """Return (target, size, length or None = to the end) of one benign event of ``kind``."""
    minutes = timedelta(minutes=1)
    if kind == "job_churn":
        target = "fleet" if rng.random() < 0.3 else pick_target(rng, spec, "rack")
        return target, 0.0, max(step, minutes * int(rng.integers(2, 11)))
    if kind == "drain_reboot":
        return (
            pick_target(rng, spec, "node"),
            float(rng.uniform(0.6, 0.85)),
            minutes * int(rng.integers(30, 181)),
        )
    if kind == "driver_update":
        return (
            pick_target(rng, spec, "node"),
            float(rng.choice([-1, 1]) * rng.uniform(30, 90)),
            None,
        )
    if kind == "fan_profile":
        return pick_target(rng, spec, "node"), float(rng.choice([0.85, 0.92, 1.1, 1.2])), None
    if kind == "ecc_burst":
        return pick_target(rng, spec, "gpu"), float(rng.integers(2, 13)), step
    if kind == "ambient_change":
        return (
            "fleet",
            float(rng.uniform(2.0, 4.0)),
            timedelta(minutes=int(rng.uniform(3, 12) * 60)),
        )
    if kind == "power_cap":
        return (
            pick_target(rng, spec, "rack"),
            float(rng.uniform(0.55, 0.85)),
            timedelta(minutes=int(rng.uniform(1, 8) * 60)),
        )
    if kind == "exporter_restart":
        return pick_target(rng, spec, "node"), 0.0, step * int(rng.integers(1, 6))
    return pick_target(rng, spec, "gpu"), 0.0, step  # counter_reset


def _benign_affected(spec: ScenarioSpec, target: str) -> tuple[str, ...]:
    """Return the GPU keys behind a benign target (fleet, rack, node or GPU key)."""
    if target == "fleet":
        return spec.gpu_keys
    if target in spec.rack_ids:
        r = spec.rack_ids.index(target)
        nodes = spec.nodes[r * spec.nodes_per_rack : (r + 1) * spec.nodes_per_rack]
        return tuple(f"{n}/{g}" for n in nodes for g in range(spec.gpus_per_node))
    if target in spec.nodes:
        return tuple(f"{target}/{g}" for g in range(spec.gpus_per_node))
    return (target,)
