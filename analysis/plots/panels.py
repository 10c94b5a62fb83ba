"""The metric panels of an incident: the affected series against their peers' band, as a PNG."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

import matplotlib.dates as mdates
import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis.plots.common import _png
from analysis.types import FleetFrames, Incident

AFFECTED_COLOURS = ("#d62f2f", "#7b3fb5", "#1f6fd1", "#e07b00")
MAX_HIGHLIGHTED = 4
#: The most nodes, besides the incident's own, whose series form a panel's peer band. The band
#: of every GPU of a 100,000-GPU fleet takes seconds to draw (8,192 GPUs: 2 s) and shows no
#: more than a few hundred GPUs' does; the picture's cost then stays the incident's, not the
#: fleet's. Which nodes: those whose names hash lowest (CRC-32), the same ones every time and
#: spread over racks whatever the naming.
PEER_NODES = 64

# What each metric is called on a chart, its unit, and where it lives.
METRIC_INFO: Mapping[str, tuple[str, str]] = {
    "DCGM_FI_DEV_GPU_TEMP": ("GPU temperature", "°C"),
    "DCGM_FI_DEV_MEMORY_TEMP": ("HBM temperature", "°C"),
    "DCGM_FI_DEV_POWER_USAGE": ("GPU power", "W"),
    "DCGM_FI_DEV_SM_CLOCK": ("SM clock", "MHz"),
    "DCGM_FI_DEV_GPU_UTIL": ("GPU utilisation", "%"),
    "DCGM_FI_DEV_THERMAL_VIOLATION": ("thermal throttling", "% of time"),
    "DCGM_FI_DEV_POWER_VIOLATION": ("power capping", "% of time"),
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": ("correctable ECC (SBE)", "count"),
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": ("uncorrectable ECC (DBE)", "count"),
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": ("correctable remapped rows", "rows"),
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": ("uncorrectable remapped rows", "rows"),
    "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL": ("NVLink CRC errors", "count"),
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": ("PCIe replays", "count"),
    "DCGM_FI_DEV_XID_ERRORS": ("last XID", "code"),
    "ipmi_fan_speed_rpm": ("fan speed", "rpm"),
    "ipmi_temperature_celsius": ("inlet air", "°C"),
    "ipmi_voltage_volts": ("PSU 12 V rail", "V"),
    "ipmi_dcmi_power_consumption_current_watts": ("node power", "W"),
    "output_volts": ("PDU output voltage", "V"),
    "output_watts": ("PDU output power", "W"),
    "supply_temp_celsius": ("CRAC supply air", "°C"),
    "port_errors_total": ("switch port errors", "count"),
    "port_errors": ("switch port errors", "count"),
}
# Cumulative throttle-time counters (µs) are drawn as the share of time spent throttled.
THROTTLE_COUNTERS = ("DCGM_FI_DEV_THERMAL_VIOLATION", "DCGM_FI_DEV_POWER_VIOLATION")
DEFAULT_PANELS: Mapping[str, tuple[str, ...]] = {
    "gpu": ("DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_SM_CLOCK"),
    "node": ("ipmi_fan_speed_rpm", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_SM_CLOCK"),
    "rack": ("DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_GPU_UTIL"),
    "pdu": ("output_volts", "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_POWER_VIOLATION"),
    "cooling": ("supply_temp_celsius", "ipmi_temperature_celsius", "DCGM_FI_DEV_GPU_TEMP"),
    "switch": (
        "port_errors_total",
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
    ),
}
# Metrics that tell the rest of the story of a top factor (drawn before the kind's defaults).
RELATED: Mapping[str, tuple[str, ...]] = {
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": (
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    ),
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": (
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    ),
    "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL": ("DCGM_FI_DEV_GPU_UTIL",),
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": ("DCGM_FI_DEV_GPU_UTIL",),
    "ipmi_fan_speed_rpm": ("DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_THERMAL_VIOLATION"),
    "DCGM_FI_DEV_GPU_TEMP": ("DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_THERMAL_VIOLATION"),
    "port_errors_total": ("DCGM_FI_DEV_GPU_UTIL",),
}
NODE_SENSORS: Mapping[str, str] = {"ipmi_temperature_celsius": "Inlet Temp"}
# The harmful direction of a metric, for picking the lines to highlight: higher is worse unless
# listed here (temperatures, errors, throttling).
LOWER_IS_WORSE = frozenset({"DCGM_FI_DEV_SM_CLOCK", "ipmi_fan_speed_rpm"})
EITHER_WAY = frozenset(
    {"DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_GPU_UTIL", "ipmi_dcmi_power_consumption_current_watts"}
)


def _highlight_order(metric: str, mine: pd.DataFrame, peers: pd.DataFrame) -> list[str]:
    """Order the affected lines worst first: by their recent offset from the peers' median, in
    the metric's harmful direction (the hottest GPUs of a cooling incident, not its idle ones)."""
    offset = mine.iloc[-10:].mean() - (
        peers.iloc[-10:].median(axis=1).mean() if not peers.empty else 0.0
    )
    m = metric.lower()
    if metric in LOWER_IS_WORSE:
        offset = -offset
    elif metric in EITHER_WAY or "volt" in m or "watt" in m:
        offset = offset.abs()
    return [str(c) for c in offset.sort_values(ascending=False, kind="stable").index]


