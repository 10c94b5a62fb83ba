"""The fault library: kinds, their mix and precursor lengths, schedules, and their effects.

Each fault has a precursor phase (``onset`` -> ``failure``) in which its signature grows with the
progress ``p`` in [0, 1), then a failure, then (in the simulator) a repair some hours later after
which the hardware is healthy again. The kinds and what they do to the metrics:

``fan`` (target ``<node>``)
    One of the node's six fans (``ipmi_fan_speed_rpm{name="FANk"}``) winds down to ~5 % of its
    speed and wobbles, its neighbour loses up to half late in the precursor, the other fans
    speed up ~12 %; the GPUs nearest those fans lose airflow, run
    hotter (up to +20-30 °C at full power), hit the slowdown temperature (thermal violation,
    lower SM clock). Failure: the node shuts down (all its series vanish, ``up`` = 0).
``thermal_interface`` (target ``<node>/<gpu>``)
    The GPU's thermal resistance grows by up to +50 %: it runs hotter than its peers at the same
    power (up to ~+20 °C at 700 W), memory temperature a little, then thermal violation and
    throttling. Failure: the GPU is drained (utilisation 0, its job dies).
``hbm`` (target ``<node>/<gpu>``)
    Volatile single-bit ECC (``DCGM_FI_DEV_ECC_SBE_VOL_TOTAL``) accelerates to thousands and
    correctable remapped rows climb to 3-7. Failure: DBE +1..3, XID 48 then 63 then 64, one
    uncorrectable remapped row, ``DCGM_FI_DEV_ROW_REMAP_FAILURE`` = 1; GPU drained.
``nvlink`` (target ``<node>/<gpu>``)
    ``DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL`` accelerates (to hundreds per minute) and the
    GPU's utilisation dips. Failure: XID 74, job dies, GPU drained.
``pcie`` (target ``<node>/<gpu>``)
    ``DCGM_FI_DEV_PCIE_REPLAY_COUNTER`` accelerates, small utilisation dips. Failure: XID 79 on the
    last sample, then every series of that GPU disappears (dcgm ``up`` stays 1).
``pdu`` (target ``pdu-aN``)
    ``pdu_output_volts`` sags (a few volts, with dips of up to ~25 V growing in depth and
    frequency), the rack's ``ipmi_voltage_volts{name="PSUx 12V"}`` dip with it, and the nodes cap
    GPU power (down to ~400 W): ``DCGM_FI_DEV_POWER_VIOLATION`` climbs, SM clocks drop. Failure:
    the PDU trips, the whole rack goes dark (``pdu_output_*`` = 0, node series vanish).
``cooling`` (target ``crac-aN``)
    ``crac_supply_air_celsius`` rises by up to ~14 °C, every node's ``Inlet Temp`` and GPU
    temperature on the rack follow, fans speed up. Failure: supply air +22 °C and the rack's
    nodes shut down.
``switch`` (target ``leaf-aN``)
    ``switch_port_errors_total`` accelerates (to hundreds per minute) and GPU utilisation of
    jobs on the rack stalls in dips. Failure: links down, every job on the rack dies (GPUs idle).

Mix: weights from the InfiniteHBD trace (298 hardware faults on 400 servers over 348 days: GPU
158 of which DBE 60 and PCIe link 25, link/NIC 70, fan 33, power supply 26) and Llama 3's
interruption breakdown (faulty GPU ~30 %, HBM ~17 %, network ~8 %, thermal ~1.4 %, power ~0.7 %),
with the rare kinds scaled up so that a multi-day run holds enough of each kind to measure.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from analysis.catalog import APPLICATION_XIDS, HARDWARE_XIDS
from analysis.types import Fault
from storage.simulator.spec import FANS_PER_NODE, FleetSpec

FAULT_KINDS: tuple[str, ...] = (
    "fan",
    "thermal_interface",
    "hbm",
    "nvlink",
    "pcie",
    "pdu",
    "cooling",
    "switch",
)

# What a kind targets: a GPU key, a node, or a component of a rack.
TARGET_LEVEL: dict[str, str] = {
    "fan": "node",
    "thermal_interface": "gpu",
    "hbm": "gpu",
    "nvlink": "gpu",
    "pcie": "gpu",
    "pdu": "pdu",
    "cooling": "cooling",
    "switch": "switch",
}

# Share of each kind in a random schedule (sums to 1). See the module docstring for sources.
FAULT_MIX: dict[str, float] = {
    "hbm": 0.22,
    "pcie": 0.14,
    "nvlink": 0.14,
    "switch": 0.14,
    "fan": 0.12,
    "pdu": 0.09,
    "cooling": 0.09,
    "thermal_interface": 0.06,
}

# Precursor length (onset -> failure), hours: (min, max). The default for make_fault is the mean.
PRECURSOR_HOURS: dict[str, tuple[float, float]] = {
    "fan": (3.0, 10.0),
    "thermal_interface": (6.0, 12.0),
    "hbm": (4.0, 12.0),
    "nvlink": (2.0, 8.0),
    "pcie": (2.0, 6.0),
    "pdu": (2.0, 6.0),
    "cooling": (2.0, 5.0),
    "switch": (2.0, 8.0),
}

# The metrics each kind moves, primary first (GPU frame: DCGM name; node frame: Prometheus
# name; component frame: the topology metric key). For explanations and evaluation.
FAULT_SIGNALS: dict[str, tuple[str, ...]] = {
    "fan": (
        "ipmi_fan_speed_rpm",
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_MEMORY_TEMP",
        "DCGM_FI_DEV_THERMAL_VIOLATION",
        "DCGM_FI_DEV_SM_CLOCK",
        "ipmi_temperature_celsius",
    ),
    "thermal_interface": (
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_MEMORY_TEMP",
        "DCGM_FI_DEV_THERMAL_VIOLATION",
        "DCGM_FI_DEV_SM_CLOCK",
    ),
    "hbm": (
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
        "DCGM_FI_DEV_ROW_REMAP_FAILURE",
        "DCGM_FI_DEV_XID_ERRORS",
    ),
    "nvlink": (
        "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_XID_ERRORS",
    ),
    "pcie": ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_XID_ERRORS"),
    "pdu": (
        "output_volts",
        "ipmi_voltage_volts",
        "DCGM_FI_DEV_POWER_VIOLATION",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_SM_CLOCK",
    ),
    "cooling": (
        "supply_temp_celsius",
        "ipmi_temperature_celsius",
        "DCGM_FI_DEV_GPU_TEMP",
        "ipmi_fan_speed_rpm",
        "DCGM_FI_DEV_THERMAL_VIOLATION",
    ),
    "switch": ("port_errors_total", "DCGM_FI_DEV_GPU_UTIL"),
}

# Hours from failure until the hardware is repaired and healthy again: (min, max).
REPAIR_HOURS: tuple[float, float] = (3.0, 8.0)

# Expected faults per 100 GPU-days in a random schedule (InfiniteHBD's real rate is ~0.03;
# this is ~100x so that a few simulated days hold every kind).
DEFAULT_FAULT_RATE = 3.0

# The XIDs the simulator emits, a choice drawn from the catalogue's classes: hardware ones at a
# failure (hbm: 48, 63, 64; nvlink: 74; pcie: 79), application ones when a job dies (13, 31, 43).
SIMULATED_HARDWARE_XIDS: tuple[int, ...] = (48, 63, 64, 74, 79)
SIMULATED_APPLICATION_XIDS: tuple[int, ...] = (13, 31, 43)
assert set(SIMULATED_HARDWARE_XIDS) <= HARDWARE_XIDS
assert set(SIMULATED_APPLICATION_XIDS) <= APPLICATION_XIDS


def fault_rng(seed: int, fault_id: str) -> np.random.Generator:
    """Return the random stream of one fault's private parameters (stable per seed and id)."""
    return np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(fault_id.encode("utf-8"))])


