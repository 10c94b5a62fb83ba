"""Graph context of each GPU: its peers, its node, and the upstream components it depends on. Pure.

- peer context: temperature at equal power against the node's, rack's and fleet's GPUs at the same
  timestamps, memory temperature and power against the node's GPUs (only peers within
  ``COMPARABLE_WATTS`` count as being at the same load), temperature at power over time;
- node context: fans, inlet air, PSU voltage sag and dips, node power, scrape targets down;
- component context: ``<kind>.<metric>`` levels, minima, maxima and counter rates of the PDU,
  cooling unit and switch a node depends on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from types import MappingProxyType

import networkx as nx
import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.catalog import COMPONENT_KINDS
from analysis.stats import anscombe, group_slope
from analysis.thermal import lag_of, lagged_power, temp_per_watt_of

# Peers within this many watts of a GPU, and within this factor of its power, count as "at the
# same load" for temperature comparisons (a GPU dipping to 170 W between a job's steps is still
# hot from 340 W: it is not at the load of idle peers at 50 W).
COMPARABLE_WATTS = 150.0
COMPARABLE_RATIO = 2.0
#: A slope is taken only from a GPU with samples at this share of the window's timestamps.
MIN_COVER = 0.8

FAN = "ipmi_fan_speed_rpm"
INLET = "ipmi_temperature_celsius"
INLET_SENSOR = "Inlet Temp"
VOLTS = "ipmi_voltage_volts"
NODE_POWER = "ipmi_dcmi_power_consumption_current_watts"
HWMON = "node_hwmon_temp_celsius"

#: The GPU metrics the peer context compares at equal timestamps: the raw series a cycle still
#: needs when the TSDB computes the GPUs' own reductions (``analysis.feature_plan``).
PEER_METRICS: tuple[str, ...] = (
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_MEMORY_TEMP",
    "DCGM_FI_DEV_POWER_USAGE",
)


def peer_rows(
    wide: pd.DataFrame,
    node_of: pd.Series,
    rack_of: pd.Series,
    *,
    model_of: pd.Series | None = None,
    temp_per_watt: Mapping[str, float] | None = None,
    after: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Each sample against its node's, rack's and fleet's GPUs at the same timestamp and power.

    One row per row of ``wide`` (same index): the GPU's power, its temperatures at equal power
    (``temp_at_power``, ``mem_temp_at_power``) and their deviations from its comparable peers.
    Each sample is compared only with the samples of its own timestamp, so with ``temp_per_watt``
    given the rows do not depend on the window: a fit's cycles compute them once for the whole
    history and cut each window from them. Without it, the degrees per watt are ``wide``'s own.
    With a thermal lag among them (``analysis.thermal.LAG``) temperature is compared at each
    GPU's lagged power, which reads the samples of up to ``analysis.thermal.LEAD_IN`` before a
    row: ``wide`` then starts that much before the first row wanted. ``wide`` is sorted by
    (key, ts), as ``FleetFrames.gpu_wide`` gives it.
    ``node_of``, ``rack_of``, ``model_of``: per GPU key, for every key of ``wide`` (see
    :func:`peer_context`). ``after``: only the rows after it are wanted (the rows before it are
    read by the thermal lag only): one row per row of ``wide`` with a later timestamp, the same
    bits as those rows of the whole (every comparison is within one timestamp).
    """
    keys = wide.index.get_level_values("key")
    ts = wide.index.get_level_values("ts")
    # per-GPU values spread to the rows through the index's key codes (one lookup per GPU, not
    # one hash per row: 0.6 s a cycle at 100,000 GPUs for the model names alone)
    level = wide.index.names.index("key")
    gpus, code = wide.index.levels[level], wide.index.codes[level]
    models = None if model_of is None else model_of.reindex(gpus).fillna("").astype(str)
    # the groups as integer codes per GPU (a GPU without a rack: its node's name), spread to the
    # rows: grouping by them numbers the groups as grouping by the names would, without hashing
    # a name per row
    node_names = node_of.reindex(gpus)
    rack_names = rack_of.reindex(gpus).fillna(node_names)
    frame = pd.DataFrame(
        {
            "key": keys,
            "ts": ts,
            "node": pd.factorize(node_names)[0][code],
            "rack": pd.factorize(rack_names)[0][code],
            "model": 0 if models is None else pd.factorize(models)[0][code],
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
    k_row: float | npt.NDArray[np.float64] = k
    if temp_per_watt:  # learnt by the fit, per GPU model (analysis.thermal); else this window's
        per_gpu = pd.Series("", index=gpus) if models is None else models
        k_row = temp_per_watt_of(temp_per_watt, per_gpu, k)[code]
    # Temperature follows power with the fit's thermal lag: compared at the power the GPU has
    # been drawing (its lagged power), a GPU whose job just started is still at its idle load
    # (analysis.thermal). The rows then depend on the samples of the lag's span before them.
    raw_power = frame["power"].to_numpy(dtype=np.float64)
    lag = lag_of(temp_per_watt)
    if lag > 0:
        frame["power"] = lagged_power(raw_power, np.asarray(code), np.asarray(ts.asi8), lag)
    frame["temp_adj"] = frame["temp"] - k_row * frame["power"]
    frame["mem_adj"] = frame["mem_temp"] - k_row * frame["power"]
    index = wide.index
    if after is not None:  # the lag has read the rows before: only the later ones are compared
        later = np.asarray(ts > after)
        frame, raw_power, index = (
            frame[later].reset_index(drop=True),
            raw_power[later],
            index[later],
        )
    # Peers are the other GPUs of the group drawing power within COMPARABLE_WATTS of this GPU's
    # at the same timestamp: the median of a half-busy node is neither a busy nor an idle GPU,
    # so a GPU is compared with the mean of its comparable peers only (none: no comparison).
    cols = ["temp_adj", "mem_adj"]

    def _vs_peers(*group: str) -> pd.DataFrame:
        return _peer_deviation(frame, ["ts", *group], cols, COMPARABLE_WATTS)

    node_dev = _vs_peers("node")
    rack_dev = _vs_peers("rack", "model")
    fleet_dev = _vs_peers("model")
    frame["power"] = raw_power  # what the GPU draws now, for the comparisons of power itself
    med_node_power = frame.groupby(["ts", "node"], sort=False)["power"].transform("median")
    dev = pd.DataFrame(
        {
            "power": frame["power"],
            "temp_at_power": frame["temp_adj"],
            "mem_temp_at_power": frame["mem_adj"],
            "temp_vs_node": node_dev["temp_adj"],
            "mem_temp_vs_node": node_dev["mem_adj"],
            "power_vs_node": frame["power"] - med_node_power,
            "temp_vs_rack": rack_dev["temp_adj"],
            "temp_vs_fleet": fleet_dev["temp_adj"],
        }
    )
    dev.index = index
    return dev


def peer_context(
    wide: pd.DataFrame,
    index: pd.Index,
    node_of: pd.Series,
    rack_of: pd.Series,
    recent: float,
    *,
    model_of: pd.Series | None = None,
    temp_per_watt: Mapping[str, float] | None = None,
    rows: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Each GPU against its node's, rack's and fleet's GPUs at the same timestamps and power.

    ``model_of``: each GPU's model where known. A rack's or the fleet's GPUs of another model are
    no peers: at the same watts an air-cooled 350-W card runs at its limit, 25 °C hotter than a
    700-W module at half load (GPUs of unknown model are compared with each other).
    ``temp_per_watt``: the degrees per watt the fit learnt per model
    (:func:`analysis.thermal.fit_temp_per_watt`); None or empty: estimated from this window.
    ``rows``: :func:`peer_rows` of ``wide`` when known (cut from a longer history's).
    """
    if rows is None:
        rows = peer_rows(wide, node_of, rack_of, model_of=model_of, temp_per_watt=temp_per_watt)
    ts = wide.index.get_level_values("ts")
    level = wide.index.names.index("key")
    gpus, code = wide.index.levels[level], wide.index.codes[level]
    dev = rows.drop(columns="power")
    t = np.asarray((ts - ts.max()) / pd.Timedelta(minutes=1), dtype=np.float64)
    is_recent = t > -recent
    # The level is the mean over the recent samples at the GPU's current load (within
    # COMPARABLE_WATTS of its last power): a job that started or stopped inside the window would
    # otherwise mix a busy and an idle offset from the peers into a level the GPU never had.
    power_now = rows["power"].to_numpy(dtype=np.float64)
    # grouped by the index's key codes (the same rows as by the keys, not hashed per row)
    code = np.asarray(code)
    last = pd.Series(power_now[is_recent]).groupby(code[is_recent], sort=False).last()
    latest = last.reindex(np.arange(len(gpus))).to_numpy(dtype=np.float64)[code]
    with np.errstate(invalid="ignore"):
        lo, hi = comparable_band(latest, COMPARABLE_WATTS)
        at_load = ~np.isfinite(latest) | ((power_now >= lo) & (power_now <= hi))
    now = is_recent & at_load
    cols_dev = list(dev.columns)
    recent_now = dev[now].assign(power_level=power_now[now]).groupby(code[now], sort=False)
    means, counts = recent_now.mean(), recent_now.count()
    means.index = counts.index = gpus[means.index.to_numpy()]
    # Mostly incomparable (a job starting or stopping): say nothing rather than something odd.
    recent_size = pd.Series(np.bincount(code[is_recent], minlength=len(gpus)), index=gpus)
    enough = counts[cols_dev] >= recent_size.reindex(counts.index).to_numpy()[:, None] * 0.5
    out = means[cols_dev].where(enough)
    out["power_level"] = means["power_level"]
    out = out.reindex(index)
    # A job starting or ending inside the window moves a GPU's offset from its peers (each GPU
    # idles and runs at its own temperature): slopes are taken within the busy and the idle
    # samples of a GPU whose power swung by more than COMPARABLE_WATTS, not across the step.
    power = pd.Series(power_now)
    by_key = power.groupby(code, sort=False)
    low, high = by_key.transform("min"), by_key.transform("max")
    busy = (high - low > COMPARABLE_WATTS) & (power >= (low + high) / 2)
    slope = group_slope(
        dev[["temp_vs_node", "temp_at_power"]],
        t,
        code,
        pd.RangeIndex(len(gpus)),
        regime=busy.to_numpy(),
    )
    slope = slope.set_axis(gpus).reindex(index)
    # A slope needs most of the window: a node back from a scrape gap or a reboot has a few
    # samples left, a few minutes apart, whose slope is several times noisier than a whole
    # window's (and than the healthy spread it is judged by). Coverage counts the window's
    # timestamps (the best-covered GPU's rows), not only the rows this GPU still has.
    full = max(1, int(np.bincount(code).max())) if len(code) else 1
    cover = dev[["temp_vs_node", "temp_at_power"]].notna().groupby(code, sort=False).sum() / full
    cover.index = gpus[cover.index.to_numpy()]
    cover = cover.reindex(index)
    out["temp_vs_node_slope"] = slope["temp_vs_node"].where(cover["temp_vs_node"] >= MIN_COVER)
    out["temp_at_power_slope"] = slope["temp_at_power"].where(cover["temp_at_power"] >= MIN_COVER)
    return out


def comparable_band(
    power: npt.NDArray[np.float64], watts: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Return the lowest and highest power comparable with each of ``power``: within ``watts``
    and within a factor ``COMPARABLE_RATIO`` of it."""
    low = np.maximum(power - watts, power / COMPARABLE_RATIO)
    high = np.minimum(power + watts, power * COMPARABLE_RATIO)
    return low, high


def _peer_deviation(
    frame: pd.DataFrame, group: list[str], cols: list[str], watts: float
) -> pd.DataFrame:
    """Each row's ``cols`` minus the mean of the other rows of its group at comparable power.

    Comparable: within ``watts`` and within a factor ``COMPARABLE_RATIO`` of the row's power.

    Sorted prefix sums: O(n log n) for any group size (a fleet at one timestamp is a group).
    Rows without power or without a comparable peer get NaN. Rows are placed by position (the
    frame's index labels them, one each). Exact per group: the bounds are found on integer
    ranks and the sums restart at each group, so a group's numbers are the same bits whatever
    other groups the frame holds (a fit's whole history, or one cycle's window of it).
    """
    out = np.full((len(frame), len(cols)), np.nan)
    ok = frame["power"].notna().to_numpy()
    if ok.sum() >= 2:
        gid = frame.loc[ok, group].groupby(group, sort=False).ngroup().to_numpy(dtype=np.int64)
        power = frame["power"].to_numpy(dtype=np.float64)[ok]
        # each power's rank among all the powers, and the ranks its comparable band spans:
        # found once per distinct power, in order (a lagged power is a level of its own per
        # row: searching 4 million of them row by row was most of a 100,000-GPU cycle's peers)
        levels, rank = np.unique(power, return_inverse=True)
        del power
        rank = rank.reshape(-1)
        width = np.int64(len(levels) + 1)
        band_low, band_high = comparable_band(levels, watts)
        low_rank = np.searchsorted(levels, band_low, side="left")
        high_rank = np.searchsorted(levels, band_high, side="right")
        # one integer sort key: group id, then the power's rank
        key = gid * width + rank
        order = np.argsort(key, kind="stable")
        key, g, r = key[order], gid[order], rank[order]
        # Each array below is a number per row (4 to 5 million for a fit's window at 100,000
        # GPUs): those every column shares are computed once, and each is let go once used.
        del gid, rank
        p = levels[r]
        inside = (band_low[r] <= p) & (p <= band_high[r])  # not so for a negative reading
        del p
        base = g * width
        lo = np.searchsorted(key, base + low_rank[r])
        hi = np.searchsorted(key, base + high_rank[r])
        first = np.searchsorted(key, base)  # the group's first row
        del key, base, r
        before = lo > first
        prev = np.maximum(lo - 1, 0)
        last = np.maximum(hi - 1, 0)
        del lo, hi, first
        rows = np.flatnonzero(ok)[order]
        for j, col in enumerate(cols):
            v = frame[col].to_numpy(dtype=np.float64)[ok][order]
            valid = np.isfinite(v)
            vz = np.where(valid, v, 0.0)
            # inclusive sums within each group, over the band [lo, hi) around the row
            csum = pd.Series(vz).groupby(g, sort=False).cumsum().to_numpy()
            total = csum[last] - np.where(before, csum[prev], 0.0) - vz
            del csum, vz
            ccount = pd.Series(valid.astype(np.int64)).groupby(g, sort=False).cumsum().to_numpy()
            peers = ccount[last] - np.where(before, ccount[prev], 0) - valid
            del ccount
            with np.errstate(invalid="ignore", divide="ignore"):
                good = valid & inside & (peers > 0)
                out[rows, j] = np.where(good, v - total / peers, np.nan)
    return pd.DataFrame(out, index=frame.index, columns=cols)


#: The node metrics :func:`node_context` reads.
NODE_CONTEXT_METRICS: tuple[str, ...] = (FAN, INLET, VOLTS, NODE_POWER, HWMON)
#: Each column :func:`node_context` writes with the metric it reads (None: scrape health).
NODE_FEATURES: Mapping[str, str | None] = MappingProxyType(
    {
        "fan_min": FAN,
        "fan_mean": FAN,
        "fan_spread": FAN,
        "fan_min_vs_fleet": FAN,
        "inlet": INLET,
        "inlet_vs_fleet": INLET,
        "volts_dev": VOLTS,
        "volts_dip": VOLTS,
        "node_power": NODE_POWER,
        "hwmon_temp": HWMON,
        "up_down_frac": None,
    }
)


def metric_rows(node: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The rows of each of ``NODE_CONTEXT_METRICS`` in a node frame, in the frame's order (a
    window of a history's split is the split of the history's window: ``slice_frame``)."""
    metric = node["metric"].to_numpy()
    return {m: node[metric == m] for m in NODE_CONTEXT_METRICS}


def node_context(
    node: pd.DataFrame,
    up: pd.DataFrame,
    *,
    nodes: pd.Index,
    at: pd.Timestamp,
    recent: timedelta,
    by_metric: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Per-node fans, inlet air, PSU voltage, node power and scrape health, against the rack.

    ``by_metric``: :func:`metric_rows` of ``node`` when known (a fit's cycles cut it from one
    split of the history instead of comparing every row's metric name in each window).
    """
    out = pd.DataFrame(index=nodes)
    cut = at - pd.Timedelta(recent)
    if not node.empty:
        rows = metric_rows(node) if by_metric is None else by_metric
        fans = rows[FAN]
        rec = fans[fans["ts"] > cut]
        per_fan = rec.groupby(["node", "sensor"], sort=False)["value"].mean()
        fan_min = per_fan.groupby(level="node").min()
        fan_mean = per_fan.groupby(level="node").mean()
        out["fan_min"] = fan_min.reindex(nodes)
        out["fan_mean"] = fan_mean.reindex(nodes)
        out["fan_spread"] = out["fan_min"] / out["fan_mean"].where(out["fan_mean"] > 0) - 1
        fleet_fan = out["fan_min"].median()
        out["fan_min_vs_fleet"] = out["fan_min"] / fleet_fan - 1 if fleet_fan > 0 else np.nan

        inlet = rows[INLET][rows[INLET]["sensor"] == INLET_SENSOR]
        inlet_rec = inlet[inlet["ts"] > cut].groupby("node", sort=False)["value"].mean()
        out["inlet"] = inlet_rec.reindex(nodes)
        out["inlet_vs_fleet"] = out["inlet"] - out["inlet"].median()

        volts = rows[VOLTS]
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
        power = rows[NODE_POWER][rows[NODE_POWER]["ts"] > cut]
        out["node_power"] = power.groupby("node", sort=False)["value"].mean().reindex(nodes)
        hw = rows[HWMON][rows[HWMON]["ts"] > cut]
        out["hwmon_temp"] = hw.groupby("node", sort=False)["value"].max().reindex(nodes)
    else:
        for col, metric in NODE_FEATURES.items():
            if metric is not None:
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


def component_stats(
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
    steps = grp.diff().clip(lower=0)
    inc = steps.groupby([c["component"], c["metric"]], sort=False).sum()
    stats["rate"] = np.log1p(inc.reindex(stats.index).fillna(0.0) / (window / timedelta(hours=1)))
    trimmed = _burst_trimmed(steps, c["component"], c["metric"])
    stats["sustained"] = np.log1p(
        trimmed.reindex(stats.index).fillna(0.0) / (window / timedelta(hours=1))
    )
    stats["excess"] = anscombe(trimmed.reindex(stats.index).fillna(0.0)).to_numpy()
    stats["counter"] = [_is_counter(str(m)) for m in stats.index.get_level_values("metric")]
    return stats


# A component counter's sustained increase leaves out this share of a window's steps, its
# largest ones (at least one): a burst or two is not a trend.
BURST_SHARE = 0.2


def _burst_trimmed(steps: pd.Series, component: pd.Series, metric: pd.Series) -> pd.Series:
    """Per component and metric: the window's increase read from its steps without the largest.

    The mean of the steps left once the largest ``ceil(BURST_SHARE * n)`` (at least one) of the
    ``n`` steps are dropped, times ``n``: a steady climb keeps its full increase, while harmless
    port-error bursts (a retrained link, a few a day per switch; two of them 20 minutes apart
    opened a critical switch incident on a healthy development fleet when only the largest step
    was dropped) count for nothing.
    """
    d = pd.DataFrame({"component": component, "metric": metric, "step": steps}).dropna()
    keys = ["component", "metric"]
    g = d.groupby(keys, sort=False)["step"]
    n = g.transform("size")
    drop = np.maximum(np.ceil(BURST_SHARE * n), 1.0)
    kept = d[g.rank(method="first", ascending=False) > drop]
    count = g.size()
    mean = kept.groupby(keys, sort=False)["step"].mean().reindex(count.index).fillna(0.0)
    return mean * count


def component_context(stats: pd.DataFrame, graph: nx.DiGraph, nodes: Sequence[str]) -> pd.DataFrame:
    """Join each node's upstream components' metrics as ``<kind>.<metric>`` columns.

    A component of a kind in ``COMPONENT_KINDS`` gives a counter metric's ``.rate``,
    ``.sustained`` and ``.excess`` columns, a gauge's level, ``.min`` and ``.max``; a node gets
    the NaN-ignoring mean of its predecessors' values of each column (``np.nanmean`` of them in
    predecessor order: summed one by one, then divided by their count). Columns come from every
    component of the kinds, so all nodes share one (sorted) column set.
    """
    names, comp_of, values = _component_columns(stats, graph)
    columns = sorted(set(names))
    comps = list(dict.fromkeys(comp_of))
    row_of = {cid: i for i, cid in enumerate(comps)}
    col_of = {col: j for j, col in enumerate(columns)}
    cells = ([row_of[c] for c in comp_of], [col_of[c] for c in names])
    table = np.full((len(comps), len(columns)), np.nan)
    table[cells] = values
    has = np.zeros(table.shape, dtype=bool)
    has[cells] = True
    # Each node's component predecessors in the graph's order, one layer per rank.
    preds: list[list[int]] = []
    for node in nodes:
        ranks = graph.predecessors(node) if node in graph else ()
        preds.append([row_of[str(p)] for p in ranks if str(p) in row_of])
    depth = max((len(p) for p in preds), default=0)
    if depth >= _PAIRWISE_FROM:
        # np.nanmean sums 8 values or more pairwise: not the running sum below
        return _component_context_loop(table, has, columns, preds, nodes)
    total = np.zeros((len(preds), len(columns)))
    count = np.zeros((len(preds), len(columns)), dtype=np.int64)
    for rank in range(depth):
        which = np.array([p[rank] if rank < len(p) else -1 for p in preds], dtype=np.int64)
        vals = np.where((which >= 0)[:, None], table[np.maximum(which, 0)], np.nan)
        valid = ~np.isnan(vals)
        total += np.where(valid, vals, 0.0)
        count += valid
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, np.nan)
    return pd.DataFrame(mean, index=list(nodes), columns=columns, dtype=float)


# np.nanmean's sum is a running sum for fewer values than this, pairwise from it on.
_PAIRWISE_FROM = 8


def _component_columns(
    stats: pd.DataFrame, graph: nx.DiGraph
) -> tuple[list[str], list[str], npt.NDArray[np.float64]]:
    """The ``<kind>.<metric>`` cells of the components of ``COMPONENT_KINDS``: column names,
    component ids and values, one entry per cell."""
    if stats.empty:
        return [], [], np.empty(0)
    cids = stats.index.get_level_values(0)
    kinds = {cid: str(graph.nodes[cid].get("kind")) for cid in cids.unique() if cid in graph}
    keep = np.array([kinds.get(cid) in COMPONENT_KINDS for cid in cids], dtype=bool)
    sub = stats[keep]
    counter = sub["counter"].to_numpy(dtype=bool)
    base = [
        f"{kinds[cid]}.{metric}"
        for cid, metric in zip(
            sub.index.get_level_values(0), sub.index.get_level_values(1), strict=True
        )
    ]
    names: list[str] = []
    comp_of: list[str] = []
    parts = []
    for counter_col, gauge_col, counter_suffix, gauge_suffix in (
        ("rate", "level", ".rate", ""),
        ("sustained", "min", ".sustained", ".min"),
        ("excess", "max", ".excess", ".max"),
    ):
        names += [
            b + (counter_suffix if c else gauge_suffix) for b, c in zip(base, counter, strict=True)
        ]
        comp_of += [str(c) for c in sub.index.get_level_values(0)]
        parts.append(
            np.where(
                counter,
                sub[counter_col].to_numpy(dtype=np.float64),
                sub[gauge_col].to_numpy(dtype=np.float64),
            )
        )
    return names, comp_of, np.concatenate(parts) if parts else np.empty(0)


def _component_context_loop(
    table: npt.NDArray[np.float64],
    has: npt.NDArray[np.bool_],
    columns: list[str],
    preds: list[list[int]],
    nodes: Sequence[str],
) -> pd.DataFrame:
    """:func:`component_context` one node at a time: ``np.nanmean`` of the values (NaN too) of
    each column its predecessors have (``has``)."""
    rows: dict[str, dict[str, float]] = {}
    for node, mine in zip(nodes, preds, strict=True):
        acc: dict[str, list[float]] = {}
        for i in mine:
            for j in np.flatnonzero(has[i]):
                acc.setdefault(columns[j], []).append(float(table[i, j]))
        rows[node] = {col: float(np.nanmean(v)) for col, v in acc.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index").reindex(index=list(nodes), columns=columns)
    return frame.astype(float)
