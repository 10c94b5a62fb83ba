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
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import networkx as nx
import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.catalog import COMPONENT_KINDS, HARDWARE_XIDS
from analysis.types import FleetFrames

DEFAULT_WINDOW = timedelta(minutes=30)
DEFAULT_RECENT = timedelta(minutes=10)
DEFAULT_VANISH_AFTER = timedelta(minutes=5)
# Peers within this many watts of a GPU count as "at the same load" for temperature comparisons.
COMPARABLE_WATTS = 150.0

GAUGES: dict[str, str] = {
    "DCGM_FI_DEV_GPU_TEMP": "temp",
    "DCGM_FI_DEV_MEMORY_TEMP": "mem_temp",
    "DCGM_FI_DEV_POWER_USAGE": "power",
    "DCGM_FI_DEV_SM_CLOCK": "sm_clock",
    "DCGM_FI_DEV_MEM_CLOCK": "mem_clock",
    "DCGM_FI_DEV_GPU_UTIL": "util",
    "DCGM_FI_DEV_FB_USED": "fb_used",
}
COUNTERS: dict[str, str] = {
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": "ecc_sbe",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": "ecc_dbe",
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": "remap_corr",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": "remap_uncorr",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": "pcie_replay",
    "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL": "nvlink_crc",
    "DCGM_FI_DEV_THERMAL_VIOLATION": "thermal_viol",
    "DCGM_FI_DEV_POWER_VIOLATION": "power_viol",
}
SUSTAINED: tuple[str, ...] = ("ecc_sbe", "pcie_replay", "nvlink_crc")
REMAP_FAILURE = "DCGM_FI_DEV_ROW_REMAP_FAILURE"
XID = "DCGM_FI_DEV_XID_ERRORS"
# The GPU metrics the features read: the columns of ``FleetFrames.gpu_wide``, in this order.
GPU_FEATURE_METRICS: tuple[str, ...] = (*GAUGES, *COUNTERS, REMAP_FAILURE, XID)

FAN = "ipmi_fan_speed_rpm"
INLET = "ipmi_temperature_celsius"
INLET_SENSOR = "Inlet Temp"
VOLTS = "ipmi_voltage_volts"
NODE_POWER = "ipmi_dcmi_power_consumption_current_watts"
HWMON = "node_hwmon_temp_celsius"

FLAG_COLUMNS: tuple[str, ...] = ("fail_dbe", "fail_remap", "fail_xid_hw", "fail_vanished")
FLAG_SIGNALS: dict[str, str] = {
    "fail_dbe": "ecc_dbe_increase",
    "fail_remap": "row_remap_failure",
    "fail_xid_hw": "hardware_xid",
    "fail_vanished": "series_vanished",
}
# Informational columns that are kept for explanations but not fed to the detectors.
INFO_COLUMNS: tuple[str, ...] = ("xid_app_events", "xid_last", "node", "rack")

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
)

# The per-GPU raw metric levels the plain baseline (no graph) uses.
RAW_LEVEL_COLUMNS: tuple[str, ...] = (
    *(f"{name}" for name in GAUGES.values()),
    *(f"{name}_rate" for name in COUNTERS.values()),
)


