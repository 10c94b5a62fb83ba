"""The fit's sample of nodes: whole nodes, every rack and GPU model in proportion, reproducible."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from analysis.fit_sample import fit_graph, gpus_per_node, sample_nodes
from analysis.graph import build_graph
from analysis.types import GpuRef, Topology
from storage.simulator import FleetSimulator, FleetSpec


def _fleet(racks: int, nodes_per_rack: int, gpus_per_node: int) -> FleetSimulator:
    """A simulated fleet (only its layout is used: topology and node names)."""
    spec = FleetSpec(racks=racks, nodes_per_rack=nodes_per_rack, gpus_per_node=gpus_per_node)
    start = datetime(2026, 11, 3, tzinfo=UTC)
    return FleetSimulator(spec, start=start, duration=timedelta(minutes=10), seed=3)


@pytest.fixture(scope="module")
def fleet() -> tuple[Topology, list[GpuRef]]:
    """A 12-rack, 8-node-per-rack, 8-GPU fleet: 768 GPUs on 96 nodes."""
    sim = _fleet(12, 8, 8)
    gpus = [GpuRef(n, str(g)) for n in sim.spec.node_names for g in range(8)]
    return sim.topology, gpus


def test_a_fleet_under_the_cap_is_fitted_whole(fleet: tuple[Topology, list[GpuRef]]) -> None:
    topology, gpus = fleet
    graph = build_graph(topology, gpus)
    assert sample_nodes(graph, 768) == tuple(sorted({g.node for g in gpus}))


def test_the_sample_is_whole_nodes_from_every_rack(fleet: tuple[Topology, list[GpuRef]]) -> None:
    topology, gpus = fleet
    graph = build_graph(topology, gpus)
    nodes = sample_nodes(graph, 192, random_state=7)  # a quarter of the fleet
    assert len(nodes) == 24 and len(set(nodes)) == 24
    assert sum(gpus_per_node(graph)[n] for n in nodes) == 192
    racks = Counter(graph.nodes[n]["rack"] for n in nodes)
    assert len(racks) == 12 and set(racks.values()) == {2}  # 2 of each rack's 8 nodes
    sub = fit_graph(graph, nodes)
    kept = {d["node"] for _, d in sub.nodes(data=True) if d.get("kind") == "gpu"}
    assert kept == set(nodes)
    # every GPU of a sampled node is there (node peers intact), and every non-GPU entity
    assert sum(1 for _, d in sub.nodes(data=True) if d.get("kind") == "gpu") == 192
    others = {n for n, d in graph.nodes(data=True) if d.get("kind") != "gpu"}
    assert others <= set(sub.nodes)


def test_the_same_seed_draws_the_same_nodes_and_another_seed_others(
    fleet: tuple[Topology, list[GpuRef]],
) -> None:
    topology, gpus = fleet
    graph = build_graph(topology, gpus)
    a = sample_nodes(graph, 100, random_state=1)
    assert a == sample_nodes(build_graph(topology, list(reversed(gpus))), 100, random_state=1)
    assert a != sample_nodes(graph, 100, random_state=2)
    assert len(a) == 12  # 100 GPUs are 12 whole 8-GPU nodes


def test_each_rack_and_gpu_model_keeps_its_share(fleet: tuple[Topology, list[GpuRef]]) -> None:
    """A quarter of the nodes (2 of each rack's 8) hold another GPU model.

    Each (rack, model) stratum gets the floor or the ceiling of its share (0.5 A100 and 1.5 H100
    nodes per rack); over many draws the model's share of the sample is its share of the fleet.
    """
    topology, gpus = fleet
    graph = build_graph(topology, gpus)
    nodes = sorted(gpus_per_node(graph))
    models = {n: ("H100" if i % 4 else "A100") for i, n in enumerate(nodes)}
    a100 = []
    for seed in range(40):
        drawn = sample_nodes(graph, 192, models=models, random_state=seed)
        assert len(drawn) == 24
        cells = Counter((graph.nodes[n]["rack"], models[n]) for n in drawn)
        for rack in {graph.nodes[n]["rack"] for n in nodes}:
            assert cells[(rack, "A100")] in (0, 1) and cells[(rack, "H100")] in (1, 2)
        a100.append(sum(models[n] == "A100" for n in drawn))
    assert 5.0 <= sum(a100) / len(a100) <= 7.0  # a quarter of 24


def test_a_rare_model_is_not_always_left_out() -> None:
    """One node of a model in the whole fleet: drawn as often as its share says, not never."""
    sim = _fleet(4, 8, 4)
    gpus = [GpuRef(n, str(g)) for n in sim.spec.node_names for g in range(4)]
    graph = build_graph(sim.topology, gpus)
    rare = sim.spec.node_names[5]
    models = {n: "A100" if n == rare else "H100" for n in sim.spec.node_names}
    hits = sum(rare in sample_nodes(graph, 32, models=models, random_state=s) for s in range(200))
    assert 30 <= hits <= 70  # 8 of 32 nodes are drawn: a 1-in-4 chance


def test_a_cap_below_one_gpu_is_refused(fleet: tuple[Topology, list[GpuRef]]) -> None:
    topology, gpus = fleet
    with pytest.raises(ValueError, match="max_gpus must be at least 1"):
        sample_nodes(build_graph(topology, gpus), 0)