def affected_of(kind: str, target: str, spec: FleetSpec) -> tuple[str, ...]:
    """Return every ``<node>/<gpu>`` key behind ``target`` for a fault of ``kind``.

    Raises ValueError naming the expected target form when kind and target do not match.
    """
    if kind not in TARGET_LEVEL:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
    level = TARGET_LEVEL[kind]
    nodes = spec.node_names
    if level == "gpu":
        node, sep, gpu = target.rpartition("/")
        if not sep or node not in nodes or not gpu.isdigit() or int(gpu) >= spec.gpus_per_node:
            raise ValueError(
                f"a {kind} fault targets one GPU as '<node>/<gpu>' of this fleet "
                f"(e.g. '{nodes[0]}/0'), got {target!r}"
            )
        return (f"{node}/{int(gpu)}",)
    if level == "node":
        if target not in nodes:
            raise ValueError(
                f"a {kind} fault targets a node of this fleet (e.g. '{nodes[0]}'), got {target!r}"
            )
        return tuple(f"{target}/{g}" for g in range(spec.gpus_per_node))
    served = dict(spec.components_of_kind(level))
    if target not in served:
        example = next(iter(served))
        raise ValueError(
            f"a {kind} fault targets a {level} component of this fleet (e.g. '{example}'), "
            f"got {target!r}"
        )
    npr = spec.nodes_per_rack
    return tuple(
        f"{spec.node_name(n)}/{g}"
        for rack in served[target]
        for n in range(rack * npr, (rack + 1) * npr)
        for g in range(spec.gpus_per_node)
    )


