"""Tidy frames turned into per-GPU rows of template variables (counters as windowed counts), and fans.

GPU metrics are pivoted once (``FleetFrames.gpu_wide``); counters become events in the trailing
``COUNTER_WINDOW_MINUTES`` (a reset counts as no increase),
throttle counters the share of time throttled, XIDs a flag per class. Node variables (inlet air,
PSU voltage, the slowest fan relative to its siblings) are joined onto each GPU's row; components'
variables are kept per component and joined per group (``_group_table``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.explain.group import Group
from analysis.explain.template import (
    COUNTER_WINDOW_MINUTES,
    GPU_SCOPE,
    THROTTLE_KEYS,
    VARIABLES,
    VARS,
    XID_CODES,
    _component_key,
)
from analysis.types import FleetFrames


@dataclass
class _Prepared:
    """Frames turned into per-GPU rows of template variables (and per-sensor fans)."""

    rows: pd.DataFrame  # index (ts, key); columns: template variables of gpu and node scope
    fans: pd.DataFrame  # index (ts, node); columns: fan sensors
    components: pd.DataFrame  # index (ts, component); columns: template keys of components
    component_metrics: dict[tuple[str, str], str]  # (component, key) -> metric name used
    fan_ref: dict[str, pd.Series] | None = None  # node -> each fan's normal share of the median

    @cached_property
    def _positions(self) -> dict[str, npt.NDArray[np.intp]]:
        """Each GPU key's row positions in ``rows`` (found once, on first use)."""
        codes, uniques = pd.factorize(self.rows.index.get_level_values("key"))
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
        return {str(k): order[bounds[i] : bounds[i + 1]] for i, k in enumerate(uniques)}

    def rows_of(self, keys: Iterable[str]) -> pd.DataFrame:
        """The rows of ``keys`` in their order in ``rows`` (a boolean ``isin`` mask's rows).

        The GPUs' row positions are found once: a fit's history is cut for every group of
        every kind it trains on, and a mask over the whole history per group was most of it.
        """
        found = [self._positions[k] for k in dict.fromkeys(keys) if k in self._positions]
        if not found:
            return self.rows.iloc[:0]
        return self.rows.iloc[np.sort(np.concatenate(found))]


def _window_counts(series: pd.Series, by: str) -> pd.Series:
    """Return a counter's increase over the trailing counter window at each sample.

    ``series`` is indexed by ``ts`` and the entity level ``by``; a decrease (a reset) counts as
    no increase, and a sample without a value stays NaN. Near the start of the data the window is
    what there is (an undercount, never an overcount).
    """
    if series.empty:
        return series.astype(float)
    ts = series.index.get_level_values("ts").asi8
    codes = pd.factorize(series.index.get_level_values(by))[0].astype(np.int64)
    window = COUNTER_WINDOW_MINUTES * 60 * 1_000_000_000
    # one line of positions: entities laid out one after another, further apart than a window
    span = int(ts.max() - ts.min()) + window + 1
    pos = codes * span + (ts - ts.min())
    order = np.argsort(pos, kind="stable")
    p, c = pos[order], codes[order]
    values = series.to_numpy(dtype=float)[order]
    # across a missing sample, the increase since the last value seen
    known = pd.Series(values).groupby(c).ffill().to_numpy()
    step = np.diff(known, prepend=np.nan)
    step[np.r_[True, c[1:] != c[:-1]]] = np.nan  # an entity's first sample has no increase
    total = np.cumsum(np.nan_to_num(np.clip(step, 0.0, None), nan=0.0))
    before = np.searchsorted(p, p - window, side="right") - 1  # last sample at or before t - W
    inside = (before >= 0) & (c[np.maximum(before, 0)] == c)
    first = np.searchsorted(p, c * span, side="left")  # each entity's first sample
    base = np.where(inside, total[np.maximum(before, 0)], total[first])
    out = np.empty_like(values)
    out[order] = np.where(np.isnan(values), np.nan, total - base)
    return pd.Series(out, index=series.index, name=series.name)


