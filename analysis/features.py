"""Per-GPU features over a window, with graph context (node, rack and upstream components). Pure.

One row per GPU (index: ``<node>/<gpu>``), built with vectorised pandas from the tidy frames of
:class:`analysis.types.FleetFrames`. Column families:

- own levels, variability and trends of the DCGM gauges (``temp``, ``power``, ``sm_clock`` ...);
- counter rates per hour, ``log1p``-compressed (ECC SBE/DBE, remapped rows, PCIe replays, NVLink
  CRC, thermal and power violation time), burst-robust ``_sustained`` rates and ``_excess``
  counts on the Anscombe scale (a healthy Poisson counter moves by about one unit);
- XID events in the window, split into hardware codes (``analysis.catalog.HARDWARE_XIDS``) and
  the rest (application and unknown codes);
- data health: share of missing samples, minutes since the last sample;
- peer context: temperature at equal power against the node's, rack's and fleet's GPUs at the same
  timestamps, memory temperature and power against the node's GPUs (only peers within ``COMPARABLE_WATTS``
  count as being at the same load); temperature at power against the GPU's own history;
- workload descriptors (``WORKLOAD_COLUMNS``: power, utilisation, clocks, raw temperatures) stay
  in the table as context; the graph model does not score them;
- node context: fans (min, mean, one fan against the others, against the fleet), inlet air, PSU
  voltage sag and dips, node power, scrape targets down;
- upstream components joined through the graph: ``<kind>.<metric>`` levels, minima and counter
  rates of the PDU, cooling unit and switch the GPU depends on;
- ``fail_*`` flags, the failure-grade signals (DBE increase, row-remap failure, hardware XID,
  vanished series) that scoring turns into a risk floor.

The GPU's own columns (levels to data health, and the flags) are the feature plan's
(:mod:`analysis.feature_plan`): reductions of one metric each, evaluated in memory over the frames
(:mod:`analysis.reduce_frames`) or taken from the source when it computed them in the TSDB
(``FleetFrames.reduced``). The peer, node and component context builders live in
:mod:`analysis.context`, the window utilities in :mod:`analysis.frames`; the names this module
always exported (``GAUGES``, ``COUNTERS`` ... now declared by the plan) are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache

import networkx as nx
import pandas as pd

from analysis.catalog import XID_HARDWARE_COUNT, XID_OTHER_COUNT
from analysis.context import (
    COMPARABLE_WATTS,
    FAN,
    HWMON,
    INLET,
    INLET_SENSOR,
    NODE_POWER,
    PEER_METRICS,
    VOLTS,
    component_context,
    component_stats,
    metric_rows,
    node_context,
    peer_context,
    peer_rows,
)
from analysis.data_health import HEALTH_COLUMNS, data_health
from analysis.feature_plan import (
    COUNTERS,
    GAUGES,
    REMAP_FAILURE,
    SUSTAINED,
    XID,
    FeaturePlan,
    derive,
    grid_time,
)
from analysis.frames import join_lead, slice_frame, slice_frames, sort_frames, to_utc
from analysis.peer_memo import PeerRowsMemo
from analysis.reduce_frames import reduce_frames, reduce_frames_at
from analysis.stats import anscombe
from analysis.thermal import FLEET, LEAD_IN, lag_of
from analysis.types import FleetFrames, Reductions

__all__ = [
    "COMPARABLE_WATTS",
    "COUNTERS",
    "DEFAULT_RECENT",
    "DEFAULT_VANISH_AFTER",
    "DEFAULT_WINDOW",
    "FAN",
    "FLAG_COLUMNS",
    "FLAG_SIGNALS",
    "GAUGES",
    "GPU_FEATURE_METRICS",
    "HWMON",
    "INFO_COLUMNS",
    "INLET",
    "INLET_SENSOR",
    "NODE_POWER",
    "NODE_TEMP",
    "RACK_TEMP",
    "RAW_LEVEL_COLUMNS",
    "REMAP_FAILURE",
    "SUSTAINED",
    "VOLTS",
    "WORKLOAD_COLUMNS",
    "XID",
    "RunPeers",
    "anscombe",
    "build_features",
    "feature_columns",
    "feature_history",
    "flags_of",
    "gpu_keys_of",
    "gpu_models",
    "slice_frame",
    "slice_frames",
    "sort_frames",
]

#: The rack's and the node's GPUs against the fleet at equal power (their median temp_vs_fleet).
RACK_TEMP = "rack_temp_vs_fleet"
NODE_TEMP = "node_temp_vs_fleet"

DEFAULT_WINDOW = timedelta(minutes=30)
DEFAULT_RECENT = timedelta(minutes=10)
DEFAULT_VANISH_AFTER = timedelta(minutes=5)

# The GPU metrics the features read (the plan's own-series metrics; the peer context reads the
# first three of them raw).
GPU_FEATURE_METRICS: tuple[str, ...] = (
    *GAUGES,
    *COUNTERS,
    REMAP_FAILURE,
    XID,
    XID_HARDWARE_COUNT,
    XID_OTHER_COUNT,
)

FLAG_COLUMNS: tuple[str, ...] = ("fail_dbe", "fail_remap", "fail_xid_hw", "fail_vanished")
FLAG_SIGNALS: dict[str, str] = {
    "fail_dbe": "ecc_dbe_increase",
    "fail_remap": "row_remap_failure",
    "fail_xid_hw": "hardware_xid",
    "fail_vanished": "series_vanished",
}
# Informational columns that are kept for explanations but not fed to the detectors.
# Data health is scored against the node (``gap_frac_vs_node``, ``last_seen_vs_node``): a whole
# node's scrape gap is not a GPU's problem (:mod:`analysis.data_health`); the raw values stay.
INFO_COLUMNS: tuple[str, ...] = (
    "xid_app_events",
    "xid_last",
    "node",
    "rack",
    "gap_frac",
    "last_seen_min",
    "up_down_frac",
    "node_silent",
)

# Workload descriptors: what the jobs are doing, not how healthy the hardware is. A job starting or
# ending moves all of them on every GPU it spans (power to idle, clocks down, temperature
# following power), so they stay in the table as context for explanations and for the
# load-adjusted features, but the graph model does not score them; it scores the load-adjusted
# twins (``temp_at_power``, ``mem_temp_at_power``, ``temp_at_power_slope``, peers at comparable
# load) instead.
WORKLOAD_COLUMNS: tuple[str, ...] = (
    "temp",
    "mem_temp",
    "power",
    # the mean power of the recent samples the peer comparisons' levels are taken over (those
    # at the GPU's current load: analysis.context)
    "power_level",
    "sm_clock",
    "mem_clock",
    "util",
    "fb_used",
    "temp_std",
    "power_std",
    "util_std",
    "temp_slope",
    "mem_temp_slope",
    "power_vs_node",
    "node_power",
    "hwmon_temp",
    "pdu.output_watts",
    "pdu.output_watts.max",
    "pdu.output_watts.min",
    # Levels that move with the hall and the load, not with one machine's health: fans speed up
    # and slow down together with the work (and with a fan-profile change), inlet air with the
    # hall's ambient. What is scored instead: one fan against the node's others (``fan_spread``),
    # inlet air against the fleet (``inlet_vs_fleet``) and the cooling unit's own readings.
    "fan_min",
    "fan_mean",
    "fan_min_vs_fleet",
    "inlet",
)

# The per-GPU raw metric levels the plain baseline (no graph) uses.
RAW_LEVEL_COLUMNS: tuple[str, ...] = (
    *(f"{name}" for name in GAUGES.values()),
    *(f"{name}_rate" for name in COUNTERS.values()),
)


def gpu_keys_of(graph: nx.DiGraph) -> list[str]:
    """Return the GPU keys of the graph, sorted."""
    return sorted(n for n, d in graph.nodes(data=True) if d.get("kind") == "gpu")


def gpu_models(graph: nx.DiGraph) -> dict[str, str]:
    """Return node -> GPU model for the graph's nodes that name one (dcgm-exporter's)."""
    return {
        str(n): str(d["model"])
        for n, d in graph.nodes(data=True)
        if d.get("kind") == "node" and d.get("model")
    }


def build_features(
    frames: FleetFrames,
    graph: nx.DiGraph,
    at: datetime,
    window: timedelta = DEFAULT_WINDOW,
    *,
    recent: timedelta = DEFAULT_RECENT,
    vanish_after: timedelta = DEFAULT_VANISH_AFTER,
    temp_per_watt: Mapping[str, float] | None = None,
    peer_memo: PeerRowsMemo | None = None,
) -> pd.DataFrame:
    """Return one feature row per GPU for the window ``(at - window, at]``.

    Parameters
    ----------
    frames : FleetFrames
        Tidy frames covering at least the window (more is fine: it is sliced).
    graph : nx.DiGraph
        The dependency graph (:func:`analysis.graph.build_graph`); every GPU in it gets a row,
        so a GPU whose series vanished is still scored (``fail_vanished``).
    at : datetime
        End of the window (aware UTC); nothing after it is read.
    window : timedelta
        Length of the window.
    recent : timedelta
        Sub-window whose mean is a GPU's "level" (the latest state, less noisy than a point).
    vanish_after : timedelta
        A GPU with no sample in this final stretch of the window counts as vanished.
    temp_per_watt : Mapping[str, float] | None
        Degrees per watt per GPU model, learnt by the fit (:mod:`analysis.thermal`) for
        temperature at equal power; None: estimated from the window.
    peer_memo : PeerRowsMemo | None
        The last window's peer rows (:class:`analysis.peer_memo.PeerRowsMemo`), for a run of
        cycles: the rows of the timestamps it had on the same samples are taken from it.

    Returns
    -------
    pd.DataFrame
        Index ``<node>/<gpu>`` (sorted), numeric feature columns, ``node`` and ``rack``, and the
        boolean ``fail_*`` flags.
    """
    return _features(
        frames,
        graph,
        at,
        window,
        recent=recent,
        vanish_after=vanish_after,
        temp_per_watt=temp_per_watt,
        peer_memo=peer_memo,
    )


def _features(
    frames: FleetFrames,
    graph: nx.DiGraph,
    at: datetime,
    window: timedelta,
    *,
    recent: timedelta = DEFAULT_RECENT,
    vanish_after: timedelta = DEFAULT_VANISH_AFTER,
    peers: pd.DataFrame | None = None,
    peer_devs: pd.DataFrame | None = None,
    node_rows: Mapping[str, pd.DataFrame] | None = None,
    temp_per_watt: Mapping[str, float] | None = None,
    peer_memo: PeerRowsMemo | None = None,
) -> pd.DataFrame:
    """:func:`build_features`; ``peers``: the window's ``gpu_wide(PEER_METRICS)`` if known, and
    ``peer_devs`` its :func:`analysis.context.peer_rows` (with ``peers`` only);
    ``node_rows``: :func:`analysis.context.metric_rows` of ``frames.node`` (sorted by time), cut
    to the window here."""
    at_ts = to_utc(at)
    start = at_ts - pd.Timedelta(window)
    step = frames.step if frames.step > timedelta(0) else timedelta(minutes=1)
    plan = FeaturePlan(window, recent, step)
    # the window's node, component and up rows; its GPU rows only where read below (a cycle
    # with the TSDB's reductions and the peer rows over the lead-in reads none of them, and
    # cutting the start's samples off copies them all: 0.4 GB at 100,000 GPUs)
    win = slice_frames(replace(frames, gpu=frames.gpu.iloc[:0]), start, at_ts)
    window_gpu = cache(lambda: slice_frame(frames.gpu, start, at_ts))
    reduced, reduced_at = _own_reductions(frames.reduced, window_gpu, plan, at_ts)
    if peer_devs is None and lag_of(temp_per_watt) > 0:
        # the thermal lag of the window's first rows reads the samples before it: the peer rows
        # are computed from LEAD_IN earlier on, then cut to the window (a fit's history gives
        # the same rows: analysis.thermal.lagged_power)
        peers, peer_devs = _peer_rows_with_lead(
            frames, graph, start, at_ts, temp_per_watt, memo=peer_memo
        )
    wide = replace(win, gpu=window_gpu()).gpu_wide(PEER_METRICS) if peers is None else peers
    seen = set(wide.index.get_level_values("key").unique()) | set(reduced.index)
    index = pd.Index(sorted(seen | set(gpu_keys_of(graph))), name="gpu_key")
    node_of, rack_of, model_of = _placement(index, graph)

    own = derive(reduced, plan, reduced_at, index)
    peers = peer_context(
        wide,
        index,
        node_of,
        rack_of,
        recent / timedelta(minutes=1),
        model_of=model_of,
        temp_per_watt=temp_per_watt,
        rows=peer_devs,
    )
    nodes = pd.Index(sorted(set(node_of)))
    node_ctx = node_context(
        win.node,
        win.up,
        nodes=nodes,
        at=at_ts,
        recent=recent,
        by_metric=None
        if node_rows is None
        else {m: slice_frame(rows, start, at_ts) for m, rows in node_rows.items()},
    )
    comp_stats = component_stats(win.component, at_ts, window, recent)
    comp_ctx = component_context(comp_stats, graph, list(nodes))
    node_part = node_ctx.join(comp_ctx).reindex(node_of.to_numpy())
    node_part.index = index

    out = pd.concat([own, peers, node_part], axis=1)
    # Rack- and node-level temperature: the rack's (node's) GPUs against the fleet at equal power,
    # only when most of them are comparable: two hot GPUs among 64 idle ones are not a hot rack.
    out[RACK_TEMP] = _group_median(out["temp_vs_fleet"], rack_of)
    out[NODE_TEMP] = _group_median(out["temp_vs_fleet"], node_of)
    health = data_health(out, node_of, win.up, vanish_after=vanish_after)
    for col in HEALTH_COLUMNS:
        out[col] = health[col]
    for col in FLAG_COLUMNS:
        out[col] = out[col].fillna(False).astype(bool)
    out["node"] = node_of
    out["rack"] = rack_of
    return out


def _peer_rows_with_lead(
    frames: FleetFrames,
    graph: nx.DiGraph,
    start: pd.Timestamp,
    at: pd.Timestamp,
    temp_per_watt: Mapping[str, float] | None,
    *,
    memo: PeerRowsMemo | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The window's peer pivot and :func:`analysis.context.peer_rows`, computed over the window
    and the :data:`analysis.thermal.LEAD_IN` before it (``frames.lead`` and ``frames.gpu``);
    with ``memo``, the rows of the timestamps the last window had on the same samples are
    taken from it (:class:`analysis.peer_memo.PeerRowsMemo`: the same bits)."""
    lo = start - pd.Timedelta(LEAD_IN)
    parts = [p for p in (frames.lead, frames.gpu) if p is not None]
    # a cycle's read holds just the window and its lead-in (and one sample at the lead-in's
    # edge): pivoted whole (lead and window without joining them) and the pivot cut (three
    # columns), not the tidy rows (every column)
    outside = sum(int(((p["ts"] <= lo) | (p["ts"] > at)).sum()) for p in parts)
    if outside > sum(len(p) for p in parts) // 10:
        cut = slice_frame(join_lead(frames).gpu, lo, at)
        wide = replace(frames, gpu=cut, lead=None).gpu_wide(PEER_METRICS)
        outside = 0
    else:
        wide = frames.gpu_wide(PEER_METRICS, with_lead=True)
    if outside:
        when = wide.index.get_level_values("ts")
        wide = wide[(when > lo) & (when <= at)]
        wide.index = wide.index.remove_unused_levels()
    devs = _peer_devs(wide, graph, temp_per_watt, start, memo)
    rows, _ = _rows_of(wide, at, at - start)
    if len(devs) != len(rows):
        raise ValueError(f"{len(devs)} peer rows for the window's {len(rows)} samples")
    devs.index = rows.index
    return rows, devs