def incident_nodes(incident: Incident) -> set[str]:
    """The nodes of an incident's GPUs (and the node it names)."""
    nodes = {g.node for g in incident.gpus}
    if incident.root_cause.kind == "node":
        nodes.add(incident.root_cause.id)
    return nodes


def picture_nodes(names: Sequence[str], own: set[str], limit: int = PEER_NODES) -> list[str]:
    """The nodes an incident's metric panels are drawn from, of the distinct node ``names`` of a
    fleet: ``own`` (:func:`incident_nodes`) and the ``limit`` others whose names hash lowest
    (CRC-32, then the name). What :func:`render_incident_metrics` keeps of a fleet's frames, so a
    source can be asked for these nodes alone (the picture then costs the incident's, not the
    fleet's)."""
    text = [str(n) for n in names]
    return [t for t, keep in zip(text, _kept(text, own, limit), strict=True) if keep]


def picture_read(incidents: Sequence[Incident], names: Sequence[str]) -> tuple[set[str], list[str]]:
    """What the metric panels of ``incidents`` are drawn from, in a fleet of the node ``names``:
    their nodes with the panels' peers (:func:`picture_nodes`), and the GPU metrics a panel of
    theirs could show (:func:`panel_gpu_metrics`, sorted; every other series of those nodes is
    drawn from too). What a source is asked for when the cycle's frames do not hold it."""
    own = set().union(*(incident_nodes(inc) for inc in incidents))
    nodes = own.union(picture_nodes(names, own))
    return nodes, sorted({m for inc in incidents for m in panel_gpu_metrics(inc)})


def _kept(text: list[str], own: set[str], limit: int) -> npt.NDArray[np.bool_]:
    """Which of the distinct node names ``text`` :func:`picture_nodes` keeps."""
    mine = np.fromiter((t in own for t in text), dtype=bool, count=len(text))
    crc = np.fromiter((zlib.crc32(t.encode()) for t in text), dtype=np.int64, count=len(text))
    others = np.flatnonzero(~mine)
    keep = mine.copy()
    keep[others[np.lexsort((np.asarray(text, dtype=object)[others], crc[others]))[:limit]]] = True
    return keep


def _peer_rows(
    nodes: npt.NDArray[np.object_], own: set[str], limit: int
) -> npt.NDArray[np.bool_] | None:
    """Which of these rows' nodes are ``own`` or among ``limit`` others (lowest CRC-32 of the
    name); None: every row (no more nodes than that)."""
    codes, names = pd.factorize(nodes, sort=False, use_na_sentinel=False)
    if len(names) <= limit + len(own):
        return None
    return _kept([str(n) for n in names], own, limit)[codes]


