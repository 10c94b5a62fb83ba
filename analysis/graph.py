"""The hardware dependency graph: component -> rack -> node -> GPU, as a networkx DiGraph.

Components link to the nodes they serve (not to the rack), so a node-level override of its
PDU is honoured. Edges point downstream (from what is depended on to what depends on it), so a node's
ancestors are what it depends on and its descendants are its blast radius. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import networkx as nx

from analysis.types import GpuRef, Topology


def build_graph(
    topology: Topology, gpus: Iterable[GpuRef] = (), models: Mapping[str, str] | None = None
) -> nx.DiGraph:
    """Build the dependency graph from a topology and the GPUs seen in the metrics.

    Nodes carry ``kind`` (gpu, node, rack, pdu, cooling, switch); GPU nodes are keyed
    ``<node>/<gpu>``. Nodes seen in metrics but missing from the topology are added with no
    upstream components, so they are still scored, only without shared context. ``models``:
    each node's GPU model where known (dcgm-exporter's ``modelName``), kept as the node's
    ``model`` (GPUs are compared at equal power only with peers of their model).
    """
    models = models or {}
    g: nx.DiGraph = nx.DiGraph()
    for rack in topology.racks:
        g.add_node(rack.id, kind="rack")
        for node in rack.nodes:
            g.add_node(node, kind="node", rack=rack.id, model=models.get(node))
            g.add_edge(rack.id, node, role="contains")
            for role, comps in topology.upstream_of(node).items():
                for cid in comps:
                    g.add_node(cid, kind=topology.component_kind(cid))
                    g.add_edge(cid, node, role=role)
    for cid, comp in topology.components.items():
        if cid not in g:
            g.add_node(cid, kind=comp.kind)
    for ref in gpus:
        if ref.node not in g:
            g.add_node(ref.node, kind="node", rack=None, model=models.get(ref.node))
        g.add_node(ref.key, kind="gpu", node=ref.node, gpu=ref.gpu)
        g.add_edge(ref.node, ref.key, role="hosts")
    return g


def kind_of(graph: nx.DiGraph, entity: str) -> str:
    """Return the kind of an entity in the graph; raise KeyError if it is unknown."""
    return str(graph.nodes[entity]["kind"])


def depends_on(graph: nx.DiGraph, entity: str) -> set[str]:
    """Return everything ``entity`` depends on (all its ancestors)."""
    return set(nx.ancestors(graph, entity))


def blast_radius(graph: nx.DiGraph, entity: str) -> set[str]:
    """Return everything that goes down with ``entity`` (all its descendants)."""
    return set(nx.descendants(graph, entity))


def gpus_behind(graph: nx.DiGraph, entity: str) -> list[str]:
    """Return the GPU keys that depend on ``entity`` (itself if it is a GPU), sorted."""
    if graph.nodes[entity]["kind"] == "gpu":
        return [entity]
    return sorted(n for n in nx.descendants(graph, entity) if graph.nodes[n]["kind"] == "gpu")