def _peer_devs(
    wide: pd.DataFrame,
    graph: nx.DiGraph,
    temp_per_watt: Mapping[str, float] | None,
    after: pd.Timestamp | None,
    memo: PeerRowsMemo | None,
) -> pd.DataFrame:
    """:func:`analysis.context.peer_rows` of ``wide``'s rows after ``after`` (None: all), its
    GPUs placed in ``graph``; with ``memo``, ``after`` and the fleet's degrees per watt, the
    rows of the samples the memo's last pivot shared with ``wide`` taken from it
    (:class:`analysis.peer_memo.PeerRowsMemo`: the same bits)."""
    keys = pd.Index(wide.index.get_level_values("key").unique())
    node_of, rack_of, model_of = _placement(keys, graph)

    def compute(part: pd.DataFrame, since: pd.Timestamp | None) -> pd.DataFrame:
        return peer_rows(
            part, node_of, rack_of, model_of=model_of, temp_per_watt=temp_per_watt, after=since
        )

    if memo is not None and after is not None and temp_per_watt and FLEET in temp_per_watt:
        return memo.rows(wide, after, compute, graph=graph, temp_per_watt=temp_per_watt)
    return compute(wide, after)


def _placement(index: pd.Index, graph: nx.DiGraph) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Each GPU key's node, rack (its node where the graph has none) and model (NaN: unknown)."""
    node_of = pd.Series([k.rpartition("/")[0] for k in index], index=index)
    rack_of_node: dict[str, str] = {}
    model_of_node: dict[str, str] = {}
    for n, d in graph.nodes(data=True):  # one pass over the graph (every GPU is a node of it)
        if d.get("kind") != "node":
            continue
        if d.get("rack"):
            rack_of_node[n] = str(d["rack"])
        if d.get("model"):
            model_of_node[n] = str(d["model"])
    rack_of = node_of.map(lambda n: rack_of_node.get(n, n))
    model_of = node_of.map(model_of_node)
    return node_of, rack_of, model_of


