"""Words: the one-line summary a human reads in two seconds, and each factor's short phrase."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
import pandas as pd

from analysis.explain.group import Group
from analysis.explain.prepare import _Prepared, _worst_fan
from analysis.explain.template import (
    COMPONENT_ROLES,
    GPU_SCOPE,
    NODE_SCOPE,
    THROTTLE_KEYS,
    VARS,
    Z_ANOMALOUS,
    Variable,
    _harm,
)
from analysis.types import Factor, GpuRef, Incident


def _metric_name(var: Variable, group: Group, prepared: _Prepared) -> str:
    """Return the metric name a factor is named by (the topology key for components)."""
    if var.scope in COMPONENT_ROLES:
        cid = group.components.get(var.scope, "")
        return prepared.component_metrics.get((cid, var.key), var.metric)
    return var.metric


def _entity_of(var: Variable, group: Group) -> str:
    """Return the entity a factor belongs to."""
    if var.scope in COMPONENT_ROLES:
        return group.components.get(var.scope, group.entity)
    if var.scope == NODE_SCOPE:
        return group.nodes[0] if len(group.nodes) == 1 else group.entity
    return group.gpus[0] if len(group.gpus) == 1 else group.entity


def _fmt(value: float) -> str:
    """Format a number compactly."""
    a = abs(value)
    if a >= 100:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}".removesuffix(".0")
    return f"{value:.2f}".rstrip("0").rstrip(".") if a else "0"


def _describe(
    var: Variable,
    value: Any,
    ref: Any,
    group: Group,
    prepared: _Prepared,
) -> str:
    """Describe one variable's deviation in a short human phrase."""
    if value is None or ref is None or math.isnan(float(value)) or math.isnan(float(ref)):
        return var.label
    v, r = float(value), float(ref)
    if var.key in THROTTLE_KEYS:
        return f"{var.label} {v * 100:.0f} % of the time (normally {r * 100:.0f} %)"
    if var.key == "fan":
        sensor, change, rpm, siblings = _worst_fan(group, prepared)
        if sensor and not math.isnan(change):
            return (
                f"{sensor} speed {change * 100:+.0f} % ({rpm:.0f} rpm vs {siblings:.0f} rpm "
                "for its siblings)"
            )
    if var.relative and abs(r) > 1e-9:
        pct = (v - r) / abs(r) * 100
        return f"{var.label} {pct:+.0f} % ({_fmt(v)} {var.unit} vs {_fmt(r)} {var.unit})"
    if var.counter:
        return f"{var.label} {_fmt(v)}{var.unit} vs {_fmt(r)} normally"
    if var.unit:
        return f"{var.label} {v - r:+.1f} {var.unit} ({_fmt(v)} vs {_fmt(r)} {var.unit})"
    return f"{var.label} {_fmt(v)} vs {_fmt(r)}"


def _short(
    var: Variable, value: Any, ref: Any, group: Group, prepared: _Prepared
) -> tuple[str, str]:
    """Return a factor's short label and change, e.g. ("FAN2 speed", "-38 %")."""
    if var.key == "fan":
        sensor, change, _rpm, _sib = _worst_fan(group, prepared)
        if sensor and not math.isnan(change):
            return f"{sensor} speed", f"{change * 100:+.0f} %"
    if value is None or ref is None or math.isnan(float(value)) or math.isnan(float(ref)):
        return var.label, ""
    v, r = float(value), float(ref)
    if var.relative and abs(r) > 1e-9:
        return var.label, f"{(v - r) / abs(r) * 100:+.0f} %"
    if var.counter:
        return var.label, f"{_fmt(v)}{var.unit}, normally {_fmt(r)}"
    if not var.unit:  # an event flag (XID seen, remap failure)
        return var.label, ""
    return var.label, f"{v - r:+.1f} {var.unit}".rstrip()


