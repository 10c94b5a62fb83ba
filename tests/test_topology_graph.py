"""Topology parsing and the dependency graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.graph import blast_radius, build_graph, depends_on, gpus_behind
from analysis.types import GpuRef
from storage.topology import TopologyError, dump_topology, load_topology, parse_topology

EXAMPLE = """
racks:
  - id: rack-a1
    nodes: [gpu-node-001, {name: gpu-node-002, power: [pdu-b1]}]
    power: [pdu-a1]
    cooling: [crac-1]
    network: [leaf-a1]
  - id: rack-a2
    nodes: [gpu-node-003]
    power: [pdu-a2]
    cooling: [crac-1]
    network: [leaf-a2]
components:
  pdu-a1: {kind: pdu, metrics: {output_watts: 'pdu_output_watts{pdu="pdu-a1"}'}}
  crac-1: {kind: cooling, metrics: {supply_temp_celsius: 'crac_supply_air_celsius{unit="crac-1"}'}}
"""


def _gpus() -> list[GpuRef]:
    return [GpuRef(f"gpu-node-00{n}", str(g)) for n in (1, 2, 3) for g in range(2)] + [
        GpuRef("stray-node", "0")
    ]


def test_parse_and_graph_answers_dependencies(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(EXAMPLE)
    topo = load_topology(path)
    assert topo.upstream_of("gpu-node-002")["power"] == ("pdu-b1",)
    assert topo.upstream_of("gpu-node-001")["power"] == ("pdu-a1",)
    g = build_graph(topo, _gpus())
    assert {"gpu-node-001", "rack-a1", "pdu-a1", "crac-1", "leaf-a1"} <= depends_on(
        g, "gpu-node-001/0"
    )
    assert "pdu-a1" not in depends_on(g, "gpu-node-002/0")
    assert gpus_behind(g, "crac-1") == [f"gpu-node-00{n}/{k}" for n in (1, 2, 3) for k in range(2)]
    assert "gpu-node-003/1" in blast_radius(g, "pdu-a2")
    # A node missing from the file is still in the graph, with no shared components.
    assert depends_on(g, "stray-node/0") == {"stray-node"}
    # GPUs of two racks share only their cooling unit.
    assert depends_on(g, "gpu-node-001/0") & depends_on(g, "gpu-node-003/1") == {"crac-1"}


def test_round_trip(tmp_path: Path) -> None:
    topo = parse_topology(__import__("yaml").safe_load(EXAMPLE))
    dump_topology(topo, tmp_path / "t.yaml")
    assert load_topology(tmp_path / "t.yaml") == topo


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("racks: []", "non-empty list"),
        ("racks: [{nodes: [a]}]", "racks[0]: missing 'id'"),
        ("racks: [{id: r, nodes: [a]}, {id: s, nodes: [a]}]", "already in rack r"),
        (
            "racks: [{id: r, nodes: [a], power: [c]}]\ncomponents: {c: {kind: cooling}}",
            "expected 'pdu'",
        ),
        ("racks: [{id: r, nodes: [a]}]\ncomponents: {c: {kind: toaster}}", "components.c: kind"),
        ("racks: [{id: r, nodes: [a], colour: red}]", "unknown key(s) ['colour']"),
        ("racks: [{id: r, nodes: [a]\n", "not valid YAML"),
    ],
)
def test_bad_files_name_the_place(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    with pytest.raises(TopologyError) as err:
        load_topology(path)
    assert needle in str(err.value)
    assert str(path) in str(err.value)


def test_kind_literals_match_the_catalogue() -> None:
    """The typed kinds of analysis.types are the catalogue's lists, in the same order."""
    from typing import get_args

    from analysis.catalog import COMPONENT_KINDS, ENTITY_KINDS
    from analysis.types import ComponentKind, EntityKind

    assert get_args(EntityKind) == ENTITY_KINDS
    assert get_args(ComponentKind) == COMPONENT_KINDS