def _own_reductions(
    given: Reductions | None,
    window_gpu: Callable[[], pd.DataFrame],
    plan: FeaturePlan,
    at: pd.Timestamp,
) -> tuple[pd.DataFrame, datetime]:
    """The plan's reductions at ``at``: the source's when it computed them, else those of the
    window's GPU rows (``window_gpu()``).

    A source's reductions are on its grid, the step multiple at or before ``at``
    (:func:`analysis.feature_plan.grid_time`); other lengths than the plan's are refused, since
    the frames then lack the metrics to reduce them here.
    """
    if given is None:
        return reduce_frames(window_gpu(), plan, at), at.to_pydatetime()
    lengths = (given.window, given.recent, given.step)
    if lengths != (plan.window, plan.recent, plan.step) or to_utc(given.at) != to_utc(
        grid_time(at, plan.step)
    ):
        raise ValueError(
            f"the source reduced at {given.at} over {given.window} (recent {given.recent}, step "
            f"{given.step}), not at {at} over {plan.window} (recent {plan.recent}, step "
            f"{plan.step}): ask it for the cycle's own plan"
        )
    return given.table, given.at


def _group_median(values: pd.Series, groups: pd.Series, min_share: float = 0.5) -> pd.Series:
    """Each row's group median, NaN where fewer than ``min_share`` of the group have a value."""
    by = values.groupby(groups.to_numpy())
    share = by.transform("count") / by.transform("size")
    return by.transform("median").where(share >= min_share)


