"""Root-cause grouping: one incident per explaining component, node or GPU."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import networkx as nx
import pandas as pd
import pytest

from analysis.graph import build_graph
from analysis.incidents import find_incidents, incident_id, per_gpu_incidents
from analysis.types import GpuRef, Rack, Topology
from tests.fixtures.handmade_fleet import topology

AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
THRESHOLD = 0.9


def _graph() -> nx.DiGraph:
    """2 racks x 2 nodes x 4 GPUs, each rack behind its own PDU, CRAC and leaf switch."""
    gpus = [GpuRef(f"gpu-node-00{n}", str(g)) for n in range(1, 5) for g in range(4)]
    return build_graph(topology(2, 2), gpus)


def _keys(graph: nx.DiGraph) -> list[str]:
    return sorted(n for n, d in graph.nodes(data=True) if d["kind"] == "gpu")


def _features(graph: nx.DiGraph, z: dict[str, dict[str, float]] | None = None) -> pd.DataFrame:
    """A feature table with all z-columns 0 except the given ones, and no flags raised."""
    keys = _keys(graph)
    cols = ["z.temp_vs_node", "z.volts_dip", "z.inlet_vs_fleet", "z.fan_spread", "z.pdu.x"]
    f = pd.DataFrame(0.0, index=keys, columns=cols)
    for col in ("fail_dbe", "fail_remap", "fail_xid_hw", "fail_vanished"):
        f[col] = False
    for key, values in (z or {}).items():
        for col, v in values.items():
            f.loc[key, col] = v
    return f


def _scores(graph: nx.DiGraph, risky: list[str], value: float = 0.95) -> dict[str, float]:
    return {k: (value if k in risky else 0.1) for k in _keys(graph)}


def _rack1(graph: nx.DiGraph) -> list[str]:
    return [k for k in _keys(graph) if k.startswith(("gpu-node-001", "gpu-node-002"))]


@pytest.mark.parametrize(
    ("column", "expected"),
    [("z.volts_dip", "pdu-a1"), ("z.pdu.x", "pdu-a1"), ("z.inlet_vs_fleet", "crac-a1")],
)
def test_rack_wide_risk_becomes_one_incident_naming_the_component_with_evidence(
    column: str, expected: str
) -> None:
    g = _graph()
    rack = _rack1(g)
    # harmful direction: a PDU voltage dips, the air gets warmer
    feats = _features(g, {k: {column: 12.0 if "inlet" in column else -12.0} for k in rack})
    incidents = find_incidents(_scores(g, rack), feats, g, AT, THRESHOLD)
    assert len(incidents) == 1
    inc = incidents[0]
    assert inc.root_cause.id == expected
    assert inc.root_cause.kind == g.nodes[expected]["kind"]
    assert sorted(s.key for s in inc.gpus) == rack
    assert inc.title == f"{expected}: 8 GPUs at risk"


def test_rack_wide_risk_without_component_evidence_names_the_rack() -> None:
    g = _graph()
    rack = _rack1(g)
    incidents = find_incidents(_scores(g, rack), _features(g), g, AT, THRESHOLD)
    assert [(i.root_cause.kind, i.root_cause.id) for i in incidents] == [("rack", "rack-a1")]


def test_component_with_own_anomaly_groups_fewer_gpus() -> None:
    # Only one GPU on each node of rack 1 is at risk (25 %), but the PDU's own metric deviates.
    g = _graph()
    risky = ["gpu-node-001/0", "gpu-node-002/3"]
    feats = _features(g, {k: {"z.pdu.x": 9.0} for k in _rack1(g)})
    incidents = find_incidents(_scores(g, risky), feats, g, AT, THRESHOLD)
    assert [(i.root_cause.id, len(i.gpus)) for i in incidents] == [("pdu-a1", 2)]
    # Without the PDU's own evidence they stay two GPU incidents.
    plain = find_incidents(_scores(g, risky), _features(g), g, AT, THRESHOLD)
    assert sorted(i.root_cause.id for i in plain) == risky


def test_node_level_problem_names_the_node() -> None:
    g = _graph()
    # Three of four GPUs on one node: a node problem.
    risky = ["gpu-node-003/0", "gpu-node-003/1", "gpu-node-003/2"]
    incidents = find_incidents(_scores(g, risky), _features(g), g, AT, THRESHOLD)
    assert [(i.root_cause.kind, i.root_cause.id) for i in incidents] == [("node", "gpu-node-003")]
    # One GPU at risk, but its node's fans deviate: still the node (a fan, not the GPU).
    feats = _features(g, {f"gpu-node-004/{i}": {"z.fan_spread": -40.0} for i in range(4)})
    incidents = find_incidents(_scores(g, ["gpu-node-004/2"]), feats, g, AT, THRESHOLD)
    assert [(i.root_cause.kind, i.root_cause.id) for i in incidents] == [("node", "gpu-node-004")]


def test_nodes_with_failing_fans_of_their_own_are_never_their_rack() -> None:
    # Both nodes of rack 1 at risk, each because one of its own fans is slower than its others:
    # two node faults, not the rack (nor its cooling unit, though the rack runs warm).
    g = _graph()
    rack = _rack1(g)
    warm = {k: {"z.fan_spread": -30.0, "z.inlet_vs_fleet": 6.0} for k in rack}
    incidents = find_incidents(_scores(g, rack), _features(g, warm), g, AT, THRESHOLD)
    assert sorted((i.root_cause.kind, i.root_cause.id) for i in incidents) == [
        ("node", "gpu-node-001"),
        ("node", "gpu-node-002"),
    ]
    # One node's fan and the other node's GPUs at risk without it: still no rack pattern left.
    one = {k: {"z.fan_spread": -30.0} for k in rack if k.startswith("gpu-node-001")}
    incidents = find_incidents(_scores(g, rack), _features(g, one), g, AT, THRESHOLD)
    assert sorted((i.root_cause.kind, i.root_cause.id) for i in incidents) == [
        ("node", "gpu-node-001"),
        ("node", "gpu-node-002"),
    ]
    # Fans that all slow together are no node hardware: the rack pattern stands.
    together = {k: {"z.fan_spread": 30.0} for k in rack}
    incidents = find_incidents(_scores(g, rack), _features(g, together), g, AT, THRESHOLD)
    assert [(i.root_cause.kind, i.root_cause.id) for i in incidents] == [("rack", "rack-a1")]


def test_a_component_with_its_own_signal_keeps_nodes_whose_fans_also_deviate() -> None:
    # The PDU's own metric deviates: it is named even where a node's fans deviate as well.
    g = _graph()
    rack = _rack1(g)
    z = {k: {"z.pdu.x": 9.0, "z.fan_spread": -30.0} for k in rack}
    incidents = find_incidents(_scores(g, rack), _features(g, z), g, AT, THRESHOLD)
    assert [(i.root_cause.id, len(i.gpus)) for i in incidents] == [("pdu-a1", 8)]


def test_independent_gpu_troubles_stay_separate() -> None:
    g = _graph()
    # Two GPUs on one node and one in the other rack: no shared explanation.
    risky = ["gpu-node-001/0", "gpu-node-001/3", "gpu-node-004/1"]
    incidents = find_incidents(_scores(g, risky), _features(g), g, AT, THRESHOLD)
    assert sorted((i.root_cause.kind, i.root_cause.id) for i in incidents) == [
        ("gpu", k) for k in sorted(risky)
    ]
    assert all(len(i.gpus) == 1 for i in incidents)
    assert find_incidents(_scores(g, []), _features(g), g, AT, THRESHOLD) == []


def test_severity_from_score_and_failure_grade_signals() -> None:
    g = _graph()
    feats = _features(g)
    feats.loc["gpu-node-002/1", "fail_xid_hw"] = True
    scores = _scores(g, ["gpu-node-001/0", "gpu-node-002/1", "gpu-node-004/0"])
    scores["gpu-node-004/0"] = 0.995
    by_id = {i.root_cause.id: i for i in find_incidents(scores, feats, g, AT, THRESHOLD)}
    assert by_id["gpu-node-001/0"].severity == "warning"
    assert by_id["gpu-node-002/1"].severity == "critical"
    assert "hardware_xid" in by_id["gpu-node-002/1"].signals
    assert by_id["gpu-node-004/0"].severity == "critical"


def test_incident_ids_are_stable_per_dedup_key_and_first_cycle() -> None:
    g = _graph()
    risky = ["gpu-node-001/0"]
    a = find_incidents(_scores(g, risky), _features(g), g, AT, THRESHOLD)[0]
    b = find_incidents(_scores(g, risky, 0.97), _features(g), g, AT, THRESHOLD)[0]
    c = find_incidents(_scores(g, risky), _features(g), g, AT + timedelta(minutes=1), THRESHOLD)[0]
    assert a.id == b.id == incident_id("gpu:gpu-node-001/0", AT)
    assert c.id != a.id


def test_per_gpu_incidents_never_group() -> None:
    g = _graph()
    rack = _rack1(g)
    incidents = per_gpu_incidents(_scores(g, rack), None, AT, THRESHOLD)
    assert len(incidents) == len(rack)
    assert {i.root_cause.kind for i in incidents} == {"gpu"}


@pytest.mark.slow
def test_simulated_faults_get_the_right_root_cause_once() -> None:
    """On the simulator (seed not used in tuning), each fault maps to one correct incident."""
    from tests.fixtures.scoring_scenarios import fault_run

    run = fault_run()
    expected_kind = {"pdu": "pdu", "cooling": "cooling", "switch": "switch", "fan": "node"}
    for fault in run.faults:
        outcome = run.graph_outcomes[fault.id]
        assert outcome.first_incident is not None, f"{fault.kind} never raised an incident"
        kind = expected_kind.get(fault.kind, "gpu")
        # Exactly one incident (dedup key) covered the fault's GPUs, naming the injected target.
        assert run.incidents_per_fault[fault.id] == {f"{kind}:{fault.target}"}, fault.kind
        if kind in ("pdu", "cooling", "switch"):
            gpus = {g.key for g in outcome.first_incident.gpus}
            assert gpus <= set(fault.affected) and len(gpus) >= len(fault.affected) // 2


def test_consequences_and_load_are_not_component_or_node_evidence() -> None:
    g = _graph()
    risky = ["gpu-node-001/0", "gpu-node-002/3"]
    # The PDU's output watts fell (its GPUs failed or went idle): a consequence, not a cause.
    feats = _features(g, {k: {"z.pdu.output_watts": -40.0} for k in _rack1(g)})
    incidents = find_incidents(_scores(g, risky), feats, g, AT, THRESHOLD)
    assert sorted(i.root_cause.id for i in incidents) == risky
    # A PDU whose voltage rises is not sagging; one whose voltage sags is the root cause.
    up = _features(g, {k: {"z.pdu.output_volts": 12.0} for k in _rack1(g)})
    assert {i.root_cause.kind for i in find_incidents(_scores(g, risky), up, g, AT, 0.9)} == {"gpu"}
    down = _features(g, {k: {"z.pdu.output_volts": -12.0} for k in _rack1(g)})
    sag = find_incidents(_scores(g, risky), down, g, AT, THRESHOLD)
    assert [(i.root_cause.id, len(i.gpus)) for i in sag] == [("pdu-a1", 2)]
    # One GPU at risk on a node whose fans all slowed (load fell) or whose GPUs run warm as a
    # group: still that GPU's own incident, not "gpu-node-004: 1 GPU at risk".
    for column, value in (("z.fan_min", -30.0), ("z.node_temp_vs_fleet", 12.0)):
        feats = _features(g, {f"gpu-node-004/{i}": {column: value} for i in range(4)})
        one = find_incidents(_scores(g, ["gpu-node-004/2"]), feats, g, AT, THRESHOLD)
        assert [(i.root_cause.kind, i.root_cause.id) for i in one] == [("gpu", "gpu-node-004/2")]
    # Two GPUs on that warm node: the node.
    feats = _features(g, {f"gpu-node-004/{i}": {"z.node_temp_vs_fleet": 12.0} for i in range(4)})
    two = find_incidents(_scores(g, ["gpu-node-004/1", "gpu-node-004/2"]), feats, g, AT, 0.9)
    assert [(i.root_cause.kind, i.root_cause.id) for i in two] == [("node", "gpu-node-004")]


def _hall() -> nx.DiGraph:
    """2 racks x 2 nodes x 4 GPUs, each with its own PDU and leaf switch, one cooling unit for both."""
    racks = tuple(
        Rack(id=r.id, nodes=r.nodes, power=r.power, cooling=("crah-hall",), network=r.network)
        for r in topology(2, 2).racks
    )
    gpus = [GpuRef(f"gpu-node-00{n}", str(g)) for n in range(1, 5) for g in range(4)]
    return build_graph(Topology(racks=racks, components=topology(2, 2).components), gpus)


def test_two_failing_switches_are_not_the_cooling_unit_that_covers_both() -> None:
    g = _hall()
    assert g.nodes["crah-hall"]["kind"] == "cooling"
    everything = _keys(g)
    feats = _features(g, {k: {"z.switch.port_errors": 15.0} for k in everything})
    incidents = find_incidents(_scores(g, everything), feats, g, AT, THRESHOLD)
    assert sorted((i.root_cause.id, len(i.gpus)) for i in incidents) == [
        ("leaf-a1", 8),
        ("leaf-a2", 8),
    ]


def test_gpus_running_cooler_behind_a_sagging_pdu_are_no_evidence_against_cooling() -> None:
    """Rack 1 sags and throttles (cooler than the fleet) and one GPU of rack 2 is at risk: the
    cooling unit covering all nine is not named for GPUs that run cooler."""
    g = _hall()
    rack = _rack1(g)
    risky = [*rack, "gpu-node-003/1"]
    z = {k: {"z.volts_dip": -12.0, "z.rack_temp_vs_fleet": -12.0} for k in rack}
    incidents = find_incidents(_scores(g, risky), _features(g, z), g, AT, THRESHOLD)
    assert sorted((i.root_cause.id, len(i.gpus)) for i in incidents) == [
        ("gpu-node-003/1", 1),
        ("pdu-a1", 8),
    ]
    # warmer GPUs behind the cooling unit are its evidence
    z = {k: {"z.rack_temp_vs_fleet": 12.0} for k in risky}
    hot = find_incidents(_scores(g, risky), _features(g, z), g, AT, THRESHOLD)
    assert [(i.root_cause.id, len(i.gpus)) for i in hot] == [("crah-hall", 9)]


def test_a_failed_pdu_is_not_the_hall_unit_because_of_a_burst_and_one_unrelated_gpu() -> None:
    """Development fleet 105: rack 1's PDU failed (its voltage at 0), one GPU of rack 2 is at
    risk for its own reasons, and the unit covering both racks shows a burst of its own that
    passes the evidence bar. Covering one GPU more does not make the hall's unit the cause of
    the rack's failure: the PDU is named for its rack and the straggler stays its own."""
    g = _hall()
    rack = _rack1(g)
    risky = [*rack, "gpu-node-003/1"]
    z = {k: {"z.pdu.output_volts": -100.0, "z.cooling.supply_temp": 5.2} for k in rack}
    z["gpu-node-003/1"] = {"z.cooling.supply_temp": 5.2}
    incidents = find_incidents(_scores(g, risky), _features(g, z), g, AT, THRESHOLD)
    assert sorted((i.root_cause.id, len(i.gpus)) for i in incidents) == [
        ("gpu-node-003/1", 1),
        ("pdu-a1", 8),
    ]
    # When the hall unit's pattern is larger (both racks' nodes hit), it still covers them all.
    everything = _keys(g)
    z = {k: {"z.cooling.supply_temp": 12.0} for k in everything}
    z.update({k: {"z.cooling.supply_temp": 12.0, "z.pdu.output_volts": -20.0} for k in rack})
    hall = find_incidents(_scores(g, everything), _features(g, z), g, AT, THRESHOLD)
    assert [(i.root_cause.id, len(i.gpus)) for i in hall] == [("crah-hall", 16)]