def _peer_note(group: Group, prepared: _Prepared, graph: nx.DiGraph) -> str:
    """Say how much hotter a GPU runs than its peers on the node, and at what power."""
    if len(group.gpus) != 1:
        return ""
    key = group.gpus[0]
    rows = prepared.rows
    if rows.empty or "temp" not in rows.columns:
        return ""
    node = GpuRef.parse(key).node
    keys = rows.index.get_level_values("key")
    peers = [k for k in keys.unique() if k != key and GpuRef.parse(k).node == node]
    if not peers:
        return ""
    last_ts = rows.index.get_level_values("ts").unique().sort_values()[-5:]
    recent = rows[rows.index.get_level_values("ts").isin(last_ts)]
    rk = recent.index.get_level_values("key")
    own = recent[rk == key]
    other = recent[rk.isin(peers)]
    if own.empty or other.empty:
        return ""
    dt = float(own["temp"].median() - other.groupby(level="key")["temp"].median().median())
    if abs(dt) < 2:
        return ""
    word = "hotter" if dt > 0 else "cooler"
    power_note = ""
    if "power" in recent.columns:
        p_own = float(own["power"].median())
        p_peer = float(other.groupby(level="key")["power"].median().median())
        if p_peer > 0:
            dp = (p_own - p_peer) / p_peer
            power_note = " at the same power" if abs(dp) < 0.1 else f" at {dp * 100:+.0f} % power"
    n = len(peers)
    return f"runs {abs(dt):.0f} °C {word} than its {n} peer{'s' if n != 1 else ''}{power_note}"


_SYMPTOMS: Mapping[str, tuple[str, str]] = {
    "power_violation": ("power_violation", "power violations"),
    "thermal_violation": ("thermal_violation", "thermal throttling"),
    "temp": ("temp", "high temperatures"),
    "power": ("power", "abnormal power draw"),
    "xid_memory": ("xid_memory", "memory XIDs"),
    "sbe": ("sbe", "ECC errors"),
    "nvlink": ("nvlink", "NVLink errors"),
    "xid_nvlink": ("xid_nvlink", "XID 74"),
    "pcie": ("pcie", "PCIe replays"),
    "util": ("util", "utilisation changes"),
}