def _with_peer_nodes(
    df: pd.DataFrame,
    own: set[str],
    limit: int = PEER_NODES,
    rows: npt.NDArray[np.bool_] | None = None,
) -> pd.DataFrame:
    """The rows of ``df`` (of those ``rows`` marks, when given) on ``own`` nodes or on at most
    ``limit`` others; one copy of the rows kept, none of the rest (1M rows at 512 GPUs)."""
    at = np.arange(len(df)) if rows is None else np.flatnonzero(rows)
    keep = _peer_rows(df["node"].to_numpy()[at], own, limit) if len(at) else None
    if keep is None:
        return df if rows is None else df.iloc[at]
    return df.iloc[at[keep]]


def _metric_names(df: pd.DataFrame) -> set[str]:
    """The metric names of a tidy frame (scanned once per picture: ~1M rows at 512 GPUs)."""
    return {str(m) for m in df["metric"].unique()}


def panel_gpu_metrics(incident: Incident) -> list[str]:
    """Every GPU metric :func:`_panel_metrics` could pick for this incident (a dozen at most)."""
    names = list(DEFAULT_PANELS.get(incident.root_cause.kind, DEFAULT_PANELS["gpu"]))
    if incident.explanation is not None and incident.explanation.factors:
        names += [f.name for f in incident.explanation.factors]
        names += RELATED.get(incident.explanation.factors[0].name, ())
    return [m for m in dict.fromkeys(names) if m.startswith("DCGM_")]


def _panel_metrics(incident: Incident, available: set[str], limit: int = 3) -> list[str]:
    """Pick the metrics to draw: the explanation's top factors first, then the kind's defaults.

    ``available``: every metric name of the picture's frames."""
    picked: list[str] = []
    if incident.explanation is not None:
        for i, f in enumerate(incident.explanation.factors):
            if i > 0 and f.share < 0.15:
                break  # minor factors make poor panels; the kind's defaults are better
            if f.name in available and f.name not in picked:
                picked.append(f.name)
        if incident.explanation.factors:
            top = incident.explanation.factors[0].name
            picked += [m for m in RELATED.get(top, ()) if m in available and m not in picked]
    for name in DEFAULT_PANELS.get(incident.root_cause.kind, DEFAULT_PANELS["gpu"]):
        resolved = name if name in available else _similar(name, available)
        if resolved and resolved not in picked:
            picked.append(resolved)
    return picked[:limit]


def _similar(name: str, available: set[str]) -> str | None:
    """Find a component metric by stem (output_volts ~ pdu volts, port_errors ~ *_total)."""
    stem = name.removesuffix("_total").split("_")[-1]
    for m in sorted(available):
        if not m.startswith(("DCGM_", "ipmi_", "node_")) and stem in m:
            return m
    return None


def _label(metric: str) -> tuple[str, str]:
    """Return a metric's human label and unit."""
    if metric in METRIC_INFO:
        return METRIC_INFO[metric]
    m = metric.lower()
    unit = (
        "V"
        if "volt" in m
        else "°C"
        if ("celsius" in m or "temp" in m)
        else ("W" if "watt" in m else "count")
    )
    return metric.replace("_", " "), unit


def _row_quantiles(wide: pd.DataFrame, qs: Sequence[float]) -> pd.DataFrame:
    """Quantiles of each row, skipping NaN: ``wide.quantile(qs, axis=1).T``, vectorised.

    The same numbers as pandas' (numpy's linear interpolation over each row's values), without
    its per-row loop over hundreds of timestamps; an all-NaN row gives NaN."""
    a = np.sort(wide.to_numpy(dtype=float), axis=1)  # NaN sort last
    n = np.count_nonzero(~np.isnan(a), axis=1)
    pos = np.maximum(n - 1, 0)[:, None] * np.asarray(qs, dtype=float)[None, :]
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0)[:, None])
    frac = pos - lo
    below = np.take_along_axis(a, lo, axis=1) if a.shape[1] else np.full(pos.shape, np.nan)
    above = np.take_along_axis(a, hi, axis=1) if a.shape[1] else np.full(pos.shape, np.nan)
    out = below + (above - below) * frac
    out[n == 0] = np.nan
    return pd.DataFrame(out, index=wide.index, columns=list(qs))


