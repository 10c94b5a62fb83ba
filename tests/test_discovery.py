"""Topology from metric labels (kube_node_labels) merged with a PDU/CRAC-only topology file.

A real VictoriaMetrics holds the hand-written fleet plus kube-state-metrics' ``kube_node_labels``
series saying each node's rack (zone label) and leaf switch (NVIDIA network topology label).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import pytest
import requests
from typer.testing import CliRunner

from analysis.graph import build_graph
from analysis.types import GpuRef
from bot.cli import build_app
from bot.config import ConfigError, load_settings
from bot.wiring import discover_topology_of, load_topology_of
from storage.discovery import (
    DiscoveryError,
    LabelFacts,
    LabelSource,
    merge_topology,
    parse_label_sources,
)
from storage.metrics import PrometheusSource
from storage.topology import TopologyError, load_topology
from tests.fixtures import fleetdata as fd
from tests.fixtures.prometheus import (
    Dataset,
    Server,
    import_into_victoria,
    start_victoria,
)

pytest_plugins = ("tests.fixtures.prometheus",)

ZONE = "label_topology_kubernetes_io_zone"
LEAF = "label_network_topology_nvidia_com_leaf"
LABELS = {"rack": f"kube_node_labels:{ZONE}", "switch": f"kube_node_labels:{LEAF}"}

#: What labels cannot say: the PDU and cooling unit of each rack, and their PromQL. No nodes.
PDU_CRAC_ONLY = """\
racks:
  - {id: rack-a1, power: [pdu-a1], cooling: [crac-1]}
  - {id: rack-a2, power: [pdu-a2], cooling: [crac-2]}
components:
  pdu-a1: {kind: pdu, metrics: {output_watts: 'pdu_output_watts{pdu="pdu-a1"}'}}
  pdu-a2: {kind: pdu, metrics: {output_watts: 'pdu_output_watts{pdu="pdu-a2"}'}}
  crac-1: {kind: cooling, metrics: {supply_temp_celsius: 'crac_supply_air_celsius{unit="crac-1"}'}}
  crac-2: {kind: cooling, metrics: {supply_temp_celsius: 'crac_supply_air_celsius{unit="crac-2"}'}}