def _fan_wide(node: pd.DataFrame) -> pd.DataFrame:
    """Return fan speeds as (ts, node) x sensor."""
    f = node[node["metric"] == "ipmi_fan_speed_rpm"]
    if f.empty:
        return pd.DataFrame()
    return (
        f.drop_duplicates(["ts", "node", "sensor"], keep="last")
        .set_index(["ts", "node", "sensor"])["value"]
        .unstack("sensor")
        .sort_index()
    )


def _fan_ratios(fans: pd.DataFrame) -> pd.DataFrame:
    """Return each fan sensor's speed as a fraction of its node's median fan at that time."""
    return fans.div(fans.median(axis=1).where(lambda x: x > 0), axis=0)


def _fan_normals(node: pd.DataFrame) -> dict[str, pd.Series]:
    """Return each node's fans' normal share of the node's median fan."""
    fans = _fan_wide(node)
    if fans.empty:
        return {}
    return {str(n): r.median() for n, r in _fan_ratios(fans).groupby(level="node")}


def _slowest_fan(fans: pd.DataFrame, normals: Mapping[str, pd.Series] | None) -> pd.Series:
    """The slowest fan relative to its own normal share of the node's median (1 = normal)."""
    ratios = _fan_ratios(fans)
    if normals:
        nodes = [str(n) for n in ratios.index.get_level_values("node")]
        # one row of normal shares per node, then one per row of ``ratios`` (NaN: no normal)
        table = pd.DataFrame(
            {n: s for n, s in normals.items() if not s.empty}, columns=list(normals)
        ).T.reindex(columns=ratios.columns)
        base = pd.DataFrame(
            table.reindex(nodes).to_numpy(dtype=float), index=ratios.index, columns=ratios.columns
        )
        ratios = ratios / base.fillna(1.0)
    return ratios.min(axis=1)


def _worst_fan(
    group: Group, prepared: _Prepared, ref_fans: pd.Series | None = None
) -> tuple[str, float, float, float]:
    """Return the slowest fan vs its siblings: (sensor, change vs its normal, rpm, siblings rpm)."""
    fans = prepared.fans
    nan = float("nan")
    if fans.empty:
        return "", nan, nan, nan
    part = fans[fans.index.get_level_values("node").isin(group.nodes)]
    if part.empty:
        return "", nan, nan, nan
    recent = part.groupby(level="node").tail(5)
    ratios = _fan_ratios(recent)
    best: tuple[str, float, float, float] = ("", nan, nan, nan)
    for node, rows in ratios.groupby(level="node"):
        now = rows.median()
        normal = prepared.fan_ref.get(str(node)) if prepared.fan_ref else None
        base = normal.reindex(now.index).fillna(1.0) if normal is not None else 1.0
        change = (now / base - 1.0).dropna()
        if change.empty:
            continue
        sensor = str(change.idxmin())
        if math.isnan(best[1]) or change[sensor] < best[1]:
            rpm = recent.xs(node, level="node")
            best = (
                sensor if len(group.nodes) == 1 else f"{node} {sensor}",
                float(change[sensor]),
                float(rpm[sensor].median()),
                float(rpm.median(axis=1).median()),
            )
    return best


