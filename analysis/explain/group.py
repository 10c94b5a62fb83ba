"""The group an incident is explained on: its GPUs, their nodes and their upstream components."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import networkx as nx

from analysis.explain.template import COMPONENT_ROLES, GPU_SCOPE
from analysis.types import FleetFrames, GpuRef


@dataclass(frozen=True)
class Group:
    """The entity an incident is explained on: its GPUs, nodes and upstream components."""

    entity: str
    kind: str
    gpus: tuple[str, ...]
    nodes: tuple[str, ...]
    components: Mapping[str, str]  # component kind -> component id


def _gpus_behind(graph: nx.DiGraph, entity: str) -> list[str]:
    """Return the GPU keys depending on ``entity`` (itself if a GPU)."""
    if entity not in graph:
        return []
    if graph.nodes[entity].get("kind") == GPU_SCOPE:
        return [entity]
    return sorted(
        n for n in nx.descendants(graph, entity) if graph.nodes[n].get("kind") == GPU_SCOPE
    )


def _group_of(graph: nx.DiGraph, entity: str, kind: str, gpus: Sequence[str]) -> Group:
    """Describe the group an incident is explained on."""
    keys = tuple(sorted(gpus))
    nodes = tuple(sorted({GpuRef.parse(k).node for k in keys}))
    comps: dict[str, str] = {}
    if kind in COMPONENT_ROLES:
        comps[kind] = entity
    for node in nodes:
        if node not in graph:
            continue
        for pred in graph.predecessors(node):
            pk = graph.nodes[pred].get("kind")
            if pk in COMPONENT_ROLES and pk not in comps:
                comps[pk] = pred
    return Group(entity=entity, kind=kind, gpus=keys, nodes=nodes, components=comps)


def _restrict(frames: FleetFrames, group: Group) -> FleetFrames:
    """Keep only the group's nodes (its GPUs and their peers) and components."""
    nodes = list(group.nodes)
    comps = list(group.components.values())
    return FleetFrames(
        gpu=frames.gpu[frames.gpu["node"].isin(nodes)],
        node=frames.node[frames.node["node"].isin(nodes)],
        component=frames.component[frames.component["component"].isin(comps)],
        up=frames.up,
        start=frames.start,
        end=frames.end,
        step=frames.step,
    )