def _wide(df: pd.DataFrame, key_cols: Sequence[str]) -> pd.DataFrame:
    """Pivot a long node or component frame to time x entity (GPUs: ``FleetFrames.gpu_wide``)."""
    if df.empty:
        return pd.DataFrame()
    keys = df[key_cols[0]].astype(str)
    for col in key_cols[1:]:
        keys = keys + "/" + df[col].astype(str)
    return (
        df.assign(_k=keys.to_numpy())
        .drop_duplicates(["ts", "_k"], keep="last")
        .pivot(index="ts", columns="_k", values="value")
        .sort_index()
    )


def _series_for(
    metric: str,
    incident: Incident,
    frames: FleetFrames,
    node_metrics: set[str] | None = None,
    gpu_wide: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Return (affected series, peer series, what the lines are) for one metric.

    ``node_metrics``: the node frame's metric names when known; ``gpu_wide``: the GPU frame
    pivoted once for every GPU panel (``FleetFrames.gpu_wide``), when known."""
    affected = {g.key for g in incident.gpus}
    nodes = incident_nodes(incident)
    if metric.startswith("DCGM_"):
        if gpu_wide is None or metric not in gpu_wide.columns:
            gpu_wide = frames.gpu_wide([metric])
        wide = gpu_wide[metric].dropna().unstack("key").sort_index()
        if metric in THROTTLE_COUNTERS and not wide.empty:
            seconds = wide.index.to_series().diff().dt.total_seconds().to_numpy()
            wide = (wide.diff().clip(lower=0) / 1e6).div(seconds, axis=0).clip(upper=1) * 100
        mine = [c for c in wide.columns if c in affected]
        return wide[mine], wide.drop(columns=mine), "GPU"
    if node_metrics is None:
        node_metrics = _metric_names(frames.node)
    if metric in node_metrics:
        part = frames.node[frames.node["metric"] == metric]
        sensor = NODE_SENSORS.get(metric)
        if sensor is not None and (part["sensor"] == sensor).any():
            part = part[part["sensor"] == sensor]
        wide = (
            _wide(part, ["node", "sensor"])
            if part["sensor"].astype(str).str.len().gt(0).any()
            else _wide(part, ["node"])
        )
        mine = [c for c in wide.columns if c.split("/")[0] in nodes]
        return wide[mine], wide.drop(columns=mine), "sensor"
    part = frames.component[frames.component["metric"] == metric]
    wide = _wide(part, ["component"])
    wanted = {incident.root_cause.id}
    if incident.explanation is not None:
        wanted |= {f.entity for f in incident.explanation.factors if f.name == metric}
    mine = [c for c in wide.columns if c in wanted]
    return wide[mine], wide.drop(columns=mine), "component"


def render_incident_metrics(
    incident: Incident, frames: FleetFrames, onset: datetime | None = None
) -> bytes:
    """Draw the key metrics of the affected GPUs against their peers' band, as a PNG."""
    own = incident_nodes(incident)
    frames = replace(frames, node=_with_peer_nodes(frames.node, own))
    node_metrics = _metric_names(frames.node)
    # the GPU frame (the largest, ~1M rows at 512 GPUs) is scanned once, for the few GPU
    # metrics the panels could show: which of them it has, and their rows (own and peer nodes)
    candidates = frames.gpu["metric"].isin(panel_gpu_metrics(incident)).to_numpy()
    gpu_rows = _with_peer_nodes(frames.gpu, own, rows=candidates)
    available = _metric_names(gpu_rows) | node_metrics | _metric_names(frames.component)
    metrics = _panel_metrics(incident, available)
    n = max(1, len(metrics))
    fig = Figure(figsize=(11.0, 1.0 + 2.2 * n), dpi=90)
    first = min(
        (df["ts"].min() for df in (frames.gpu, frames.node, frames.component) if not df.empty),
        default=None,
    )
    onset_ts = pd.Timestamp(onset) if onset is not None else None
    note = ""
    if onset_ts is not None and first is not None and onset_ts < first:
        note = f"\nprecursor onset {onset_ts.tz_convert('UTC'):%Y-%m-%d %H:%M} UTC (before this window)"
        onset_ts = None
    fig.subplots_adjust(
        left=0.08,
        right=0.78,
        top=1 - (1.0 if note else 0.75) / (1.0 + 2.2 * n),
        bottom=0.5 / (1.0 + 2.2 * n) + 0.02,
        hspace=0.35,
    )
    fig.suptitle(
        f"{incident.title} — {incident.severity}, risk {incident.score:.2f}{note}",
        fontsize=12 if not note else 11,
        fontweight="bold",
    )
    if not metrics:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no metrics in the window", ha="center", va="center")
        ax.set_axis_off()
        return _png(fig)
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    at = pd.Timestamp(incident.at)
    # the panels' GPU rows only, pivoted once for all of them
    gpu_metrics = [m for m in metrics if m.startswith("DCGM_")]
    frames = replace(frames, gpu=gpu_rows[gpu_rows["metric"].isin(gpu_metrics)])
    gpu_wide = frames.gpu_wide()  # all of its rows are the panels' (no second filter)
    for ax, metric in zip(axes, metrics, strict=False):
        mine, peers, what = _series_for(metric, incident, frames, node_metrics, gpu_wide)
        label, unit = _label(metric)
        if not peers.empty:
            q = _row_quantiles(peers, [0.1, 0.5, 0.9])
            ax.fill_between(
                q.index,
                q[0.1],
                q[0.9],
                color="#9db7d5",
                alpha=0.45,
                label=f"peers 10–90 % ({peers.shape[1]})",
                linewidth=0,
            )
            ax.plot(q.index, q[0.5], color="#3d5a80", lw=1.2, label="peers median")
        if not mine.empty:
            order = _highlight_order(metric, mine, peers)  # the worst lines first, the rest thin
            top = MAX_HIGHLIGHTED if what != "sensor" else 2
            for i, col in enumerate(order[:top]):
                s = mine[col].dropna()
                ax.plot(s.index, s.to_numpy(), color=AFFECTED_COLOURS[i], lw=1.8, label=str(col))
            rest = mine[order[top:]]
            if rest.shape[1] == 1:
                s = rest.iloc[:, 0].dropna()
                ax.plot(
                    s.index,
                    s.to_numpy(),
                    color="#d62f2f",
                    lw=0.7,
                    alpha=0.6,
                    label=f"1 more affected {what}",
                )
            elif rest.shape[1] > 1:  # a band, not dozens of lines
                rq = _row_quantiles(rest, [0.1, 0.9])
                ax.fill_between(
                    rq.index,
                    rq[0.1],
                    rq[0.9],
                    color="#d62f2f",
                    alpha=0.18,
                    linewidth=0,
                    label=f"{rest.shape[1]} more affected {what}s (10–90 %)",
                )
        first_panel = ax is axes[0]  # the markers are explained once
        if onset_ts is not None:
            ax.axvline(
                onset_ts,
                color="#e07b00",
                ls="--",
                lw=1.3,
                label="precursor onset" if first_panel else None,
            )
        ax.axvline(at, color="#b00000", ls=":", lw=1.3, label="alert" if first_panel else None)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.set_ylabel(f"{label}\n[{unit}]", fontsize=8.5)
        ax.set_title(
            f"{label} ({metric}) — affected {what}s vs peers", fontsize=9, loc="left", y=1.0, pad=4
        )
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
        ax.legend(
            fontsize=7.5,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            framealpha=0.9,
            borderaxespad=0.0,
        )
    axes[-1].xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=7, tz="UTC"))
    axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz="UTC"))
    axes[-1].set_xlabel("time (UTC)", fontsize=8.5)
    return _png(fig)