def _prepare(
    frames: FleetFrames, until: Any = None, fan_normals: Mapping[str, pd.Series] | None = None
) -> _Prepared:
    """Turn tidy frames into per-GPU rows of template variables (counters as rates)."""
    gpu = frames.gpu
    node = frames.node
    comp = frames.component
    if until is not None:
        cut = pd.Timestamp(until)
        gpu = gpu[gpu["ts"] <= cut]
        node = node[node["ts"] <= cut]
        comp = comp[comp["ts"] <= cut]
    gpu_vars = [v for v in VARIABLES if v.scope == GPU_SCOPE]
    metrics = sorted({v.metric for v in gpu_vars})
    g = gpu[gpu["metric"].isin(metrics)]
    if g.empty:
        rows = pd.DataFrame(index=pd.MultiIndex.from_arrays([[], []], names=["ts", "key"]))
    else:
        wide = replace(frames, gpu=g).gpu_wide()
        cols: dict[str, pd.Series] = {}
        for v in gpu_vars:
            if v.metric not in wide.columns:
                continue
            series = wide[v.metric]
            if v.key in XID_CODES:
                codes = sorted(XID_CODES[v.key])
                series = series.isin(codes).astype(float).where(series.notna())
            elif v.key in THROTTLE_KEYS:
                secs = (
                    pd.Series(wide.index.get_level_values("ts"), index=wide.index)
                    .groupby(level="key")
                    .diff()
                    .dt.total_seconds()
                )
                series = (series.groupby(level="key").diff().clip(lower=0.0) / 1e6 / secs).clip(
                    upper=1.0
                )
            elif v.counter:
                series = _window_counts(series, "key")
            cols[v.key] = series
        rows = pd.DataFrame(cols).swaplevel().sort_index()
        rows.index = rows.index.set_names(["ts", "key"])
    # node variables
    fans = pd.DataFrame()
    node_cols: dict[str, pd.Series] = {}
    if not node.empty:
        fans = _fan_wide(node)
        if not fans.empty:
            node_cols["fan"] = _slowest_fan(fans, fan_normals)
        t = node[node["metric"] == "ipmi_temperature_celsius"]
        if not t.empty:
            inlet = t[t["sensor"].astype(str).str.lower().str.contains("inlet")]
            if inlet.empty:
                inlet = t
            node_cols["inlet"] = inlet.groupby(["ts", "node"])["value"].mean()
        vlt = node[node["metric"] == "ipmi_voltage_volts"]
        if not vlt.empty:
            node_cols["psu_volts"] = vlt.groupby(["ts", "node"])["value"].mean()
    if node_cols and not rows.empty:
        node_table = pd.DataFrame(node_cols)
        keys = rows.index.get_level_values("key")
        node_of = {k: k.rpartition("/")[0] for k in keys.unique()}
        nodes = keys.map(node_of)
        idx = pd.MultiIndex.from_arrays([rows.index.get_level_values("ts"), nodes])
        joined = node_table.reindex(idx)
        for col in node_table.columns:
            rows[col] = joined[col].to_numpy()
    # component variables
    comp_metrics: dict[tuple[str, str], str] = {}
    comp_cols: dict[str, pd.Series] = {}
    if not comp.empty:
        for (cid, metric), part in comp.groupby(["component", "metric"], sort=True):
            key = _component_key(str(metric))
            if key is None or (str(cid), key) in comp_metrics:
                continue
            comp_metrics[(str(cid), key)] = str(metric)
            s = part.drop_duplicates("ts", keep="last").set_index("ts")["value"].sort_index()
            s.index = pd.MultiIndex.from_arrays(
                [s.index, [str(cid)] * len(s)], names=["ts", "component"]
            )
            if VARS[key].counter:
                s = _window_counts(s, "component")
            comp_cols.setdefault(key, []).append(s)  # type: ignore[arg-type, union-attr]
    components = (
        pd.DataFrame({k: pd.concat(v) for k, v in comp_cols.items()})  # type: ignore[arg-type]
        if comp_cols
        else pd.DataFrame()
    )
    return _Prepared(rows=rows, fans=fans, components=components, component_metrics=comp_metrics)


def _group_table(prepared: _Prepared, group: Group) -> pd.DataFrame:
    """Return one row per timestamp: GPU/node variables averaged over the group, plus components."""
    rows = prepared.rows
    if rows.empty or not group.gpus:
        return pd.DataFrame()
    part = prepared.rows_of(group.gpus)
    if part.empty:
        return pd.DataFrame()
    table = part.groupby(level="ts").mean()
    comps = prepared.components
    if not comps.empty:
        for ckind, cid in group.components.items():
            for var in VARIABLES:
                if var.scope != ckind or var.key not in comps.columns:
                    continue
                try:
                    series = comps[var.key].xs(cid, level="component")
                except KeyError:
                    continue
                table[var.key] = series.reindex(table.index).to_numpy()
    table = table.dropna(axis=1, how="all")
    return table