def make_fault(
    kind: str,
    target: str,
    onset: datetime,
    *,
    spec: FleetSpec | None = None,
    precursor: timedelta | None = None,
    fault_id: str | None = None,
    failure: bool = True,
) -> Fault:
    """Build a Fault of ``kind`` on ``target`` starting at ``onset`` (for injecting in tests).

    ``precursor`` defaults to the mean of the kind's range; ``failure=False`` gives a fault
    whose precursor never ends in a failure (``Fault.failure`` None).
    """
    spec = spec or FleetSpec()
    if onset.tzinfo is None:
        raise ValueError("onset must be timezone-aware (UTC)")
    affected = affected_of(kind, target, spec)
    lo, hi = PRECURSOR_HOURS[kind]
    length = precursor if precursor is not None else timedelta(hours=(lo + hi) / 2)
    if length <= timedelta(0):
        raise ValueError(f"precursor must be positive, got {length}")
    fid = fault_id or f"{kind}-{target}-{onset.strftime('%Y%m%dT%H%M')}"
    return Fault(
        id=fid,
        kind=kind,
        target=target,
        affected=affected,
        onset=onset,
        failure=onset + length if failure else None,
    )


def _targets_for(kind: str, spec: FleetSpec, rng: np.random.Generator) -> str:
    """Pick a random target of the right level for ``kind``."""
    level = TARGET_LEVEL[kind]
    if level == "gpu":
        n = int(rng.integers(spec.n_nodes))
        return f"{spec.node_name(n)}/{int(rng.integers(spec.gpus_per_node))}"
    if level == "node":
        return spec.node_name(int(rng.integers(spec.n_nodes)))
    r = int(rng.integers(spec.racks))
    return {"pdu": spec.pdu_id, "cooling": spec.crac_id, "switch": spec.leaf_id}[level](r)


