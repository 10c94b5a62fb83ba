"""A simulated fleet's history on its time grid, with ground-truth faults, queried like Prometheus.

:class:`FleetHistory` places the faults on the grid, has :mod:`storage.simulator.physics`
generate the whole history once, at construction, and ``fetch`` slices it like a Prometheus
range query into tidy frames (it implements ``storage.source.MetricsSource``). How the history
is exposed to scrapers and promtool lives elsewhere (:mod:`storage.simulator.exposition`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from analysis.catalog import HARDWARE_XIDS, XID_HARDWARE_COUNT, XID_OTHER_COUNT
from analysis.feature_plan import FeaturePlan
from analysis.types import (
    COMPONENT_COLUMNS,
    GPU_COLUMNS,
    NODE_COLUMNS,
    UP_COLUMNS,
    BenignEvent,
    Fault,
    FleetFrames,
    Reductions,
    Topology,
)
from storage.simulator.faults import (
    DEFAULT_FAULT_RATE,
    REPAIR_HOURS,
    FaultWindow,
    check_faults,
    draw_schedule,
    fault_rng,
)
from storage.simulator.layout import (
    COMPONENT_SERIES,
    GPU_METRICS,
    NODE_SERIES,
    XID_COUNT_WINDOW,
    component_ids,
)
from storage.simulator.physics import Readings, generate_readings
from storage.simulator.spec import UP_JOBS, FleetSpec
from storage.simulator.variation import Variation
from storage.source import MetricsSourceError, reduce_fetched, restrict


def _ns(ts: datetime) -> int:
    """Return an aware datetime as integer nanoseconds since the epoch."""
    if ts.tzinfo is None:
        raise MetricsSourceError(f"time {ts!r} has no timezone: pass an aware UTC datetime")
    return int(pd.Timestamp(ts).value)


class FleetHistory:
    """A simulated GPU fleet's history with ground-truth faults; implements ``MetricsSource``."""

    def __init__(
        self,
        spec: FleetSpec | None = None,
        *,
        start: datetime,
        duration: timedelta,
        step: timedelta = timedelta(minutes=1),
        seed: int = 0,
        faults: Sequence[Fault] | None = None,
        fault_rate: float = DEFAULT_FAULT_RATE,
        healthy: bool = False,
        warmup: timedelta | None = None,
        variation: Variation | None = None,
    ) -> None:
        """Generate the history of ``spec`` over [start, start + duration) at ``step``.

        ``faults=None`` draws a random schedule (``fault_rate`` faults per 100 GPU-days, none
        in the first ``warmup``, default min(24 h, duration / 3)); ``healthy=True`` means no
        faults at all; an explicit list injects exactly those faults. ``variation`` (a drawn scenario's
        workload, GPU models, fault shapes, benign events and sampling trouble) is None for the
        plain fleet.
        """
        self.variation = variation
        self.benign: tuple[BenignEvent, ...] = variation.benign if variation is not None else ()
        self.spec = spec or FleetSpec()
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        if step <= timedelta(0) or step.total_seconds() != int(step.total_seconds()):
            raise ValueError(f"step must be a positive whole number of seconds, got {step}")
        if duration < step:
            raise ValueError(f"duration ({duration}) must be at least one step ({step})")
        self.start = pd.Timestamp(start).tz_convert("UTC").floor("s").to_pydatetime()
        self.step = step
        self.seed = int(seed)
        self.steps = int(duration / step)
        self.end = self.start + self.steps * step
        self.topology: Topology = self.spec.topology()
        if healthy:
            chosen: tuple[Fault, ...] = ()
        elif faults is None:
            wu = warmup if warmup is not None else min(timedelta(hours=24), duration / 3)
            chosen = draw_schedule(
                self.spec,
                start=self.start,
                end=self.end,
                warmup=wu,
                seed=self.seed,
                fault_rate=fault_rate,
            )
        else:
            chosen = tuple(faults)
            check_faults(chosen, self.spec)
        self.faults: tuple[Fault, ...] = chosen
        self.repairs: dict[str, datetime] = {}
        self._t0_ns = _ns(self.start)
        self._step_ns = int(step.total_seconds()) * 1_000_000_000
        self.readings: Readings = generate_readings(
            self.spec,
            self._windows(),
            seed=self.seed,
            t0_ns=self._t0_ns,
            steps=self.steps,
            step=step,
            variation=variation,
        )
        self.component_ids: list[list[str]] = component_ids(self.spec)
        self._index_labels()

    # ------------------------------------------------------------------ public API

    @property
    def times(self) -> pd.DatetimeIndex:
        """Return the simulator's sample times (UTC)."""
        return pd.to_datetime(self._t0_ns + np.arange(self.steps) * self._step_ns, utc=True)

    def index_at(self, ts: datetime) -> int:
        """Return the grid index of the latest sample at or before ``ts`` (may be out of range)."""
        return (_ns(ts) - self._t0_ns) // self._step_ns

    def fetch(
        self,
        start: datetime,
        end: datetime,
        step: timedelta,
        *,
        gpu_metrics: Sequence[str] | None = None,
        nodes: Collection[str] | None = None,
    ) -> FleetFrames:
        """Return the fleet's frames at start, start+step, ... <= end, like a range query.

        Each query time takes the latest simulated sample at or before it. Absent samples
        (scrape gaps, a node that is down, a GPU that fell off the bus) are absent rows.
        ``gpu_metrics`` and ``nodes`` restrict it as ``MetricsSource.fetch`` says.
        """
        s_ns, e_ns = _ns(start), _ns(end)
        step_ns = int(step.total_seconds() * 1e9)
        if step_ns <= 0:
            raise MetricsSourceError(f"step must be positive, got {step}")
        if e_ns < s_ns:
            raise MetricsSourceError(f"end ({end}) is before start ({start})")
        if (e_ns - s_ns) // step_ns > 1_000_000:
            raise MetricsSourceError("too many points in one query: raise the step")
        q = np.arange(s_ns, e_ns + 1, step_ns, dtype=np.int64)
        idx = (q - self._t0_ns) // self._step_ns
        ok = (q >= self._t0_ns) & (idx < self.steps)
        q, idx = q[ok], idx[ok]
        frames = FleetFrames(
            gpu=self._gpu_frame(q, idx),
            node=self._node_frame(q, idx),
            component=self._component_frame(q, idx),
            up=self._up_frame(q, idx),
            start=start,
            end=end,
            step=step,
        )
        return restrict(frames, gpu_metrics=gpu_metrics, nodes=nodes)

    def reduce(self, plan: FeaturePlan, at: datetime) -> Reductions:
        """The plan's reductions at the grid time at or before ``at``, evaluated in memory."""
        return reduce_fetched(self, plan, at)

    def gpu_models(self, at: datetime, window: timedelta) -> dict[str, str]:
        """Each node's GPU model (dcgm-exporter's ``modelName``, as its exposition labels it)."""
        del at, window  # a simulated node keeps its model for the whole history
        return {self.spec.node_name(n): self.spec.model_name(n) for n in range(self.spec.n_nodes)}

    def cordoned(self, at: datetime) -> frozenset[str]:
        """Nodes under a benign ``drain_reboot`` at ``at`` (cordoned from its start to its end)."""
        return frozenset(
            ev.target for ev in self.benign if ev.kind == "drain_reboot" and ev.start <= at < ev.end
        )

    # ------------------------------------------------------------------ frames

    def _gpu_frame(self, q: np.ndarray, idx: np.ndarray) -> pd.DataFrame:
        """Tidy GPU frame for query times ``q`` mapped to grid indices ``idx``."""
        if len(idx) == 0:
            return FleetFrames.empty_frame(GPU_COLUMNS)
        sub = self.readings.gpu[:, idx, :]
        mask = ~np.isnan(sub)
        mi, ki, gi = np.nonzero(mask)
        frame = pd.DataFrame(
            {
                "ts": pd.to_datetime(q[ki], utc=True),
                "node": self._gpu_node_arr[gi],
                "gpu": self._gpu_idx_arr[gi],
                "metric": self._gpu_metric_arr[mi],
                "value": sub[mask],
            }
        )
        counts = self._xid_class_frame(q, idx)
        return frame if counts is None else pd.concat([frame, counts], ignore_index=True)

    def _xid_class_frame(self, q: np.ndarray, idx: np.ndarray) -> pd.DataFrame | None:
        """The reader's per-class sums of DCGM_EXP_XID_ERRORS_COUNT (XIDs in its 5-min window).

        What ``sum without (xid) (DCGM_EXP_XID_ERRORS_COUNT{xid=~<class>})`` returns from the
        exposition (``exposition._xid_count_family``): one series per GPU and class, from the
        first XID of that class on.
        """
        if not self.readings.xid_events:
            return None
        window = max(1, int(XID_COUNT_WINDOW / self.step))
        sums: dict[tuple[str, int], np.ndarray] = {}
        first: dict[tuple[str, int], int] = {}
        for t, g, code in self.readings.xid_events:
            name = XID_HARDWARE_COUNT if code in HARDWARE_XIDS else XID_OTHER_COUNT
            arr = sums.setdefault((name, g), np.zeros(self.steps))
            arr[t : t + window] += 1.0
            first[(name, g)] = min(first.get((name, g), t), t)
        absent = np.isnan(self.readings.gpu[0])
        parts = []
        for (name, g), arr in sorted(sums.items()):
            arr[: first[(name, g)]] = np.nan  # the exporter shows a code from its first XID on
            values = np.where(absent[:, g], np.nan, arr)[idx]
            keep = ~np.isnan(values)
            parts.append(
                pd.DataFrame(
                    {
                        "ts": pd.to_datetime(q[keep], utc=True),
                        "node": self._gpu_node_arr[g],
                        "gpu": self._gpu_idx_arr[g],
                        "metric": name,
                        "value": values[keep],
                    }
                )
            )
        return pd.concat(parts, ignore_index=True)

    def _node_frame(self, q: np.ndarray, idx: np.ndarray) -> pd.DataFrame:
        """Tidy node frame (metric = Prometheus name, sensor = its ``name`` label)."""
        if len(idx) == 0:
            return FleetFrames.empty_frame(NODE_COLUMNS)
        sub = self.readings.node[:, idx, :]
        mask = ~np.isnan(sub)
        si, ki, ni = np.nonzero(mask)
        return pd.DataFrame(
            {
                "ts": pd.to_datetime(q[ki], utc=True),
                "node": self._node_name_arr[ni],
                "metric": self._node_metric_arr[si],
                "sensor": self._node_sensor_arr[si],
                "value": sub[mask],
            }
        )

    def _component_frame(self, q: np.ndarray, idx: np.ndarray) -> pd.DataFrame:
        """Tidy component frame (metric = the key in topology's components[].metrics)."""
        if len(idx) == 0:
            return FleetFrames.empty_frame(COMPONENT_COLUMNS)
        sub = self.readings.component[:, idx, :]
        mask = ~np.isnan(sub)
        ci, ki, ri = np.nonzero(mask)
        return pd.DataFrame(
            {
                "ts": pd.to_datetime(q[ki], utc=True),
                "component": self._comp_id_arr[ci, ri],
                "metric": self._comp_key_arr[ci],
                "value": sub[mask],
            }
        )

    def _up_frame(self, q: np.ndarray, idx: np.ndarray) -> pd.DataFrame:
        """Tidy ``up`` frame: one row per target (node x job) and time, value 1 or 0."""
        if len(idx) == 0:
            return FleetFrames.empty_frame(UP_COLUMNS)
        sub = self.readings.up[:, idx, :]
        ji, ki, ni = np.indices(sub.shape).reshape(3, -1)
        return pd.DataFrame(
            {
                "ts": pd.to_datetime(q[ki], utc=True),
                "node": self._node_name_arr[ni],
                "job": self._job_arr[ji],
                "value": sub.reshape(-1),
            }
        )

    # ------------------------------------------------------------------ grid

    def _windows(self) -> list[FaultWindow]:
        """Locate every fault on the grid, with its progress ramp and repair time."""
        spec = self.spec
        index = {key: i for i, key in enumerate(spec.gpu_keys)}
        node_index = {name: i for i, name in enumerate(spec.node_names)}
        out = []
        for f in self.faults:
            frng = fault_rng(self.seed, f.id)
            repair_after = timedelta(hours=float(frng.uniform(*REPAIR_HOURS)))
            on_i = max(0, self.index_at(f.onset))
            if f.failure is not None:
                fail_i = self.index_at(f.failure)
                span = max(1, fail_i - self.index_at(f.onset))
                repair_i = self.index_at(f.failure + repair_after)
                self.repairs[f.id] = f.failure + repair_after
            else:
                fail_i = self.steps
                span = max(1, int(timedelta(hours=8) / self.step))
                repair_i = self.steps
            if on_i >= self.steps or fail_i < 0:
                continue
            lo = self.index_at(f.onset)
            ramp_end = min(fail_i, self.steps)
            progress = (np.arange(on_i, ramp_end) - lo) / span
            gpus = np.array([index[k] for k in f.affected if k in index], dtype=int)
            node_ids = sorted({node_index[k.rpartition("/")[0]] for k in f.affected})
            racks = spec.component_racks(f.target)
            rack = racks[0] if racks else spec.rack_of_node(node_ids[0])
            progress = np.clip(progress, 0.0, 0.999)
            if self.variation is not None:
                progress = self.variation.shape_progress(f.id, progress)
            out.append(
                FaultWindow(
                    fault=f,
                    on=on_i,
                    fail=fail_i if (f.failure is not None and fail_i < self.steps) else None,
                    repair=min(max(repair_i, fail_i + 1), self.steps),
                    progress=progress,
                    gpus=gpus,
                    nodes=np.array(node_ids, dtype=int),
                    rack=rack,
                    rng=frng,
                    racks=racks if len(racks) > 1 else (),
                )
            )
        return out

    def _index_labels(self) -> None:
        """Precompute the label arrays fetch() gathers from."""
        spec = self.spec
        nodes = np.array(spec.node_names, dtype=object)
        self._gpu_node_arr = np.repeat(nodes, spec.gpus_per_node)
        self._gpu_idx_arr = np.array(
            [str(g) for _ in range(spec.n_nodes) for g in range(spec.gpus_per_node)],
            dtype=object,
        )
        self._gpu_metric_arr = np.array(GPU_METRICS, dtype=object)
        self._node_name_arr = nodes
        self._node_metric_arr = np.array([s[0] for s in NODE_SERIES], dtype=object)
        self._node_sensor_arr = np.array([s[1] for s in NODE_SERIES], dtype=object)
        self._comp_id_arr = np.array(self.component_ids, dtype=object)
        self._comp_key_arr = np.array([c[0] for c in COMPONENT_SERIES], dtype=object)
        self._job_arr = np.array(UP_JOBS, dtype=object)
