"""What a drawn scenario changes in the physics: GPU models, workload, benign events, sampling.

A plain :class:`~storage.simulator.spec.FleetSpec` run never touches this module (its history
stays bit for bit what it was). A :class:`Variation` is handed to
:func:`storage.simulator.physics.generate_readings` by a scenario; it draws from its own random
stream (never the baseline's) and acts in three places: :meth:`Variation.vary_baseline` (the
workload style, per-model GPU constants, facility units shared by several racks, extra scrape
gaps), :meth:`Variation.apply_events` (benign events and sampling trouble written into the
effect arrays) and :func:`unit_metrics` (facility series per unit instead of per rack).
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from analysis.types import BenignEvent
from storage.simulator.baseline import Baseline
from storage.simulator.faults import Effects
from storage.simulator.layout import COMPONENT_SERIES, Grid
from storage.simulator.scenario_workload import schedule_styled
from storage.simulator.shape import GPU_MODELS, ScenarioSpec
from storage.simulator.spec import UP_JOBS

PRECURSOR_SHAPES: tuple[str, ...] = ("linear", "exponential", "step", "intermittent")

# The power of p each kind's signature grows with (faults.apply_fault); "linear" undoes it.
_KIND_POWER: dict[str, float] = {
    "fan": 1.6,
    "thermal_interface": 1.3,
    "hbm": 3.0,
    "nvlink": 3.0,
    "pcie": 2.5,
    "pdu": 1.2,
    "cooling": 1.4,
    "switch": 3.0,
}


#: The share of each episode an intermittent precursor is on at its onset (more as it ages).
_ON_AT_ONSET = 0.2


def _step_at(u: np.ndarray) -> float:
    """Return where (share of the precursor) a step-shaped precursor jumps."""
    return float(0.2 + 0.5 * u[0])


def _episodes(u: np.ndarray) -> float:
    """Return how many on/off episodes an intermittent precursor has."""
    return float(6.0 + 14.0 * u[2])


@dataclass(frozen=True)
class Extra:
    """Per-GPU model constants and the benign modifiers the fault effects have no array for."""

    tdp: np.ndarray  # [GPU] W
    sm_max: np.ndarray  # [GPU] MHz
    mem_clock: np.ndarray  # [GPU] MHz
    node_tdp: np.ndarray  # [node] mean board power of its GPUs
    rack_tdp: np.ndarray  # [rack] summed board power
    clock_add: np.ndarray  # [time, GPU] MHz (driver/firmware update)
    power_add: np.ndarray  # [time, GPU] W (driver/firmware update)
    inlet_add: np.ndarray  # [time, node] °C (hall ambient)


@dataclass(frozen=True)
class Variation:
    """A scenario's physics beyond the plain fleet (see the module docstring).

    ``fault_shapes`` maps fault id -> (kind, precursor shape); ``benign`` are the events that
    must not page and ``magnitudes`` one size per event (MHz, factor, count, °C or cap share).
    """

    seed: int
    workload: str = "mixed"
    churn_minutes: float = 30.0
    gap_rate_per_day: float = 0.0
    fault_shapes: tuple[tuple[str, str, str], ...] = ()
    benign: tuple[BenignEvent, ...] = ()
    magnitudes: tuple[float, ...] = ()

    def rng(self, salt: int) -> np.random.Generator:
        """Return the variation's random stream number ``salt``."""
        return np.random.default_rng([self.seed & 0xFFFFFFFF, 0x5CE7A, salt])

    # ------------------------------------------------------------------ fault shapes

    def shape_progress(self, fault_id: str, p: np.ndarray) -> np.ndarray:
        """Return the precursor progress of ``fault_id`` reshaped (linear, step, intermittent)."""
        found = self._shape_of(fault_id)
        if found is None or len(p) == 0:
            return p
        kind, shape = found
        u = self._shape_draws(fault_id)
        if shape == "linear":
            out = p ** (1.0 / _KIND_POWER[kind])
        elif shape == "step":  # quiet, then a jump to a plateau that creeps up
            at, level = _step_at(u), 0.55 + 0.3 * u[1]
            out = np.where(p < at, 0.02 * p, level + (1.0 - level) * (p - at) / (1.0 - at))
        elif shape == "intermittent":  # on/off episodes, on more often as it ages
            episodes = _episodes(u)
            phase = ((p * episodes + u[3]) % 1.0) < _ON_AT_ONSET + 0.6 * p
            out = np.where(phase, p ** (1.0 / _KIND_POWER[kind]), 0.03 * p)
        else:  # exponential: the kind's own accelerating signature
            out = p
        result: np.ndarray = np.clip(out, 0.0, 0.999)
        return result

    def quiet_share(self, fault_id: str) -> float:
        """Return the share of ``fault_id``'s precursor before its signal starts (0: at onset).

        A step is quiet until its jump and an intermittent fault until its first episode
        (:meth:`shape_progress`); nothing can warn of a fault earlier than that, so the
        evaluation counts the faults whose signal starts an hour or more before the failure.
        """
        found = self._shape_of(fault_id)
        shape = found[1] if found else None
        u = self._shape_draws(fault_id)
        if shape == "step":
            return _step_at(u)
        if shape == "intermittent" and u[3] >= _ON_AT_ONSET:  # on once p * episodes + u3 wraps
            return float((1.0 - u[3]) / _episodes(u))
        return 0.0

    def _shape_of(self, fault_id: str) -> tuple[str, str] | None:
        """Return ``fault_id``'s (kind, precursor shape), ``None`` if it has none."""
        return next(((k, s) for fid, k, s in self.fault_shapes if fid == fault_id), None)

    def _shape_draws(self, fault_id: str) -> np.ndarray:
        """Return the four uniform draws that place ``fault_id``'s step and episodes."""
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, zlib.crc32(fault_id.encode())])
        draws: np.ndarray = rng.random(4)
        return draws

    # ------------------------------------------------------------------ baseline

    def vary_baseline(
        self, spec: ScenarioSpec, grid: Grid, base: Baseline
    ) -> tuple[Baseline, Extra]:
        """Return the baseline with the scenario's workload, GPU models, shared units and gaps."""
        rng = self.rng(1)
        models = [GPU_MODELS[m] for m in spec.node_models]
        per_gpu = [m for m in models for _ in range(grid.gpn)]
        tdp = np.array([m.tdp for m in per_gpu])
        fb_total = np.array([m.fb_mib for m in per_gpu])
        work = schedule_styled(
            self.rng(2),
            spec,
            grid.t_n,
            grid.step_min,
            grid.diurnal,
            self.workload,
            self.churn_minutes,
        )
        work = dataclasses.replace(work, fb=work.fb * (fb_total / 81559.0)[None, :])
        lo = np.array([m.idle[0] for m in per_gpu])
        hi = np.array([m.idle[1] for m in per_gpu])
        gt = base.gpu
        gt = dataclasses.replace(
            gt,
            idle_w=lo + (hi - lo) * rng.random(grid.g_n),
            r0=gt.r0 * np.array([m.r_scale for m in per_gpu]),
            temp_off=gt.temp_off + np.array([m.temp_off for m in per_gpu]),
        )
        air, power, bg = base.air, base.power, base.background
        first = {kind: _first_rack(spec, kind, grid.r_n) for kind in ("pdu", "cooling", "switch")}
        c, p, s = first["cooling"], first["pdu"], first["switch"]
        air = dataclasses.replace(
            air,
            crac_off=air.crac_off[c],
            crac_ar=air.crac_ar[:, c],
            crac_noise=air.crac_noise[:, c],
        )
        power = dataclasses.replace(
            power,
            pdu_off_v=power.pdu_off_v[p],
            pdu_ar=power.pdu_ar[:, p],
            pdu_noise=power.pdu_noise[:, p],
        )
        gaps = dict(bg.gaps)
        rate = self.gap_rate_per_day * grid.step_min / 1440.0
        for job in UP_JOBS:
            starts = rng.random((grid.t_n, grid.n_n)) < rate
            lengths = rng.integers(1, 6, (grid.t_n, grid.n_n))
            extra_gap = np.zeros_like(gaps[job])
            for t, n in zip(*np.nonzero(starts), strict=True):
                extra_gap[t : t + int(lengths[t, n]), n] = True
            gaps[job] = gaps[job] | extra_gap
        bg = dataclasses.replace(bg, gaps=gaps, port_base=bg.port_base[:, s])
        extra = Extra(
            tdp=tdp,
            sm_max=np.array([m.sm_max for m in per_gpu]),
            mem_clock=np.array([m.mem_clock for m in per_gpu]),
            node_tdp=np.array([m.tdp for m in models]),
            rack_tdp=tdp.reshape(grid.r_n, -1).sum(axis=1),
            clock_add=np.zeros((grid.t_n, grid.g_n)),
            power_add=np.zeros((grid.t_n, grid.g_n)),
            inlet_add=np.zeros((grid.t_n, grid.n_n)),
        )
        return dataclasses.replace(
            base, workload=work, gpu=gt, air=air, power=power, background=bg
        ), extra

    # ------------------------------------------------------------------ events

    def apply_events(
        self, spec: ScenarioSpec, grid: Grid, fx: Effects, extra: Extra, *, t0_ns: int
    ) -> None:
        """Write every benign event and sampling artefact into the effect arrays."""
        gpu_index = {k: i for i, k in enumerate(spec.gpu_keys)}
        node_index = {n: i for i, n in enumerate(spec.node_names)}
        step_ns = int(grid.step_s * 1e9)

        def at(ts: datetime) -> int:
            return int(np.clip((pd.Timestamp(ts).value - t0_ns) // step_ns, 0, grid.t_n))

        for ev, size in zip(self.benign, self.magnitudes, strict=True):
            t1, t2 = at(ev.start), max(at(ev.end), at(ev.start) + 1)
            gpus = np.array([gpu_index[k] for k in ev.affected], dtype=int)
            nodes = np.array(
                sorted({node_index[k.rpartition("/")[0]] for k in ev.affected}), dtype=int
            )
            if ev.kind == "job_churn":
                fx.drain[t1:t2, gpus] = True
            elif ev.kind == "drain_reboot":
                mid = t1 + int((t2 - t1) * size)
                fx.drain[t1:mid, gpus] = True
                fx.node_down[mid:t2, nodes] = True
                fx.counter_resets.extend((t2, int(g)) for g in gpus)
            elif ev.kind == "driver_update":
                extra.clock_add[t1:, gpus] += size
                extra.power_add[t1:, gpus] += np.sign(size) * min(25.0, abs(size) / 4.0)
            elif ev.kind == "fan_profile":
                fx.fan_boost[t1:t2, nodes] *= size
            elif ev.kind == "ecc_burst":
                if t1 < grid.t_n:
                    fx.sbe_rate[t1, gpus] += size / grid.step_min
            elif ev.kind == "ambient_change":
                n = t2 - t1
                ramp = np.minimum(
                    1.0, np.minimum(np.arange(n) / (n / 3), (n - np.arange(n)) / (n / 3))
                )
                extra.inlet_add[t1:t2, :] += (size * ramp)[: grid.t_n - t1, None]
            elif ev.kind == "power_cap":
                cap = extra.tdp[gpus] * size
                fx.power_cap[t1:t2, gpus] = np.minimum(fx.power_cap[t1:t2, gpus], cap[None, :])
            elif ev.kind == "exporter_restart":
                fx.node_down[t1:t2, nodes] = True
                fx.counter_resets.extend((t2, int(g)) for g in gpus)
            elif ev.kind == "counter_reset":
                fx.counter_resets.extend((t1, int(g)) for g in gpus)
            else:  # pragma: no cover - drawn from BENIGN_KINDS
                raise ValueError(f"unknown benign kind {ev.kind!r}")


def _first_rack(spec: ScenarioSpec, kind: str, r_n: int) -> np.ndarray:
    """Return, per rack, the first rack of its ``kind`` unit (racks of one unit share traits)."""
    out = np.arange(r_n)
    for _cid, racks in spec.components_of_kind(kind):
        out[list(racks)] = racks[0]
    return out


def unit_metrics(spec: ScenarioSpec, per_rack: np.ndarray) -> np.ndarray:
    """Turn per-rack facility series [COMPONENT_SERIES, time, rack] into per-unit columns.

    A unit serving several racks reports their summed power and port errors and the (shared)
    supply air and voltage; columns past a kind's unit count are NaN (absent).
    """
    kinds = [c[3] for c in COMPONENT_SERIES]
    width = max(len(spec.components_of_kind(k)) for k in set(kinds))
    out = np.full((per_rack.shape[0], per_rack.shape[1], width), np.nan)
    for row, (key, _prom, _label, kind, _help) in enumerate(COMPONENT_SERIES):
        for j, (_cid, racks) in enumerate(spec.components_of_kind(kind)):
            block = per_rack[row][:, list(racks)]
            if key == "output_watts":
                off = (block == 0.0).all(axis=1)
                out[row, :, j] = np.where(off, 0.0, block.sum(axis=1) - 350.0 * (len(racks) - 1))
            elif key == "port_errors_total":
                out[row, :, j] = block.sum(axis=1)
            elif key == "output_volts":
                out[row, :, j] = np.round(block.mean(axis=1), 1)
            else:
                out[row, :, j] = block[:, 0]
    return out