def _utc(ts: datetime | pd.Timestamp) -> pd.Timestamp:
    """Return an aware UTC pandas timestamp."""
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def slice_frame(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Return the rows with ``start < ts <= end`` (works on any tidy frame with a ts column)."""
    if frame.empty:
        return frame
    ts = frame["ts"]
    if ts.is_monotonic_increasing:
        lo = int(ts.searchsorted(start, side="right"))
        hi = int(ts.searchsorted(end, side="right"))
        return frame.iloc[lo:hi]
    return frame[(ts > start) & (ts <= end)]


def sort_frames(frames: FleetFrames) -> FleetFrames:
    """Return frames whose tidy tables are sorted by time, so windows slice by binary search."""

    def _sorted(df: pd.DataFrame) -> pd.DataFrame:
        """Sort one frame by ts (stable), unless it already is."""
        if df.empty or df["ts"].is_monotonic_increasing:
            return df
        return df.sort_values("ts", kind="stable").reset_index(drop=True)

    return FleetFrames(
        gpu=_sorted(frames.gpu),
        node=_sorted(frames.node),
        component=_sorted(frames.component),
        up=_sorted(frames.up),
        start=frames.start,
        end=frames.end,
        step=frames.step,
    )


def slice_frames(frames: FleetFrames, start: datetime, end: datetime) -> FleetFrames:
    """Return the frames restricted to ``start < ts <= end`` (start and end set to match)."""
    lo, hi = _utc(start), _utc(end)
    return FleetFrames(
        gpu=slice_frame(frames.gpu, lo, hi),
        node=slice_frame(frames.node, lo, hi),
        component=slice_frame(frames.component, lo, hi),
        up=slice_frame(frames.up, lo, hi),
        start=lo.to_pydatetime(),
        end=hi.to_pydatetime(),
        step=frames.step,
    )


def gpu_keys_of(graph: nx.DiGraph) -> list[str]:
    """Return the GPU keys of the graph, sorted."""
    return sorted(n for n, d in graph.nodes(data=True) if d.get("kind") == "gpu")


def _slope(values: pd.DataFrame, t: np.ndarray, keys: pd.Index, index: pd.Index) -> pd.DataFrame:
    """Least-squares slope (per minute) of every column against ``t``, per GPU, NaN-aware."""
    valid = values.notna()
    tt = pd.DataFrame(
        np.where(valid, t[:, None], np.nan), index=values.index, columns=values.columns
    )
    grp_t = tt.groupby(keys, sort=False)
    mean_t = grp_t.mean()
    mean_v = values.groupby(keys, sort=False).mean()
    mean_tv = (tt * values).groupby(keys, sort=False).mean()
    mean_tt = (tt * tt).groupby(keys, sort=False).mean()
    var_t = mean_tt - mean_t * mean_t
    slope = (mean_tv - mean_t * mean_v) / var_t.where(var_t > 1e-9)
    return slope.reindex(index)


def anscombe(counts: pd.Series | npt.NDArray[np.float64] | float) -> pd.Series:
    """Return ``2 sqrt(count + 3/8)``: Poisson counts on a scale where their spread is about 1.

    A counter's log rate squeezes a climb from a few events to thousands into a few units, so a
    healthy wiggle of two or three events looks as big as a failing link; on this scale a healthy
    Poisson counter moves by about one unit whatever its usual rate, and a climb stands out.
    """
    return pd.Series(2.0 * np.sqrt(np.clip(counts, 0.0, None) + 0.375))


def _gpu_own(
    wide: pd.DataFrame,
    index: pd.Index,
    *,
    at: pd.Timestamp,
    window: timedelta,
    recent: timedelta,
    step: timedelta,
) -> pd.DataFrame:
    """Levels, variability, trends, counter rates, XIDs and data health of each GPU."""
    keys = wide.index.get_level_values("key")
    ts = wide.index.get_level_values("ts")
    t = np.asarray((ts - at) / pd.Timedelta(minutes=1), dtype=np.float64)
    out = pd.DataFrame(index=index)

    gauges = wide[list(GAUGES)].rename(columns=GAUGES)
    is_recent = t > -recent / timedelta(minutes=1)
    level = gauges[is_recent].groupby(keys[is_recent], sort=False).mean().reindex(index)
    for name in GAUGES.values():
        out[name] = level[name]
    std = gauges[["temp", "power", "util"]].groupby(keys, sort=False).std().reindex(index)
    out["temp_std"] = std["temp"]
    out["power_std"] = std["power"]
    out["util_std"] = std["util"]
    slope = _slope(gauges[["temp", "mem_temp"]], t, keys, index)
    out["temp_slope"] = slope["temp"]
    out["mem_temp_slope"] = slope["mem_temp"]

    counters = wide[list(COUNTERS)].rename(columns=COUNTERS)
    diffs = counters.groupby(keys, sort=False).diff().clip(lower=0)
    hours = window / timedelta(hours=1)
    inc = diffs.groupby(keys, sort=False).sum().reindex(index).fillna(0.0)
    for name in COUNTERS.values():
        out[f"{name}_rate"] = np.log1p(inc[name] / hours)
    # Sustained rate: the increase without its largest single step, so a one-off burst (a
    # retrained link) does not count but a steady climb does.
    top = diffs[list(SUSTAINED)].groupby(keys, sort=False).max().reindex(index).fillna(0.0)
    for name in SUSTAINED:
        trimmed = (inc[name] - top[name]).clip(lower=0.0)
        out[f"{name}_sustained"] = np.log1p(trimmed / hours)
        out[f"{name}_excess"] = anscombe(trimmed)
    last_counts = counters.groupby(keys, sort=False).last().reindex(index)
    out["remap_corr_level"] = np.log1p(last_counts["remap_corr"].clip(lower=0))
    out["remap_uncorr_level"] = np.log1p(last_counts["remap_uncorr"].clip(lower=0))

    remap_fail = wide[REMAP_FAILURE].groupby(keys, sort=False).max().reindex(index)
    xid = wide[XID]
    prev = xid.groupby(keys, sort=False).shift(1)
    new = xid.notna() & prev.notna() & (xid != prev) & (xid > 0)
    hw = new & xid.isin(list(HARDWARE_XIDS))
    app = new & ~xid.isin(list(HARDWARE_XIDS))
    out["xid_hw_events"] = hw.groupby(keys, sort=False).sum().reindex(index).fillna(0.0)
    out["xid_app_events"] = app.groupby(keys, sort=False).sum().reindex(index).fillna(0.0)
    out["xid_last"] = xid.groupby(keys, sort=False).last().reindex(index)

    expected = max(window / step, 1.0)
    count = wide["DCGM_FI_DEV_GPU_TEMP"].notna().groupby(keys, sort=False).sum().reindex(index)
    out["gap_frac"] = (1.0 - count.fillna(0.0) / expected).clip(0.0, 1.0)
    last_ts = pd.Series(ts, index=wide.index).groupby(keys, sort=False).max().reindex(index)
    minutes_since = (at - last_ts) / pd.Timedelta(minutes=1)
    out["last_seen_min"] = minutes_since.astype(float).fillna(window / timedelta(minutes=1))

    out["fail_dbe"] = (inc["ecc_dbe"] > 0) | (inc["remap_uncorr"] > 0)
    out["fail_remap"] = remap_fail.fillna(0.0) > 0
    out["fail_xid_hw"] = out["xid_hw_events"] > 0
    return out


def _peer_context(
    wide: pd.DataFrame, index: pd.Index, node_of: pd.Series, rack_of: pd.Series, recent: float
) -> pd.DataFrame:
    """Each GPU against its node's, rack's and fleet's GPUs at the same timestamps and power."""
    keys = wide.index.get_level_values("key")
    ts = wide.index.get_level_values("ts")
    frame = pd.DataFrame(
        {
            "key": keys,
            "ts": ts,
            "node": node_of.reindex(keys).to_numpy(),
            "rack": rack_of.reindex(keys).to_numpy(),
            "temp": wide["DCGM_FI_DEV_GPU_TEMP"].to_numpy(),
            "mem_temp": wide["DCGM_FI_DEV_MEMORY_TEMP"].to_numpy(),
            "power": wide["DCGM_FI_DEV_POWER_USAGE"].to_numpy(),
        }
    )
    # Fleet-wide temperature-per-watt, so "hotter" means hotter at the same power.
    ok = frame["temp"].notna() & frame["power"].notna()
    k = 0.0
    if ok.sum() > 3:
        p = frame.loc[ok, "power"].to_numpy()
        tv = frame.loc[ok, "temp"].to_numpy()
        var_p = float(np.var(p))
        if var_p > 1e-9:
            k = float(np.clip(np.cov(p, tv, bias=True)[0, 1] / var_p, 0.0, 1.0))
    frame["temp_adj"] = frame["temp"] - k * frame["power"]
    frame["mem_adj"] = frame["mem_temp"] - k * frame["power"]
    frame["rack"] = frame["rack"].fillna(frame["node"])
    by_node = frame.groupby(["ts", "node"], sort=False)
    by_rack = frame.groupby(["ts", "rack"], sort=False)
    by_ts = frame.groupby("ts", sort=False)
    med_node = by_node[["temp_adj", "mem_adj", "power"]].transform("median")
    med_rack = by_rack[["temp_adj", "power"]].transform("median")
    med_fleet = by_ts[["temp_adj", "power"]].transform("median")
    power = frame["power"]

    def _comparable(med_power: pd.Series) -> pd.Series:
        """Peers are only comparable at similar power (a busy GPU among idle ones is not)."""
        return (power - med_power).abs() <= COMPARABLE_WATTS

    near_node = _comparable(med_node["power"])
    dev = pd.DataFrame(
        {
            "temp_at_power": frame["temp_adj"],
            "mem_temp_at_power": frame["mem_adj"],
            "temp_vs_node": (frame["temp_adj"] - med_node["temp_adj"]).where(near_node),
            "mem_temp_vs_node": (frame["mem_adj"] - med_node["mem_adj"]).where(near_node),
            "power_vs_node": power - med_node["power"],
            "temp_vs_rack": (frame["temp_adj"] - med_rack["temp_adj"]).where(
                _comparable(med_rack["power"])
            ),
            "temp_vs_fleet": (frame["temp_adj"] - med_fleet["temp_adj"]).where(
                _comparable(med_fleet["power"])
            ),
        }
    )
    dev.index = wide.index
    t = np.asarray((ts - ts.max()) / pd.Timedelta(minutes=1), dtype=np.float64)
    is_recent = t > -recent
    recent_dev = dev[is_recent].groupby(keys[is_recent], sort=False)
    # Mostly incomparable (a job starting or stopping): say nothing rather than something odd.
    enough = recent_dev.count() >= recent_dev.size().to_numpy()[:, None] * 0.5
    out = recent_dev.mean().where(enough).reindex(index)
    slope = _slope(dev[["temp_vs_node", "temp_at_power"]], t, keys, index)
    valid = dev["temp_vs_node"].notna().groupby(keys, sort=False).mean().reindex(index)
    out["temp_vs_node_slope"] = slope["temp_vs_node"].where(valid >= 0.8)
    out["temp_at_power_slope"] = slope["temp_at_power"]
    return out


def _node_context(
    node: pd.DataFrame,
    up: pd.DataFrame,
    *,
    nodes: pd.Index,
    at: pd.Timestamp,
    recent: timedelta,
) -> pd.DataFrame:
    """Per-node fans, inlet air, PSU voltage, node power and scrape health, against the rack."""
    out = pd.DataFrame(index=nodes)
    cut = at - pd.Timedelta(recent)
    if not node.empty:
        fans = node[node["metric"] == FAN]
        rec = fans[fans["ts"] > cut]
        per_fan = rec.groupby(["node", "sensor"], sort=False)["value"].mean()
        fan_min = per_fan.groupby(level="node").min()
        fan_mean = per_fan.groupby(level="node").mean()
        out["fan_min"] = fan_min.reindex(nodes)
        out["fan_mean"] = fan_mean.reindex(nodes)
        out["fan_spread"] = out["fan_min"] / out["fan_mean"].where(out["fan_mean"] > 0) - 1
        fleet_fan = out["fan_min"].median()
        out["fan_min_vs_fleet"] = out["fan_min"] / fleet_fan - 1 if fleet_fan > 0 else np.nan

        inlet = node[(node["metric"] == INLET) & (node["sensor"] == INLET_SENSOR)]
        inlet_rec = inlet[inlet["ts"] > cut].groupby("node", sort=False)["value"].mean()
        out["inlet"] = inlet_rec.reindex(nodes)
        out["inlet_vs_fleet"] = out["inlet"] - out["inlet"].median()

        volts = node[node["metric"] == VOLTS]
        if not volts.empty:
            nominal = volts.groupby("sensor", sort=False)["value"].median()
            rel = volts["value"] / volts["sensor"].map(nominal).replace(0, np.nan) - 1
            v = pd.DataFrame({"node": volts["node"], "ts": volts["ts"], "rel": rel})
            recent_rel = v[v["ts"] > cut].groupby("node", sort=False)["rel"].mean()
            out["volts_dev"] = recent_rel.reindex(nodes)
            out["volts_dip"] = v.groupby("node", sort=False)["rel"].min().reindex(nodes)
        else:
            out["volts_dev"] = np.nan
            out["volts_dip"] = np.nan
        power = node[(node["metric"] == NODE_POWER) & (node["ts"] > cut)]
        out["node_power"] = power.groupby("node", sort=False)["value"].mean().reindex(nodes)
        hw = node[(node["metric"] == HWMON) & (node["ts"] > cut)]
        out["hwmon_temp"] = hw.groupby("node", sort=False)["value"].max().reindex(nodes)
    else:
        for col in (
            "fan_min",
            "fan_mean",
            "fan_spread",
            "fan_min_vs_fleet",
            "inlet",
            "inlet_vs_fleet",
            "volts_dev",
            "volts_dip",
            "node_power",
            "hwmon_temp",
        ):
            out[col] = np.nan
    if not up.empty:
        down = (up["value"] < 0.5).groupby(up["node"], sort=False).mean()
        out["up_down_frac"] = down.reindex(nodes).fillna(0.0)
    else:
        out["up_down_frac"] = 0.0
    return out


def _is_counter(metric: str) -> bool:
    """Guess whether a component metric is a cumulative counter from its name."""
    m = metric.lower()
    return m.endswith(("_total", "_count")) or "error" in m or "drop" in m


def _component_stats(
    component: pd.DataFrame, at: pd.Timestamp, window: timedelta, recent: timedelta
) -> pd.DataFrame:
    """Per component and metric: recent level, window minimum and maximum, counter rate."""
    if component.empty:
        return pd.DataFrame(
            columns=["level", "min", "max", "rate", "sustained", "excess", "counter"]
        )
    cut = at - pd.Timedelta(recent)
    c = component.sort_values(["component", "metric", "ts"], kind="stable")
    grp = c.groupby(["component", "metric"], sort=False)["value"]
    stats = pd.DataFrame(
        {
            "min": grp.min(),
            "max": grp.max(),
            "level": c[c["ts"] > cut].groupby(["component", "metric"], sort=False)["value"].mean(),
        }
    )
    inc = grp.diff().clip(lower=0).groupby([c["component"], c["metric"]], sort=False).sum()
    stats["rate"] = np.log1p(inc.reindex(stats.index).fillna(0.0) / (window / timedelta(hours=1)))
    top = grp.diff().clip(lower=0).groupby([c["component"], c["metric"]], sort=False).max()
    trimmed = (inc - top.reindex(inc.index).fillna(0.0)).clip(lower=0.0)
    stats["sustained"] = np.log1p(
        trimmed.reindex(stats.index).fillna(0.0) / (window / timedelta(hours=1))
    )
    stats["excess"] = anscombe(trimmed.reindex(stats.index).fillna(0.0)).to_numpy()
    stats["counter"] = [_is_counter(str(m)) for m in stats.index.get_level_values("metric")]
    return stats


def _component_context(
    stats: pd.DataFrame, graph: nx.DiGraph, nodes: Sequence[str]
) -> pd.DataFrame:
    """Join each node's upstream components' metrics as ``<kind>.<metric>`` columns."""
    rows: dict[str, dict[str, float]] = {}
    # Columns come from every component of the kind, so all nodes share one column set.
    columns: set[str] = set()
    per_comp: dict[str, dict[str, float]] = {}
    for (cid, metric), rec in stats.iterrows():
        if cid not in graph:
            continue
        kind = str(graph.nodes[cid].get("kind"))
        if kind not in COMPONENT_KINDS:
            continue
        vals = per_comp.setdefault(str(cid), {})
        base = f"{kind}.{metric}"
        if bool(rec["counter"]):
            vals[f"{base}.rate"] = float(rec["rate"])
            vals[f"{base}.sustained"] = float(rec["sustained"])
            vals[f"{base}.excess"] = float(rec["excess"])
        else:
            vals[base] = float(rec["level"])
            vals[f"{base}.min"] = float(rec["min"])
            vals[f"{base}.max"] = float(rec["max"])
    for vals in per_comp.values():
        columns.update(vals)
    for node in nodes:
        acc: dict[str, list[float]] = {}
        if node in graph:
            for pred in graph.predecessors(node):
                for col, value in per_comp.get(str(pred), {}).items():
                    acc.setdefault(col, []).append(value)
        rows[node] = {col: float(np.nanmean(v)) for col, v in acc.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index").reindex(
        index=list(nodes), columns=sorted(columns)
    )
    return frame.astype(float)


def build_features(
    frames: FleetFrames,
    graph: nx.DiGraph,
    at: datetime,
    window: timedelta = DEFAULT_WINDOW,
    *,
    recent: timedelta = DEFAULT_RECENT,
    vanish_after: timedelta = DEFAULT_VANISH_AFTER,
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

    Returns
    -------
    pd.DataFrame
        Index ``<node>/<gpu>`` (sorted), numeric feature columns, ``node`` and ``rack``, and the
        boolean ``fail_*`` flags.
    """
    at_ts = _utc(at)
    start = at_ts - pd.Timedelta(window)
    step = frames.step if frames.step > timedelta(0) else timedelta(minutes=1)
    win = slice_frames(frames, start, at_ts)
    wide = win.gpu_wide(GPU_FEATURE_METRICS)
    seen = wide.index.get_level_values("key").unique()
    index = pd.Index(sorted(set(seen) | set(gpu_keys_of(graph))), name="gpu_key")
    node_of = pd.Series([k.rpartition("/")[0] for k in index], index=index)
    rack_of_node = {
        n: str(d.get("rack") or n)
        for n, d in graph.nodes(data=True)
        if d.get("kind") == "node" and d.get("rack")
    }
    rack_of = node_of.map(lambda n: rack_of_node.get(n, n))

    own = _gpu_own(wide, index, at=at_ts, window=window, recent=recent, step=step)
    peers = _peer_context(wide, index, node_of, rack_of, recent / timedelta(minutes=1))
    nodes = pd.Index(sorted(set(node_of)))
    node_ctx = _node_context(
        win.node,
        win.up,
        nodes=nodes,
        at=at_ts,
        recent=recent,
    )
    comp_stats = _component_stats(win.component, at_ts, window, recent)
    comp_ctx = _component_context(comp_stats, graph, list(nodes))
    node_part = node_ctx.join(comp_ctx).reindex(node_of.to_numpy())
    node_part.index = index

    out = pd.concat([own, peers, node_part], axis=1)
    # Rack- and node-level temperature: the rack's (node's) GPUs against the fleet at equal power,
    # only when most of them are comparable: two hot GPUs among 64 idle ones are not a hot rack.
    out["rack_temp_vs_fleet"] = _group_median(out["temp_vs_fleet"], rack_of)
    out["node_temp_vs_fleet"] = _group_median(out["temp_vs_fleet"], node_of)
    vanished = out["last_seen_min"] >= vanish_after / timedelta(minutes=1)
    out["fail_vanished"] = vanished.to_numpy()
    for col in FLAG_COLUMNS:
        out[col] = out[col].fillna(False).astype(bool)
    out["node"] = node_of
    out["rack"] = rack_of
    return out


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
) -> pd.DataFrame:
    """Featurise many cycles; return rows indexed by (``at``, ``gpu_key``)."""
    ordered = sort_frames(frames)
    parts = []
    for at in times:
        feats = build_features(ordered, graph, at, window)
        feats.index = pd.MultiIndex.from_product([[_utc(at)], feats.index], names=["at", "gpu_key"])
        parts.append(feats)
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts)