def feature_columns(features: pd.DataFrame) -> list[str]:
    """Return the numeric columns a detector may use (no flags, no informational columns)."""
    skip = set(FLAG_COLUMNS) | set(INFO_COLUMNS)
    return [c for c in features.columns if c not in skip]


def flags_of(features: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """Return the failure-grade signal names raised for each GPU that has any."""
    present = [c for c in FLAG_COLUMNS if c in features.columns]
    if not present:
        return {}
    flags = features[present].astype(bool)
    hit = flags.any(axis=1)
    out: dict[str, tuple[str, ...]] = {}
    for key, row in flags[hit].iterrows():
        out[str(key)] = tuple(FLAG_SIGNALS[c] for c in present if bool(row[c]))
    return out


def feature_history(
    frames: FleetFrames,
    graph: nx.DiGraph,
    times: Iterable[datetime],
    window: timedelta = DEFAULT_WINDOW,
    *,
    temp_per_watt: Mapping[str, float] | None = None,
    peer_memo: PeerRowsMemo | None = None,
) -> pd.DataFrame:
    """Featurise many cycles; return rows indexed by (``at``, ``gpu_key``).

    Without the source's reductions the GPUs' own reductions of every cycle are evaluated in one
    pass over the frames (:func:`analysis.reduce_frames.reduce_frames_at`, the same tables as
    each cycle's own): the cycles' windows overlap, and placing the samples is most of the work.
    Each cycle then reads only the peer metrics raw, as a cycle given the source's reductions,
    cut from one pivot of the whole history (:func:`_rows_of`: the rows of the cycle's own), and
    its node context's metrics from one split of the node frame (:func:`metric_rows`).

    ``peer_memo``: the memo of the history featurised before this one (a fit's spans, read one
    after the other: :class:`RunPeers` takes the peer rows of the samples they share from it).
    """
    ordered = sort_frames(frames)
    times = list(times)
    reduced = _reductions_at(ordered, times, window)
    # with its reductions given, a cycle reads only the peer metrics raw (as a reduced cycle),
    # pivoted once for all the cycles
    run = None
    if any(reduced):
        since = None
        if peer_memo is not None:  # the first cycle window's start
            since = min(to_utc(t) for t in times) - pd.Timedelta(window)
        run = RunPeers.of(ordered, graph, temp_per_watt, memo=peer_memo, since=since)
    # the node context's metrics split once, each cycle's window cut from them
    node_rows = run.node_rows if run is not None else metric_rows(ordered.node)
    parts = []
    for at, own in zip(times, reduced, strict=True):
        if own is None or run is None:
            feats = _features(
                ordered, graph, at, window, node_rows=node_rows, temp_per_watt=temp_per_watt
            )
        else:
            feats = run.features(replace(ordered, reduced=own), graph, at, window)
        feats.index = pd.MultiIndex.from_product(
            [[to_utc(at)], feats.index], names=["at", "gpu_key"]
        )
        parts.append(feats)
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts)