def draw_schedule(
    spec: FleetSpec,
    *,
    start: datetime,
    end: datetime,
    warmup: timedelta,
    seed: int,
    fault_rate: float = DEFAULT_FAULT_RATE,
) -> tuple[Fault, ...]:
    """Draw a random, non-overlapping fault schedule in [start + warmup, end] (stable per seed).

    The count of each kind is its expected number (``fault_rate`` per 100 GPU-days times the
    kind's share) rounded up or down at random, so every kind whose expectation is >= 1 appears.
    Faults never overlap on a GPU (precursor through repair, with an hour of margin), every
    failure falls inside the run, and ids are ``<kind>-<nnn>`` numbered in onset order.
    """
    rng = np.random.default_rng([seed & 0xFFFFFFFF, 0x5EED])
    window = end - (start + warmup)
    days = window.total_seconds() / 86400.0
    if days <= 0 or fault_rate <= 0:
        return ()
    expected = fault_rate * spec.n_gpus * days / 100.0
    counts: dict[str, int] = {}
    for kind in FAULT_KINDS:
        lam = expected * FAULT_MIX[kind]
        counts[kind] = int(np.floor(lam)) + int(rng.random() < lam - np.floor(lam))
    # Place wide faults first so the narrow ones fit around them.
    order = [k for k in ("pdu", "cooling", "switch", "fan") for _ in range(counts[k])]
    order += [k for k in ("hbm", "pcie", "nvlink", "thermal_interface") for _ in range(counts[k])]
    busy: dict[str, list[tuple[datetime, datetime]]] = {}
    placed: list[tuple[str, str, datetime, datetime]] = []
    margin = timedelta(hours=1)
    first_onset = start + warmup
    for kind in order:
        lo, hi = PRECURSOR_HOURS[kind]
        for _attempt in range(60):
            length = timedelta(minutes=int(rng.uniform(lo, hi) * 60))
            latest = end - timedelta(minutes=30) - length
            if latest <= first_onset:
                break
            span = (latest - first_onset).total_seconds()
            onset = first_onset + timedelta(seconds=int(rng.uniform(0, span)))
            onset = onset.replace(second=0, microsecond=0)
            target = _targets_for(kind, spec, rng)
            failure = onset + length
            keys = affected_of(kind, target, spec)
            lo_t, hi_t = onset - margin, failure + timedelta(hours=REPAIR_HOURS[1]) + margin
            if any(a < hi_t and lo_t < b for key in keys for a, b in busy.get(key, ())):
                continue
            for key in keys:
                busy.setdefault(key, []).append((lo_t, hi_t))
            placed.append((kind, target, onset, failure))
            break
    placed.sort(key=lambda f: (f[2], f[0], f[1]))
    return tuple(
        Fault(
            id=f"{kind}-{i + 1:03d}",
            kind=kind,
            target=target,
            affected=affected_of(kind, target, spec),
            onset=onset,
            failure=failure,
        )
        for i, (kind, target, onset, failure) in enumerate(placed)
    )


@dataclass
class Effects:
    """What the faults do to the fleet, as modifier arrays over (time x GPU/node/rack)."""

    steps: int
    n_gpus: int
    n_nodes: int
    n_racks: int
    tdp: np.ndarray | None = None  # [GPU] board power; None = every GPU 700 W (the default fleet)
    util_mult: np.ndarray = field(init=False)
    drain: np.ndarray = field(init=False)
    power_cap: np.ndarray = field(init=False)
    r_mult: np.ndarray = field(init=False)
    fan_mult: np.ndarray = field(init=False)
    fan_boost: np.ndarray = field(init=False)
    crac_add: np.ndarray = field(init=False)
    pdu_volt_add: np.ndarray = field(init=False)
    pdu_off: np.ndarray = field(init=False)
    psu_volt_add: np.ndarray = field(init=False)
    sbe_rate: np.ndarray = field(init=False)
    crc_rate: np.ndarray = field(init=False)
    replay_rate: np.ndarray = field(init=False)
    port_err_rate: np.ndarray = field(init=False)
    dbe: np.ndarray = field(init=False)
    corr_rows: np.ndarray = field(init=False)
    uncorr_rows: np.ndarray = field(init=False)
    remap_fail: np.ndarray = field(init=False)
    gpu_absent: np.ndarray = field(init=False)
    node_down: np.ndarray = field(init=False)
    crashes: list[tuple[int, int]] = field(default_factory=list)
    xids: list[tuple[int, int, int, int]] = field(default_factory=list)
    counter_resets: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Allocate neutral modifiers."""
        t, g, n, r = self.steps, self.n_gpus, self.n_nodes, self.n_racks
        self.util_mult = np.ones((t, g))
        self.drain = np.zeros((t, g), dtype=bool)
        self.power_cap = (
            np.full((t, g), 700.0) if self.tdp is None else np.tile(self.tdp, (t, 1)).astype(float)
        )
        self.r_mult = np.ones((t, g))
        self.fan_mult = np.ones((t, n, FANS_PER_NODE))
        self.fan_boost = np.ones((t, n))
        self.crac_add = np.zeros((t, r))
        self.pdu_volt_add = np.zeros((t, r))
        self.pdu_off = np.zeros((t, r), dtype=bool)
        self.psu_volt_add = np.zeros((t, n))
        self.sbe_rate = np.zeros((t, g))
        self.crc_rate = np.zeros((t, g))
        self.replay_rate = np.zeros((t, g))
        self.port_err_rate = np.zeros((t, r))
        self.dbe = np.zeros((t, g))
        self.corr_rows = np.zeros((t, g))
        self.uncorr_rows = np.zeros((t, g))
        self.remap_fail = np.zeros((t, g))
        self.gpu_absent = np.zeros((t, g), dtype=bool)
        self.node_down = np.zeros((t, n), dtype=bool)


@dataclass(frozen=True)
class FaultWindow:
    """A fault located on the simulator's time grid and GPU/node/rack axes."""

    fault: Fault
    on: int  # first step of the precursor (clipped to the grid)
    fail: int | None  # step of the failure, None when it never fails inside the grid
    repair: int  # first healthy step after the failure (== steps when beyond the grid)
    progress: np.ndarray  # p in [0, 1) for steps on..fail-1 (or to the grid end)
    gpus: np.ndarray  # GPU indices behind the target
    nodes: np.ndarray  # node indices behind the target
    rack: int  # rack index of the target
    rng: np.random.Generator
    racks: tuple[int, ...] = ()  # every rack a shared component serves (empty: just ``rack``)