"""


def kube_node_lines(extra: str = "", rename: str = "") -> list[str]:
    """kube_node_labels of the fleet's nodes over its history, Prometheus text (ms timestamps).

    ``extra``: labels added to each series (``cluster="a"``); ``rename``: prefix replacing
    ``gpu-node-`` in node names (another cluster's nodes).
    """
    lines = []
    for i, (rack, nodes) in enumerate(fd.RACKS.items(), start=1):
        for node in nodes:
            name = node.replace("gpu-node-", rename) if rename else node
            labels = (
                f'node="{name}",{ZONE}="{rack}",{LEAF}="leaf-a{i}",'
                f'label_kubernetes_io_hostname="{name}",job="kube-state-metrics"'
            )
            if extra:
                labels += "," + extra
            step = int(fd.STEP.total_seconds())
            for t in range(0, int(fd.DURATION.total_seconds()) + 1, step):
                ms = int((fd.START.timestamp() + t) * 1000)
                lines.append(f"kube_node_labels{{{labels}}} 1 {ms}")
    return lines


def post_lines(server: Server, lines: list[str]) -> None:
    """Import Prometheus text lines into VictoriaMetrics and flush."""
    for i in range(0, len(lines), 100_000):
        body = ("\n".join(lines[i : i + 100_000]) + "\n").encode()
        requests.post(server.url + "/api/v1/import/prometheus", data=body, timeout=60)
    requests.get(server.url + "/internal/force_flush", timeout=30).raise_for_status()


@pytest.fixture(scope="module")
def labelled_victoria(
    tmp_path_factory: pytest.TempPathFactory, fleet_dataset: Dataset
) -> Iterator[Server]:
    """VictoriaMetrics with the fleet's history and its nodes' kube_node_labels."""
    server = start_victoria(tmp_path_factory.mktemp("vm-labels") / "vmdata")
    try:
        import_into_victoria(server, fleet_dataset.openmetrics)
        post_lines(server, kube_node_lines())
        yield server
    finally:
        server.stop()


def _files(tmp_path: Path) -> Path:
    path = tmp_path / "pdu-crac.yaml"
    path.write_text(PDU_CRAC_ONLY, encoding="utf-8")
    return path


def _gpus() -> list[GpuRef]:
    return [GpuRef(n, str(g)) for ns in fd.RACKS.values() for n in ns for g in range(4)]


def _same_graph(a: nx.DiGraph, b: nx.DiGraph) -> None:
    assert sorted(a.nodes(data=True)) == sorted(b.nodes(data=True))
    assert sorted(a.edges(data=True)) == sorted(b.edges(data=True))


@pytest.mark.victoriametrics
def test_labels_plus_pdu_file_give_the_file_based_graph(
    labelled_victoria: Server, fleet_dataset: Dataset, tmp_path: Path
) -> None:
    settings = load_settings(
        prometheus_url=labelled_victoria.url,
        topology=_files(tmp_path),
        topology_labels=LABELS,
        prometheus_retries=0,
    )
    found = discover_topology_of(settings, at=fd.SCAN_AT)
    expected = load_topology(fleet_dataset.topology)
    _same_graph(build_graph(found.topology, _gpus()), build_graph(expected, _gpus()))
    assert found.conflicts == ()
    assert found.node_from == dict.fromkeys(expected.nodes, "labels")
    assert found.role_from[("gpu-node-001", "network")] == "labels"
    assert found.role_from[("gpu-node-001", "power")] == "file"
    assert found.rack_from == {"rack-a1": "file+labels", "rack-a2": "file+labels"}
    # wiring: run/scan/backtest get the merged topology
    assert load_topology_of(settings, at=fd.SCAN_AT) == found.topology
    # ... and the reader fetches the components' PromQL from the file through it
    src = PrometheusSource(labelled_victoria.url, topology=found.topology, retries=0)
    frames = src.fetch(fd.SCAN_AT - fd.STEP * 10, fd.SCAN_AT, fd.STEP)
    assert set(frames.component["component"]) == {"pdu-a1", "pdu-a2", "crac-1", "crac-2"}


@pytest.mark.victoriametrics
def test_labels_alone_give_racks_and_switches(labelled_victoria: Server) -> None:
    settings = load_settings(
        prometheus_url=labelled_victoria.url, topology_labels=LABELS, prometheus_retries=0
    )
    topo = discover_topology_of(settings, at=fd.SCAN_AT).topology
    assert {r.id: r.nodes for r in topo.racks} == fd.RACKS
    assert [r.network for r in topo.racks] == [("leaf-a1",), ("leaf-a2",)]
    assert [r.power for r in topo.racks] == [(), ()]


@pytest.mark.victoriametrics
def test_the_file_wins_a_conflict_and_it_is_reported(
    labelled_victoria: Server, tmp_path: Path
) -> None:
    path = tmp_path / "conflict.yaml"
    path.write_text(
        PDU_CRAC_ONLY.replace(
            "{id: rack-a1, power", "{id: rack-a1, nodes: [gpu-node-003], network: [spine-1], power"
        ),
        encoding="utf-8",
    )
    settings = load_settings(
        prometheus_url=labelled_victoria.url,
        topology=path,
        topology_labels=LABELS,
        prometheus_retries=0,
    )
    found = discover_topology_of(settings, at=fd.SCAN_AT)
    topo = found.topology
    assert topo.rack_of("gpu-node-003") is not None
    assert topo.rack_of("gpu-node-003").id == "rack-a1"  # type: ignore[union-attr]
    assert topo.upstream_of("gpu-node-001")["network"] == ("spine-1",)
    assert topo.upstream_of("gpu-node-004")["network"] == ("leaf-a2",)
    assert found.node_from["gpu-node-003"] == "file"
    text = "\n".join(found.conflicts)
    assert "gpu-node-003: labels say rack rack-a2" in text and "using the file" in text
    assert "labels say switch leaf-a1" in text


@pytest.mark.victoriametrics
def test_topology_show_prints_where_each_fact_came_from(
    labelled_victoria: Server, tmp_path: Path
) -> None:
    env = {
        "GPU_RISK_PROMETHEUS_URL": labelled_victoria.url,
        "GPU_RISK_TOPOLOGY": str(_files(tmp_path)),
        "GPU_RISK_TOPOLOGY_LABELS": json.dumps(LABELS),
        "GPU_RISK_PROMETHEUS_RETRIES": "0",
        "COLUMNS": "200",
    }
    at = ["--at", "2026-11-20T02:50:00Z"]
    text = CliRunner().invoke(build_app(), ["topology", "show", *at], env=env)
    assert text.exit_code == 0, text.output
    out = text.output
    assert "    gpu-node-001  from labels" in out
    assert "  rack-a1  (from file and labels)" in out
    assert "  pdu-a1 (pdu) -> rack-a1  from file" in out
    assert "  leaf-a1 (switch, no metrics) -> rack-a1  from labels" in out
    js = CliRunner().invoke(build_app(), ["topology", "show", *at, "--format", "json"], env=env)
    assert js.exit_code == 0, js.output
    data = json.loads(js.output)
    node = data["racks"][0]["nodes"][0]
    assert node == {
        "name": "gpu-node-001",
        "from": "labels",
        "upstream": {
            "pdu": {"ids": ["pdu-a1"], "from": "file"},
            "cooling": {"ids": ["crac-1"], "from": "file"},
            "switch": {"ids": ["leaf-a1"], "from": "labels"},
        },
    }
    assert data["conflicts"] == []


@pytest.mark.victoriametrics
def test_no_labels_found_is_one_line(labelled_victoria: Server) -> None:
    env = {
        "GPU_RISK_PROMETHEUS_URL": labelled_victoria.url,
        "GPU_RISK_TOPOLOGY_LABELS": json.dumps({"rack": "kube_node_labels:label_no_such"}),
        "GPU_RISK_PROMETHEUS_RETRIES": "0",
    }
    result = CliRunner().invoke(
        build_app(), ["topology", "show", "--at", "2026-11-20T02:50:00Z"], env=env
    )
    assert result.exit_code == 2
    assert "no node has any of the mapped labels" in result.output
    assert "Traceback" not in result.output


def test_label_sources_are_validated() -> None:
    assert parse_label_sources({"switch": "node:labels:info:leaf"}) == (
        LabelSource("network", "node:labels:info", "leaf"),
    )
    for bad in ({"row": "m:l"}, {"rack": "no-colon"}, {"rack": "m:bad-label"}):
        with pytest.raises(DiscoveryError):
            parse_label_sources(bad)
    with pytest.raises(ConfigError, match="GPU_RISK_TOPOLOGY_LABELS"):
        load_settings(topology_labels={"row": "m:l"})


def test_a_partial_file_is_only_read_for_discovery(tmp_path: Path) -> None:
    path = _files(tmp_path)
    with pytest.raises(TopologyError, match="'nodes' must be a non-empty list"):
        load_topology(path)
    assert [r.nodes for r in load_topology(path, partial=True).racks] == [(), ()]


def test_merge_keeps_odd_nodes_as_node_overrides() -> None:
    facts = LabelFacts(
        roles={
            "n1": {"rack": "r1", "network": "leaf-1"},
            "n2": {"rack": "r1", "network": "leaf-1"},
            "n3": {"rack": "r1", "network": "leaf-2"},
            "n4": {"network": "leaf-9"},
        },
        sources=(LabelSource("rack", "m", "zone"), LabelSource("network", "m", "leaf")),
    )
    found = merge_topology(None, facts)
    topo = found.topology
    assert [(r.id, r.nodes, r.network) for r in topo.racks] == [
        ("r1", ("n1", "n2", "n3"), ("leaf-1",))
    ]
    assert topo.upstream_of("n3")["network"] == ("leaf-2",)
    assert any("n4" in note and "no rack label" in note for note in found.notes)
