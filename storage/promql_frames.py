"""PromQL answers into tidy frames: range-query matrices become the frames of ``FleetFrames``.

Which label names what comes from a label map (keys node, gpu, instance, sensor); a node named by
``instance`` loses its port. Sample values are parsed as float64 (unparsable ones become NaN).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from analysis.types import UP_COLUMNS, FleetFrames

logger = logging.getLogger(__name__)

# The label component queries are tagged with, so each series says which component it belongs to.
COMPONENT_LABEL = "gpu_risk_component"


def strip_port(instance: str) -> str:
    """Return ``host`` from ``host:port`` (IPv6 ``[::1]:9100`` too); leave other values alone."""
    if instance.startswith("["):
        host, _, rest = instance[1:].partition("]")
        return host if rest.startswith(":") or not rest else instance
    host, sep, port = instance.rpartition(":")
    if sep and port.isdigit() and host:
        return host
    return instance


def gpu_frame(
    metric: str, matrix: list[dict[str, Any]], label_map: Mapping[str, str]
) -> tuple[pd.DataFrame | None, int]:
    """Tidy one DCGM metric's matrix; return it and how many series lacked node/GPU labels."""
    node_l, gpu_l, inst_l = label_map["node"], label_map["gpu"], label_map["instance"]
    ts: list[Any] = []
    nodes: list[str] = []
    gpus: list[str] = []
    vals: list[Any] = []
    bad = 0
    keys: set[tuple[str, str]] = set()
    duplicated = False
    for series in matrix:
        labels = series["metric"]
        node = labels.get(node_l) or (strip_port(labels[inst_l]) if labels.get(inst_l) else None)
        gpu = labels.get(gpu_l)
        if not node or gpu is None:
            bad += 1
            continue
        duplicated = duplicated or (node, str(gpu)) in keys
        keys.add((node, str(gpu)))
        values = series["values"]
        n = len(values)
        ts.extend(v[0] for v in values)
        vals.extend(v[1] for v in values)
        nodes.extend([node] * n)
        gpus.extend([str(gpu)] * n)
    if not ts:
        return None, bad
    df = pd.DataFrame(
        {
            "ts": to_timestamps(ts),
            "node": nodes,
            "gpu": gpus,
            "metric": metric,
            "value": to_floats(vals),
        }
    )
    if duplicated:  # two series for one (node, gpu), e.g. two exporters: one value per step
        df = df.drop_duplicates(subset=["ts", "node", "gpu"], keep="last")
    return df, bad


def node_frame(
    metric: str, matrix: list[dict[str, Any]], label_map: Mapping[str, str]
) -> pd.DataFrame:
    """Tidy one node metric's matrix (node from ``instance`` without its port)."""
    inst_l, sensor_l = label_map["instance"], label_map["sensor"]
    ts: list[Any] = []
    nodes: list[str] = []
    sensors: list[str] = []
    vals: list[Any] = []
    for series in matrix:
        labels = series["metric"]
        node = strip_port(labels.get(inst_l, "") or labels.get("Hostname", ""))
        if not node:
            continue
        sensor = labels.get(sensor_l) or labels.get("sensor") or ""
        if sensor_l != "sensor" and labels.get("chip") and labels.get("sensor"):
            sensor = f"{labels['chip']}/{labels['sensor']}"
        values = series["values"]
        n = len(values)
        ts.extend(v[0] for v in values)
        vals.extend(v[1] for v in values)
        nodes.extend([node] * n)
        sensors.extend([sensor] * n)
    return pd.DataFrame(
        {
            "ts": to_timestamps(ts),
            "node": pd.Series(nodes, dtype="object"),
            "metric": metric,
            "sensor": pd.Series(sensors, dtype="object"),
            "value": to_floats(vals),
        }
    )


def component_frame(name: str, matrix: list[dict[str, Any]]) -> pd.DataFrame:
    """Tidy one component metric; several series of one component are averaged."""
    ts: list[Any] = []
    comps: list[str] = []
    vals: list[Any] = []
    for series in matrix:
        cid = series["metric"].get(COMPONENT_LABEL)
        if not cid:
            continue
        values = series["values"]
        ts.extend(v[0] for v in values)
        vals.extend(v[1] for v in values)
        comps.extend([cid] * len(values))
    df = pd.DataFrame(
        {
            "ts": to_timestamps(ts),
            "component": pd.Series(comps, dtype="object"),
            "metric": name,
            "value": to_floats(vals),
        }
    )
    if df.duplicated(subset=["ts", "component"]).any():
        logger.warning("component metric %s returns several series per component: averaged", name)
        df = df.groupby(["ts", "component", "metric"], as_index=False)["value"].mean()
    return df


def up_frame(matrix: list[dict[str, Any]], label_map: Mapping[str, str]) -> pd.DataFrame:
    """Tidy ``up``: one row per target and step, node from ``instance`` without its port."""
    inst_l = label_map["instance"]
    ts: list[Any] = []
    nodes: list[str] = []
    jobs: list[str] = []
    vals: list[Any] = []
    for series in matrix:
        labels = series["metric"]
        node = strip_port(labels.get(inst_l, ""))
        values = series["values"]
        ts.extend(v[0] for v in values)
        vals.extend(v[1] for v in values)
        nodes.extend([node] * len(values))
        jobs.extend([labels.get("job", "")] * len(values))
    if not ts:
        return FleetFrames.empty_frame(UP_COLUMNS)
    return concat_frames(
        [
            pd.DataFrame(
                {
                    "ts": to_timestamps(ts),
                    "node": pd.Series(nodes, dtype="object"),
                    "job": pd.Series(jobs, dtype="object"),
                    "value": to_floats(vals),
                }
            )
        ],
        UP_COLUMNS,
    )


def to_floats(values: list[Any]) -> np.ndarray:
    """Prometheus sample values (strings such as "41", "NaN", "+Inf") as float64."""
    try:
        return np.asarray(values, dtype="float64")
    except ValueError:  # something unparsable: coerce it to NaN rather than fail the fetch
        return pd.to_numeric(pd.Series(values, dtype="object"), errors="coerce").to_numpy(
            dtype="float64"
        )


def to_timestamps(seconds: Iterable[Any]) -> pd.Series:
    """Unix seconds (floats) -> UTC timestamps."""
    return pd.to_datetime(pd.Series(list(seconds), dtype="float64"), unit="s", utc=True)


def concat_frames(parts: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    """Concatenate tidy parts in column order, sorted; an empty typed frame if none."""
    parts = [p for p in parts if not p.empty]
    if not parts:
        return FleetFrames.empty_frame(columns)
    df = pd.concat(parts, ignore_index=True)[list(columns)]
    df["value"] = df["value"].astype("float64")
    keys = [c for c in columns if c not in ("value", "ts")] + ["ts"]
    df = df.dropna(subset=["value"]).sort_values(keys, kind="stable").reset_index(drop=True)
    return df