def apply_fault(w: FaultWindow, fx: Effects, step_min: float) -> None:
    """Write one fault's precursor, failure and repair into the effect arrays."""
    kind = w.fault.kind
    sl = slice(w.on, w.on + len(w.progress))
    p = w.progress
    steps = len(p)
    rng = w.rng
    failed = slice(w.fail, w.repair) if w.fail is not None else slice(0, 0)
    g = int(w.gpus[0])
    if kind == "fan":
        n = int(w.nodes[0])
        k = int(rng.integers(FANS_PER_NODE))
        wobble = 0.06 * p * np.sin(np.arange(steps) * step_min / rng.uniform(3, 9))
        fx.fan_mult[sl, n, k] = np.clip(1.0 - 0.95 * p**1.6 + wobble, 0.03, 1.0)
        # the neighbour on the same fan board follows late in the precursor
        k2 = k + 1 if k + 1 < FANS_PER_NODE else k - 1
        fx.fan_mult[sl, n, k2] = np.clip(1.0 - 0.5 * p**3, 0.3, 1.0)
        fx.fan_boost[sl, n] *= 1.0 + 0.12 * p
        fx.node_down[failed, n] = True
    elif kind == "thermal_interface":
        fx.r_mult[sl, g] *= 1.0 + 0.5 * p**1.3
        fx.r_mult[failed, g] *= 1.5
        _fail_gpu(w, fx, xid=None)
    elif kind == "hbm":
        fx.sbe_rate[sl, g] += 0.02 + rng.uniform(20, 40) * p**3
        rows = int(rng.integers(3, 8))
        fx.corr_rows[sl, g] = np.floor(rows * p**2)
        if w.fail is not None:
            fx.corr_rows[failed, g] = rows
            fx.dbe[failed, g] = int(rng.integers(1, 4))
            fx.uncorr_rows[failed, g] = 1
            fx.remap_fail[w.fail + 2 : w.repair, g] = 1
            hold = max(1, w.repair - w.fail)
            fx.xids.append((w.fail, g, 48, 1))
            fx.xids.append((w.fail + 1, g, 63, 1))
            fx.xids.append((w.fail + 2, g, 64, hold))
            _fail_gpu(w, fx, xid=None)
            fx.counter_resets.append((w.repair, g))
    elif kind == "nvlink":
        fx.crc_rate[sl, g] += 0.05 + rng.uniform(200, 600) * p**3
        stall = rng.random(steps) < 0.1 + 0.5 * p
        fx.util_mult[sl, g] *= 1.0 - stall * 0.2 * p
        _fail_gpu(w, fx, xid=74)
        fx.counter_resets.append((w.repair, g))
    elif kind == "pcie":
        fx.replay_rate[sl, g] += 0.02 + rng.uniform(80, 200) * p**2.5
        stall = rng.random(steps) < 0.1 + 0.3 * p
        fx.util_mult[sl, g] *= 1.0 - stall * 0.12 * p
        _fail_gpu(w, fx, xid=79)
        if w.fail is not None:
            fx.gpu_absent[w.fail + 1 : w.repair, g] = True
        fx.counter_resets.append((w.repair, g))
    elif kind == "pdu":
        r = list(w.racks or (w.rack,))
        dips = (rng.random(steps) < 0.02 + 0.25 * p) * rng.uniform(5, 25, steps) * p
        sag = -6.0 * p - dips
        fx.pdu_volt_add[sl, r] += sag[:, None]
        fx.psu_volt_add[sl][:, w.nodes] += (sag * (12.0 / 230.0) * 1.6)[:, None]
        cap = 700.0 - np.floor(6.0 * p**1.2) * 50.0
        # with per-GPU board power (a scenario's mixed models) the same steps as a share of it
        capped = cap[:, None] if fx.tdp is None else cap[:, None] / 700.0 * fx.tdp[w.gpus][None, :]
        fx.power_cap[sl][:, w.gpus] = np.minimum(fx.power_cap[sl][:, w.gpus], capped)
        fx.pdu_off[failed, r] = True
        fx.node_down[failed, w.nodes[0] : w.nodes[-1] + 1] = True
    elif kind == "cooling":
        r = list(w.racks or (w.rack,))
        wob = 0.4 * np.sin(np.arange(steps) * step_min / 7.0) * p
        fx.crac_add[sl, r] += (14.0 * p**1.4 + wob)[:, None]
        fx.crac_add[failed, r] += 22.0
        fx.node_down[failed, w.nodes[0] : w.nodes[-1] + 1] = True
    elif kind == "switch":
        r = list(w.racks or (w.rack,))
        burst = rng.random(steps) < 0.05 + 0.4 * p
        fx.port_err_rate[sl, r] += (0.3 + rng.uniform(150, 400) * p**3 * (0.3 + burst))[:, None]
        stall = rng.random(steps) < 0.08 + 0.4 * p
        dip = 1.0 - stall * rng.uniform(0.1, 0.45, steps) * p
        lo, hi = int(w.gpus[0]), int(w.gpus[-1]) + 1
        fx.util_mult[sl, lo:hi] *= dip[:, None]
        if w.fail is not None:
            fx.port_err_rate[w.fail, r] += 5000.0
            fx.drain[failed, lo:hi] = True
            for gi in w.gpus:
                fx.crashes.append((w.fail, int(gi)))
    else:  # pragma: no cover - guarded by affected_of
        raise ValueError(f"unknown fault kind {kind!r}")


