"""The dependency picture of an incident: root cause, what depends on it and the GPUs, as a PNG."""

from __future__ import annotations

from collections.abc import Mapping

import networkx as nx
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from analysis.plots.common import RISK_CMAP, _png
from analysis.types import GpuRef, Incident

LAYER_Y: Mapping[str, float] = {
    "pdu": 3.0,
    "cooling": 3.0,
    "switch": 3.0,
    "rack": 2.0,
    "node": 1.0,
    "gpu": 0.0,
}
MAX_GPU_BOXES = 24


def _node_of(graph: nx.DiGraph, key: str) -> str:
    """Return the node hosting a GPU key."""
    return str(graph.nodes[key].get("node") or GpuRef.parse(key).node)


def _entity_score(
    graph: nx.DiGraph, entity: str, scores: Mapping[str, float], root: str
) -> float | None:
    """Risk of an entity: its own score, else (root and below) its riskiest GPU; None = unknown."""
    if entity in scores:
        return float(scores[entity])
    if entity != root and (root not in graph or entity not in nx.descendants(graph, root)):
        return None
    behind = [n for n in nx.descendants(graph, entity) if graph.nodes[n].get("kind") == "gpu"]
    vals = [float(scores[g]) for g in behind if g in scores]
    return max(vals) if vals else 0.0


def _subgraph_entities(incident: Incident, graph: nx.DiGraph) -> tuple[list[str], list[str]]:
    """Return (upstream entities and nodes, GPUs) to draw for an incident."""
    root = incident.root_cause.id
    affected = [g.key for g in incident.gpus if g.key in graph]
    kind = incident.root_cause.kind
    if root in graph and kind == "gpu":
        nodes = [_node_of(graph, root)]
    elif root in graph and kind == "node":
        nodes = [root]
    elif root in graph:
        nodes = sorted(
            n for n in nx.descendants(graph, root) if graph.nodes[n].get("kind") == "node"
        )
    else:
        nodes = []
    nodes = sorted(set(nodes) | {_node_of(graph, k) for k in affected})
    upstream: set[str] = set()
    for node in nodes:
        upstream |= {p for p in graph.predecessors(node)}
    if root in graph and kind not in ("gpu", "node"):
        upstream.add(root)
    gpus = sorted(
        {g for node in nodes for g in graph.successors(node) if graph.nodes[g].get("kind") == "gpu"}
        | set(affected),
        key=lambda k: (_node_of(graph, k), GpuRef.parse(k).gpu.zfill(4)),
    )
    return sorted(upstream) + nodes, gpus


