"""Which nodes a model fit learns from when the fleet is too large to fit on whole.

A fit reads ``fit_window`` of raw history for every GPU it learns from; past a few thousand GPUs
that history, not the fit itself, is the cost (24 h at one-minute steps is 1,440 samples per
series). :func:`sample_nodes` picks *whole nodes* (a GPU's node peers stay together, so the peer
features are computed exactly as at scoring time) stratified by rack and GPU model, so every
rack and model keeps its share of the fleet, with a deterministic draw for a given
``random_state``. :func:`fit_graph` is the fleet's dependency graph cut down to those nodes' GPUs
(every rack, node and component stays). Pure: graphs in, node names and graphs out.

How the draw works (proportional stratified sampling): ``k`` nodes are drawn, as many nodes of
the fleet's average size as fit in ``max_gpus``. Each ``(rack, model)`` stratum gets the floor
of its proportional share of ``k``, plus one more with the chance of the share's fraction (so
the counts add up to ``k``, and a stratum smaller than one share, a rack of a rare model, is
still drawn as often as its share says); its nodes are drawn at random without replacement.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import networkx as nx
import numpy as np

__all__ = ["fit_graph", "gpus_per_node", "sample_nodes"]


def gpus_per_node(graph: nx.DiGraph) -> dict[str, int]:
    """Return each node of ``graph`` that hosts GPUs with its number of GPUs."""
    counts: Counter[str] = Counter(
        str(d["node"]) for _, d in graph.nodes(data=True) if d.get("kind") == "gpu"
    )
    return dict(counts)


def sample_nodes(
    graph: nx.DiGraph,
    max_gpus: int,
    *,
    models: Mapping[str, str] | None = None,
    random_state: int | None = 0,
) -> tuple[str, ...]:
    """Return about ``max_gpus`` GPUs' worth of whole nodes, stratified by rack and GPU model.

    Parameters
    ----------
    graph : nx.DiGraph
        The fleet's dependency graph (:func:`analysis.graph.build_graph`): GPU entities carry
        ``node``, node entities ``rack``.
    max_gpus : int
        How many GPUs the sample may hold, about (whole nodes: the total is the number of
        nodes of the fleet's average size that fit, whatever the sizes drawn).
    models : Mapping[str, str], optional
        GPU model per node (DCGM ``modelName``); default: each node entity's ``model`` in the
        graph (``build_graph``'s). Nodes of no known model form their own stratum within their
        rack.
    random_state : int or None
        Seed of the draw: the same graph, cap and seed always give the same nodes.

    Returns
    -------
    tuple of str
        Node names, sorted. Every node with GPUs when the fleet holds at most ``max_gpus``.

    Raises
    ------
    ValueError
        When ``max_gpus`` is below 1.
    """
    if max_gpus < 1:
        raise ValueError(f"max_gpus must be at least 1, got {max_gpus}")
    sizes = gpus_per_node(graph)
    total = sum(sizes.values())
    if total <= max_gpus:
        return tuple(sorted(sizes))
    strata: dict[tuple[str, str], list[str]] = {}
    for node in sorted(sizes):
        attrs = graph.nodes[node] if node in graph else {}
        model = attrs.get("model") if models is None else models.get(node)
        strata.setdefault((str(attrs.get("rack") or ""), str(model or "")), []).append(node)
    rng = np.random.default_rng(random_state)
    keys = sorted(strata)
    wanted = max(1, int(max_gpus * len(sizes) / total))
    quota = np.array([wanted * len(strata[k]) / len(sizes) for k in keys])
    counts = np.floor(quota).astype(int)
    counts += _round_up(quota - counts, rng)
    picked: list[str] = []
    for key, k in zip(keys, counts, strict=True):
        members = strata[key]
        picked += [members[i] for i in rng.choice(len(members), size=int(k), replace=False)]
    return tuple(sorted(picked))


def _round_up(fractions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Which strata get one node more than the floor of their quota: 1 or 0 each.

    As many as the fractions add up to, each stratum with the chance of its fraction
    (systematic sampling over the fractions in a random order, from a random start).
    """
    extra = np.zeros(len(fractions), dtype=int)
    n = round(float(fractions.sum()))
    if n == 0:
        return extra
    order = rng.permutation(len(fractions))
    ends = np.cumsum(fractions[order])
    points = rng.uniform(0.0, 1.0) + np.arange(n)
    hit = np.searchsorted(ends, points, side="right")
    extra[order[np.minimum(hit, len(order) - 1)]] = 1
    return extra


def fit_graph(graph: nx.DiGraph, nodes: tuple[str, ...] | frozenset[str]) -> nx.DiGraph:
    """Return ``graph`` with only the GPUs of ``nodes`` (every other entity and edge kept)."""
    keep = set(nodes)
    return nx.DiGraph(
        graph.subgraph(
            n for n, d in graph.nodes(data=True) if d.get("kind") != "gpu" or d.get("node") in keep
        )
    )