def _fail_gpu(w: FaultWindow, fx: Effects, xid: int | None) -> None:
    """At failure: the GPU's job dies, the GPU is drained until repaired, optional XID."""
    if w.fail is None:
        return
    g = int(w.gpus[0])
    fx.crashes.append((w.fail, g))
    fx.drain[w.fail : w.repair, g] = True
    if xid is not None:
        fx.xids.append((w.fail, g, xid, max(1, w.repair - w.fail)))


def check_faults(faults: Sequence[Fault], spec: FleetSpec) -> None:
    """Raise ValueError naming the fault when one cannot happen in this fleet."""
    seen: set[str] = set()
    for f in faults:
        if f.id in seen:
            raise ValueError(f"fault id {f.id!r} appears twice")
        seen.add(f.id)
        expected = affected_of(f.kind, f.target, spec)
        if tuple(f.affected) != expected:
            raise ValueError(
                f"fault {f.id}: affected must list the GPUs behind {f.target} "
                f"({len(expected)} GPUs, as make_fault computes them), got {len(f.affected)}"
            )
        if f.onset.tzinfo is None:
            raise ValueError(f"fault {f.id}: onset must be timezone-aware (UTC)")
        if f.failure is not None and f.failure <= f.onset:
            raise ValueError(f"fault {f.id}: failure must come after onset")