def render_incident_graph(
    incident: Incident, graph: nx.DiGraph, scores: Mapping[str, float]
) -> bytes:
    """Draw the incident's dependency subgraph (root cause, dependents, GPUs) as a PNG."""
    entities, gpus = _subgraph_entities(incident, graph)
    root = incident.root_cause.id
    affected = {g.key for g in incident.gpus}
    nodes = [e for e in entities if graph.nodes[e].get("kind") == "node"]
    collapse = len(gpus) > MAX_GPU_BOXES
    # leaves: one box per GPU, or one box per node's GPUs when there are many
    leaves: list[tuple[str, str, list[str]]] = []  # (leaf id, parent node, gpu keys)
    if collapse:
        for node in nodes:
            keys = [g for g in gpus if _node_of(graph, g) == node]
            if keys:
                leaves.append((f"{node}::gpus", node, keys))
    else:
        leaves = [(g, _node_of(graph, g), [g]) for g in gpus]
    pos: dict[str, tuple[float, float]] = {}
    pitch = 1.5 if collapse else 1.0  # a collapsed box is as wide as a node's name
    for i, (leaf, _node, _keys) in enumerate(leaves):
        pos[leaf] = (i * pitch, LAYER_Y["gpu"])
    for i, node in enumerate(nodes):
        xs = [pos[leaf][0] for leaf, parent, _ in leaves if parent == node]
        pos[node] = (float(np.mean(xs)) if xs else float(i), LAYER_Y["node"])
    upstream = [e for e in entities if e not in nodes]
    by_layer: dict[float, list[str]] = {}
    for ent in upstream:
        by_layer.setdefault(LAYER_Y.get(graph.nodes[ent].get("kind", ""), 3.0), []).append(ent)
    width_units = max(len(leaves) * pitch, len(nodes), 1)
    for y, ents in by_layer.items():
        ents.sort(
            key=lambda e: np.mean([pos[n][0] for n in graph.successors(e) if n in pos] or [0])
        )
        n = len(ents)
        for i, ent in enumerate(ents):
            kids = [pos[k][0] for k in graph.successors(ent) if k in pos]
            x = float(np.mean(kids)) if kids else (i + 0.5) * width_units / n
            # spread components that share the same children
            x += (i - (n - 1) / 2) * min(1.6, width_units / max(n, 1) * 0.9)
            pos[ent] = (x, y)
    xs = [p[0] for p in pos.values()]
    span = max(xs) - min(xs) if xs else 1.0
    fig = Figure(figsize=(min(16.0, max(9.0, 0.85 * (span + 3.9))), 5.2), dpi=100)
    ax = fig.add_axes((0.02, 0.08, 0.86, 0.8))
    ax.set_axis_off()
    norm = Normalize(0.0, 1.0)
    # edges
    drawn = set(pos)
    for a in drawn:
        if a not in graph:
            continue
        for b in graph.successors(a):
            if b in drawn and graph.nodes[b].get("kind") != "gpu":
                _edge(ax, pos[a], pos[b], strong=a == root)
    for leaf, parent, _keys in leaves:
        if parent in pos:
            _edge(ax, pos[parent], pos[leaf], strong=root in (parent, leaf))
    # boxes
    kinds_label = {"pdu": "PDU", "cooling": "cooling", "switch": "leaf switch", "rack": "rack"}
    for ent in entities:
        kind = str(graph.nodes[ent].get("kind"))
        score = _entity_score(graph, ent, scores, root)
        text = f"{ent}\n{kinds_label.get(kind, kind)}" if kind != "node" else ent
        if kind == "node" and len(nodes) > 10 and "-" in ent:
            head, _, tail = ent.rpartition("-")
            text = f"{head}-\n{tail}"  # two short lines keep many nodes legible
        colour = RISK_CMAP(norm(score)) if score is not None else (0.88, 0.88, 0.88, 1.0)
        _box(ax, pos[ent], text, colour, root=ent == root, fontsize=8.5)
    for leaf, _parent, keys in leaves:
        if collapse:
            vals = [float(scores.get(k, 0.0)) for k in keys]
            hit = sum(1 for k in keys if k in affected)
            text = f"{len(keys)} GPUs\nmax risk {max(vals):.2f}\n{hit} affected"
            _box(
                ax,
                pos[leaf],
                text,
                RISK_CMAP(norm(max(vals))),
                root=False,
                fontsize=7.5,
                bold=hit > 0,
            )
        else:
            key = keys[0]
            val = float(scores.get(key, 0.0))
            text = f"GPU {GpuRef.parse(key).gpu}\n{val:.2f}"
            _box(
                ax,
                pos[leaf],
                text,
                RISK_CMAP(norm(val)),
                root=key == root,
                fontsize=7.5,
                bold=key in affected,
            )
    ax.set_xlim(min(xs) - 1.9, max(xs) + 1.0)
    ax.set_ylim(-0.6, 3.6)
    for y, name in ((3.0, "facility"), (2.0, "rack"), (1.0, "node"), (0.0, "GPU")):
        if any(abs(p[1] - y) < 1e-6 for p in pos.values()):
            ax.text(
                min(xs) - 1.85,
                y,
                name,
                fontsize=8,
                color="#666666",
                va="center",
                ha="left",
                style="italic",
            )
    n = len(incident.gpus)
    fig.suptitle(
        f"{incident.title} — dependency view ({incident.severity}, risk {incident.score:.2f})",
        fontsize=12,
        fontweight="bold",
        x=0.45,
    )
    fig.text(
        0.45,
        0.9,
        f"root cause: {root} ({incident.root_cause.kind}); {n} affected GPU"
        f"{'s' if n != 1 else ''} in bold; red outline = root cause; grey = not scored",
        ha="center",
        fontsize=9,
        color="#333333",
    )
    cax = fig.add_axes((0.9, 0.15, 0.02, 0.65))
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=RISK_CMAP), cax=cax)
    bar.set_label("risk (0 = normal, 1 = failing)", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    return _png(fig)


def _edge(ax: object, a: tuple[float, float], b: tuple[float, float], *, strong: bool) -> None:
    """Draw a dependency arrow from ``a`` (depended on) to ``b``; the root cause's in red."""
    ax.annotate(  # type: ignore[attr-defined]
        "",
        xy=(b[0], b[1] + 0.22),
        xytext=(a[0], a[1] - 0.22),
        arrowprops={
            "arrowstyle": "-|>",
            "color": "#b00000" if strong else "#b5b5b5",
            "lw": 1.4 if strong else 0.7,
            "shrinkA": 0,
            "shrinkB": 0,
        },
    )


def _box(
    ax: object,
    xy: tuple[float, float],
    text: str,
    colour: tuple[float, float, float, float],
    *,
    root: bool,
    fontsize: float,
    bold: bool = False,
) -> None:
    """Draw one labelled, risk-coloured box; the root cause gets a thick red outline."""
    lum = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    ax.text(  # type: ignore[attr-defined]
        xy[0],
        xy[1],
        text,
        ha="center",
        va="center",
        fontsize=fontsize,
        fontweight="bold" if (bold or root) else "normal",
        color="black" if lum > 0.55 else "white",
        bbox={
            "boxstyle": "round,pad=0.35",
            "facecolor": colour,
            "edgecolor": "#b00000" if root else "#555555",
            "linewidth": 3.0 if root else 0.8,
        },
        zorder=3,
    )