@dataclass(frozen=True)
class RunPeers:
    """What the cycles of a run share, computed once from the frames that hold them all: the
    peer metrics' pivot, each sample against its peers, and the node frame split by metric.

    A fit's history (:func:`feature_history`) and a one-shot scan's span of cycles
    (:class:`analysis.feature_memo.SpanFeatures`) cut each cycle's rows from them: the rows of
    the cycle's own (every peer comparison is between samples of one timestamp, and the
    thermal lag reads :data:`analysis.thermal.LEAD_IN` before a row, which the run holds from
    its lead on).
    """

    wide: pd.DataFrame
    """``gpu_wide(PEER_METRICS)`` of the run, from its lead on."""
    devs: pd.DataFrame | None
    """:func:`analysis.context.peer_rows` of ``wide``; None unless the degrees per watt are the
    fit's, the fleet's included (else a window's own estimate stands in: computed per cycle)."""
    node_rows: Mapping[str, pd.DataFrame]
    """:func:`analysis.context.metric_rows` of the run's node frame."""
    temp_per_watt: Mapping[str, float] | None

    @classmethod
    def of(
        cls,
        frames: FleetFrames,
        graph: nx.DiGraph,
        temp_per_watt: Mapping[str, float] | None,
        *,
        memo: PeerRowsMemo | None = None,
        since: pd.Timestamp | None = None,
    ) -> RunPeers:
        """Pivot and compare the run's peer metrics once. ``frames`` in any order: the pivot
        sorts itself, and a window of the node frame's split has the rows of the window's own
        node frame in the same order (binary search when sorted by time, as a fit's history is).

        ``memo`` with ``since``: only the rows after ``since`` (the first cycle window's start)
        are compared, those of the samples the memo's last run shared with this one taken from
        it (:class:`analysis.peer_memo.PeerRowsMemo`: the same bits), and the run keeps only
        those rows of the pivot."""
        wide = frames.gpu_wide(PEER_METRICS, with_lead=True)
        devs = None
        if temp_per_watt and FLEET in temp_per_watt:
            after = since if memo is not None else None
            devs = _peer_devs(wide, graph, temp_per_watt, after, memo)
            if after is not None:
                wide = wide[wide.index.get_level_values("ts") > after]
                if len(devs) != len(wide):
                    raise ValueError(f"{len(devs)} peer rows for the run's {len(wide)} samples")
                devs.index = wide.index
        return cls(wide, devs, metric_rows(frames.node), temp_per_watt)

    def features(
        self, frames: FleetFrames, graph: nx.DiGraph, at: datetime, window: timedelta
    ) -> pd.DataFrame:
        """:func:`build_features` of the cycle ending at ``at`` (``frames``: its own, or the
        run's, with the cycle's reductions), its peer rows cut from the run's."""
        peers, peer_devs = _rows_of(self.wide, at, window, also=self.devs)
        return _features(
            frames,
            graph,
            at,
            window,
            peers=peers,
            peer_devs=peer_devs,
            node_rows=self.node_rows,
            temp_per_watt=self.temp_per_watt,
        )