def _symptom_phrase(group: Group, prepared: _Prepared, subsystem: str | None) -> str:
    """Count the group's GPUs showing the subsystem's most telling symptom."""
    rows = prepared.rows
    if rows.empty:
        return ""
    keys = rows.index.get_level_values("key")
    part = rows[keys.isin(group.gpus)]
    if part.empty:
        return ""
    prefs = {
        "power": ("power_violation", "power", "util"),
        "thermal": ("thermal_violation", "temp"),
        "memory": ("xid_memory", "sbe"),
        "network": ("nvlink", "xid_nvlink", "util"),
        "pcie": ("pcie",),
    }.get(subsystem or "", ())
    last = part.groupby(level="key").tail(5).groupby(level="key").median()
    early = part.groupby(level="key").head(max(5, len(part) // (4 * max(1, len(group.gpus)))))
    base = early.groupby(level="key").median()
    best: tuple[int, str, set[str]] | None = None  # the symptom shown by the most GPUs
    for col in prefs:
        if col not in last.columns:
            continue
        v = VARS[col]
        if v.counter or col.startswith("xid_"):
            hit = last[col] > 0
        else:
            hit = (last[col] - base[col]).abs() > 3 * v.min_scale
        n = int(hit.sum())
        if n and (best is None or n > best[0]):
            best = (n, col, {GpuRef.parse(str(k)).node for k in hit[hit].index})
    if best is None:
        return ""
    n, col, nodes = best
    return (
        f"{n} GPU{'s' if n != 1 else ''} on {len(nodes)} node{'s' if len(nodes) != 1 else ''} "
        f"show{'s' if n == 1 else ''} {_SYMPTOMS[col][1]}"
    )


def _headline(var: Variable, value: Any, ref: Any, group: Group, prepared: _Prepared) -> str:
    """A short phrase for the most telling deviation of a component or node."""
    if var.key == "fan":
        sensor, change, rpm, siblings = _worst_fan(group, prepared)
        if sensor and not math.isnan(change):
            return (
                f"{sensor} fell {abs(change) * 100:.0f} % below normal ({rpm:.0f} rpm vs "
                f"{siblings:.0f} rpm for its siblings)"
            )
    if value is None or ref is None or math.isnan(float(value)) or math.isnan(float(ref)):
        return ""
    v, r = float(value), float(ref)
    if var.relative and abs(r) > 1e-9:
        pct = (v - r) / abs(r) * 100
        verb = "fell" if pct < 0 else "rose"
        return f"{var.label} {verb} {abs(pct):.0f} % ({_fmt(v)} {var.unit} vs {_fmt(r)} {var.unit})"
    if var.counter:
        return f"{var.label} at {_fmt(v)}{var.unit} (normally {_fmt(r)})"
    verb = "rose" if v > r else "fell"
    return f"{var.label} {verb} {abs(v - r):.1f} {var.unit} ({_fmt(v)} vs {_fmt(r)} {var.unit})"


def _summary(
    *,
    incident: Incident,
    group: Group,
    subsystem: str | None,
    target: str | None,
    sample: pd.Series,
    ref: Mapping[str, float],
    z: pd.Series,
    factors: Sequence[Factor],
    top_key: str | None,
    peer_note: str,
    prepared: _Prepared,
) -> str:
    """Write the one-line summary a human reads in two seconds."""
    kind = incident.root_cause.kind
    lead_key: str | None = None
    if kind == GPU_SCOPE:
        ref_gpu = GpuRef.parse(incident.root_cause.id)
        head = f"GPU {ref_gpu.gpu} on {ref_gpu.node}"
        what = peer_note if subsystem == "thermal" and peer_note else ""
        if not what and target is not None:
            what = _describe(VARS[target], sample.get(target), ref.get(target), group, prepared)
            lead_key = target
        lead = f"{head} {what}" if what.startswith("runs") else f"{head}: {what}" if what else head
    else:
        # the entity's own deviation: its component metric, else the node's, else the target
        # (the root cause is given, so a milder deviation of its own metric is worth leading with)
        harm = _harm(z)
        own = [k for k, h in harm.items() if VARS[k].scope == kind and h >= Z_ANOMALOUS - 1]
        own.sort(key=lambda k: -harm[k])
        key = own[0] if own else target
        phrase = _headline(VARS[key], sample.get(key), ref.get(key), group, prepared) if key else ""
        lead_key = key if phrase else None
        lead = f"{incident.root_cause.id}: {phrase}" if phrase else f"{incident.root_cause.id}"
        symptoms = _symptom_phrase(group, prepared, subsystem)
        if symptoms:
            lead += f"; {symptoms}"
        elif group.gpus:
            n = len(group.gpus)
            lead += f"; {n} GPU{'s' if n != 1 else ''} on {len(group.nodes)} node{'s' if len(group.nodes) != 1 else ''} affected"
    if factors and top_key is not None:
        top = factors[0]
        var = VARS[top_key]
        label, change = _short(var, sample.get(top_key), ref.get(top_key), group, prepared)
        change = f" ({change})" if change else ""
        if (top_key == target and kind != GPU_SCOPE) or top_key == lead_key:
            change = ""
        if top.basis == "detector":
            return f"{lead}; flagged by the detector: {label} (no causal attribution possible)"
        if top.basis == "attribution":
            if top_key == "temp" and kind == GPU_SCOPE:
                return (
                    f"{lead}; {top.share * 100:.0f} % of the anomaly is the GPU's own heat, not its "
                    "power, fans or inlet air (thermal interface?)"
                )
            return (
                f"{lead}; {top.share * 100:.0f} % of the anomaly is attributed to {label}{change}"
            )
        return f"{lead}; most deviant: {label}{change} (no causal attribution possible)"
    return lead