def _reductions_at(
    frames: FleetFrames, times: list[datetime], window: timedelta
) -> list[Reductions | None]:
    """Each cycle's own reductions, the tables :func:`build_features` would evaluate itself;
    None where it evaluates them (the source's given, a time off the step grid, a window that
    is not whole steps).

    A history the source reduced (``FleetFrames.fit_reduced``: its ``gpu`` frame holds only
    the peer metrics) gives each cycle's tables; it must hold every one of ``times``.
    """
    if frames.fit_reduced is not None:
        given = {to_utc(r.at): r for r in frames.fit_reduced}
        missing = [t for t in times if to_utc(t) not in given]
        if missing:
            raise ValueError(
                f"the history's reductions lack {len(missing)} of the fit's {len(times)} cycle "
                f"ends (first {missing[0].isoformat()}): reduce at Scorer.history_times"
            )
        return [given[to_utc(t)] for t in times]
    step = frames.step if frames.step > timedelta(0) else timedelta(minutes=1)
    if frames.reduced is not None or window % step:
        return [None] * len(times)
    plan = FeaturePlan(window, DEFAULT_RECENT, step)
    stamps = [to_utc(at) for at in times]
    mine = [i for i, t in enumerate(stamps) if to_utc(grid_time(t, step)) == t]
    tables = reduce_frames_at(frames.gpu, plan, [stamps[i].to_pydatetime() for i in mine])
    out: list[Reductions | None] = [None] * len(times)
    for i, table in zip(mine, tables, strict=True):
        at = stamps[i].to_pydatetime()
        out[i] = Reductions(at=at, window=window, recent=DEFAULT_RECENT, step=step, table=table)
    return out


def _rows_of(
    wide: pd.DataFrame, at: datetime, window: timedelta, *, also: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The rows of ``gpu_wide`` in the window ``(at - window, at]``: the window's own pivot (the
    same rows in the same order, the unused index levels dropped as it has none); and the same
    rows of ``also``, a frame on ``wide``'s index (None: none), cut by the same mask."""
    end = to_utc(at)
    ts = wide.index.get_level_values("ts")
    inside = (ts > end - pd.Timedelta(window)) & (ts <= end)
    rows = wide[inside]
    rows.index = rows.index.remove_unused_levels()
    if also is None:
        return rows, None
    cut = also[inside]
    cut.index = rows.index
    return rows, cut
