"""Causal explanations: the injected cause ranks first for every fault kind of the simulator.

Incidents are built by hand (root cause = fault target, GPUs = affected) so these tests do not
depend on the scoring engine. Seeds were picked once, before any tuning, and never changed.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import networkx as nx
import pandas as pd
import pytest

from analysis.catalog import MEMORY_XIDS, NVLINK_XIDS, PCIE_XIDS
from analysis.explain import XID_CODES, Explainer
from analysis.explain.prepare import _prepare
from analysis.graph import build_graph
from analysis.types import Explanation, FleetFrames, GpuScore, Incident, RootCause
from storage.simulator import FleetSimulator, FleetSpec, make_fault
from tests.fixtures.explain_frames import START, STEP, make_fleet

SPEC = FleetSpec(racks=2, nodes_per_rack=2, gpus_per_node=4)
SIM_START = datetime(2026, 10, 5, tzinfo=UTC)
ONSET = SIM_START + timedelta(hours=10)
PROGRESS = 0.65  # explain at this fraction of the precursor (before the failure)

# kind -> (target, root-cause kind, accepted top factor names, seed)
CASES: dict[str, tuple[str, str, set[str], int]] = {
    "fan": ("gpu-node-003", "node", {"ipmi_fan_speed_rpm"}, 7101),
    "thermal_interface": ("gpu-node-002/2", "gpu", {"DCGM_FI_DEV_GPU_TEMP"}, 7102),
    "hbm": (
        "gpu-node-004/1",
        "gpu",
        {
            "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
            "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
            "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        },
        7103,
    ),
    "nvlink": ("gpu-node-001/3", "gpu", {"DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL"}, 7104),
    "pcie": ("gpu-node-003/0", "gpu", {"DCGM_FI_DEV_PCIE_REPLAY_COUNTER"}, 7105),
    "pdu": ("pdu-a2", "pdu", {"output_volts", "ipmi_voltage_volts"}, 7106),
    "cooling": ("crac-a1", "cooling", {"supply_temp_celsius", "ipmi_temperature_celsius"}, 7107),
    "switch": ("leaf-a2", "switch", {"port_errors_total"}, 7108),
}


@dataclass
class Case:
    """One simulated fault, the fitted explainer and the incident's explanation."""

    incident: Incident
    frames: FleetFrames
    graph: nx.DiGraph
    explainer: Explainer
    explanation: Explanation


def _incident(target: str, kind: str, gpus: tuple[str, ...], at: datetime) -> Incident:
    """Build an incident by hand: root cause = the fault target, GPUs = the affected ones."""
    return Incident(
        id=f"inc-{target}",
        at=at,
        severity="warning",
        score=0.9,
        root_cause=RootCause(target, kind),  # type: ignore[arg-type]
        gpus=tuple(GpuScore(*k.split("/"), 0.9) for k in gpus),
    )


@pytest.fixture(scope="module")
def cases() -> dict[str, Case]:
    """Simulate each fault kind once, fit on the healthy hours before onset, explain."""
    out: dict[str, Case] = {}
    for kind, (target, rc_kind, _names, seed) in CASES.items():
        fault = make_fault(kind, target, ONSET, spec=SPEC)
        sim = FleetSimulator(
            SPEC, start=SIM_START, duration=timedelta(hours=20), seed=seed, faults=[fault]
        )
        assert fault.failure is not None
        at = ONSET + (fault.failure - ONSET) * PROGRESS
        history = sim.fetch(SIM_START, ONSET - STEP, STEP)
        graph = build_graph(sim.topology, history.gpus)
        explainer = Explainer(random_state=0).fit(history, graph)
        frames = sim.fetch(at - timedelta(hours=2), at, STEP)
        incident = _incident(target, rc_kind, fault.affected, at)
        out[kind] = Case(
            incident, frames, graph, explainer, explainer.explain(incident, frames, graph)
        )
    return out


@pytest.mark.parametrize("kind", list(CASES))
def test_top_factor_is_the_injected_cause(cases: dict[str, Case], kind: str) -> None:
    """The first factor names the injected cause's metric on the right entity."""
    target, _rc, names, _seed = CASES[kind]
    exp = cases[kind].explanation
    assert exp.factors, exp.summary
    top = exp.factors[0]
    assert top.name in names, (kind, [(f.name, f.share) for f in exp.factors], exp.summary)
    if kind in ("thermal_interface", "hbm", "nvlink", "pcie"):
        assert top.entity == target
    elif kind == "fan":
        assert top.entity == target
        assert "FAN" in top.detail and "%" in top.detail
    else:
        assert top.entity == target  # component metrics, or node metrics averaged under it
    assert "robust z-score" not in top.detail  # attributed, not the fallback ranking
    assert top.basis == "attribution"


@pytest.mark.parametrize("kind", list(CASES))
def test_shares_are_ranked_and_normalised(cases: dict[str, Case], kind: str) -> None:
    """Shares are in (0, 1], sorted, and sum to at most 1 (small ones are cut)."""
    shares = [f.share for f in cases[kind].explanation.factors]
    assert shares == sorted(shares, reverse=True)
    assert all(0 < s <= 1 for s in shares)
    assert sum(shares) == pytest.approx(1.0, abs=0.06)


def test_summaries_read_like_the_product_promises(cases: dict[str, Case]) -> None:
    """One line, naming the entity, with the attributed share of the top factor."""
    for kind, case in cases.items():
        summary = case.explanation.summary
        assert "\n" not in summary and len(summary) < 300, summary
        assert "% of the anomaly" in summary, (kind, summary)
        target = CASES[kind][0]
        if "/" in target:
            node, gpu = target.split("/")
            assert summary.startswith(f"GPU {gpu} on {node}"), summary
        else:
            assert summary.startswith(target), summary
    assert "hotter than its 3 peers" in cases["thermal_interface"].explanation.summary
    pdu = cases["pdu"].explanation.summary
    assert "output voltage fell" in pdu and "GPUs on 2 nodes" in pdu, pdu


def test_hints_for_the_physical_cases(cases: dict[str, Case]) -> None:
    """Rule hints point at the right action for ECC, PCIe, NVLink, fans, PDU and cooling."""
    expect = {
        "hbm": "ECC",
        "pcie": "PCIe",
        "nvlink": "NVLink",
        "fan": "fan",
        "pdu": "pdu-a2",
        "cooling": "crac-a1",
        "switch": "leaf-a2",
    }
    for kind, word in expect.items():
        hints = " ".join(cases[kind].explanation.hints)
        assert word in hints, (kind, cases[kind].explanation.hints)
    # no spurious hardware hints on a thermal interface case
    assert not any("XID" in h for h in cases["thermal_interface"].explanation.hints)


def test_fitted_models_are_cached_per_kind(cases: dict[str, Case]) -> None:
    """Explaining again reuses the fitted SCM; only attribution runs."""
    case = cases["thermal_interface"]
    models = dict(case.explainer.models_)
    assert models, "the first explanation should have fitted an SCM"
    again = case.explainer.explain(case.incident, case.frames, case.graph)
    assert again.factors[0].name == case.explanation.factors[0].name
    assert case.explainer.models_.keys() == models.keys()
    for key, fitted in models.items():
        assert case.explainer.models_[key] is fitted
    # another GPU of the same kind, same target variable: still the same fitted model
    peer = "gpu-node-001/0"
    other = _incident(peer, "gpu", (peer,), case.incident.at)
    case.explainer.explain(other, case.frames, case.graph)
    kinds = {k[0] for k in case.explainer.models_}
    assert kinds == {"gpu"}


def test_same_seed_same_explanation(cases: dict[str, Case]) -> None:
    """A fresh explainer with the same random_state gives the same shares."""
    case = cases["fan"]
    history_end = ONSET - STEP
    fault = make_fault("fan", CASES["fan"][0], ONSET, spec=SPEC)
    sim = FleetSimulator(
        SPEC, start=SIM_START, duration=timedelta(hours=20), seed=CASES["fan"][3], faults=[fault]
    )
    fresh = Explainer(random_state=0).fit(sim.fetch(SIM_START, history_end, STEP), case.graph)
    exp = fresh.explain(case.incident, case.frames, case.graph)
    assert [(f.name, f.share) for f in exp.factors] == [
        (f.name, f.share) for f in case.explanation.factors
    ]


def _hand_incident(fleet_graph: nx.DiGraph, key: str, minutes: int) -> Incident:
    """A GPU incident at the end of a hand-made fleet."""
    return _incident(key, "gpu", (key,), START + (minutes - 1) * STEP)


def test_too_little_history_falls_back_to_z_scores() -> None:
    """With a few minutes of history DoWhy cannot fit; factors say so, the cause still ranks."""
    history = make_fleet(12, seed=3)
    fleet = make_fleet(240, fault="pcie", target="gpu-node-002/1", onset=150, seed=4)
    explainer = Explainer().fit(history.frames, history.graph)
    incident = _hand_incident(fleet.graph, "gpu-node-002/1", 240)
    exp = explainer.explain(incident, fleet.window(120, 239), fleet.graph)
    assert exp.factors
    assert exp.factors[0].name == "DCGM_FI_DEV_PCIE_REPLAY_COUNTER"
    # PCIe replays are a root of the template: attributed trivially even with little history
    fleet = make_fleet(240, fault="thermal_interface", target="gpu-node-002/1", onset=150, seed=4)
    exp = explainer.explain(incident, fleet.window(120, 239), fleet.graph)
    assert exp.factors[0].name == "DCGM_FI_DEV_GPU_TEMP"
    assert "robust z-score" in exp.factors[0].detail
    assert {f.basis for f in exp.factors} == {"deviation"}
    assert "no causal attribution possible" in exp.summary


def test_no_recent_data_and_unknown_entities_do_not_crash() -> None:
    """An incident whose GPUs have no samples gets a plain summary, never an exception."""
    fleet = make_fleet(60, seed=5)
    explainer = Explainer().fit(fleet.frames, fleet.graph)
    ghost = _incident("gpu-node-999/0", "gpu", ("gpu-node-999/0",), START + 59 * STEP)
    exp = explainer.explain(ghost, fleet.frames, fleet.graph)
    assert "no recent metrics" in exp.summary
    assert exp.factors == ()


def test_explain_before_fit_is_a_clear_error() -> None:
    """Calling explain before fit says what to do."""
    fleet = make_fleet(30, seed=6)
    with pytest.raises(RuntimeError, match="before fit"):
        Explainer().explain(
            _hand_incident(fleet.graph, "gpu-node-001/0", 30), fleet.frames, fleet.graph
        )


def _edit(
    frames: FleetFrames, metric: str, value: float, *, node: str, gpu: str | None, since: int
) -> FleetFrames:
    """Overwrite a metric's samples from minute ``since`` on for one GPU (or a node sensor)."""
    cut = START + since * STEP
    if gpu is not None:
        df = frames.gpu.copy()
        mask = (
            (df["metric"] == metric) & (df["node"] == node) & (df["gpu"] == gpu) & (df["ts"] >= cut)
        )
        df.loc[mask, "value"] = value
        return FleetFrames(
            df, frames.node, frames.component, frames.up, frames.start, frames.end, frames.step
        )
    metric_name, sensor = metric.split(":")
    df = frames.node.copy()
    mask = (
        (df["metric"] == metric_name)
        & (df["node"] == node)
        & (df["sensor"] == sensor)
        & (df["ts"] >= cut)
    )
    df.loc[mask, "value"] = value
    return FleetFrames(
        frames.gpu, df, frames.component, frames.up, frames.start, frames.end, frames.step
    )


def test_rule_hints_on_hand_made_extremes() -> None:
    """Hot GPU + dead fan -> cooling; DBE -> RMA; XID 79 -> fell off the bus."""
    fleet = make_fleet(120, seed=8)
    explainer = Explainer().fit(fleet.window(0, 59), fleet.graph)
    frames = fleet.window(60, 119)
    frames = _edit(frames, "DCGM_FI_DEV_GPU_TEMP", 95.0, node="gpu-node-001", gpu="2", since=110)
    frames = _edit(
        frames, "ipmi_fan_speed_rpm:FAN3", 600.0, node="gpu-node-001", gpu=None, since=100
    )
    frames = _edit(
        frames, "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", 2.0, node="gpu-node-001", gpu="2", since=115
    )
    frames = _edit(frames, "DCGM_FI_DEV_XID_ERRORS", 79.0, node="gpu-node-001", gpu="2", since=117)
    exp = explainer.explain(_hand_incident(fleet.graph, "gpu-node-001/2", 120), frames, fleet.graph)
    text = " ".join(exp.hints)
    assert "FAN3 at 600 rpm" in text and "replace the failed fan" in text, exp.hints
    assert "RMA" in text, exp.hints
    assert "fell off the bus" in text, exp.hints


def test_dowhy_is_imported_lazily() -> None:
    """Importing analysis.explain must not import dowhy (it takes seconds)."""
    code = (
        "import sys, analysis.explain, analysis.explain.scm, analysis.explain.explainer; "
        "print('dowhy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_frames_are_not_modified() -> None:
    """Explaining never mutates the caller's frames."""
    fleet = make_fleet(120, fault="nvlink", target="gpu-node-004/2", onset=90, seed=9)
    before = fleet.frames.gpu.copy()
    explainer = Explainer().fit(fleet.window(0, 80), fleet.graph)
    explainer.explain(_hand_incident(fleet.graph, "gpu-node-004/2", 120), fleet.frames, fleet.graph)
    pd.testing.assert_frame_equal(fleet.frames.gpu, before)


def test_after_an_hbm_failure_the_symptoms_are_shown_and_rma_hinted() -> None:
    """After the DBE the SBE rate is gone: memory is still what is shown (the remapped rows, the
    DBEs of the last 30 minutes, or the XID / remap failure), with RMA hinted."""
    target = "gpu-node-002/1"
    fault = make_fault("hbm", target, ONSET, spec=SPEC)
    assert fault.failure is not None
    sim = FleetSimulator(
        SPEC, start=SIM_START, duration=timedelta(hours=20), seed=7109, faults=[fault]
    )
    at = fault.failure + timedelta(minutes=10)
    history = sim.fetch(SIM_START, ONSET - STEP, STEP)
    graph = build_graph(sim.topology, history.gpus)
    explainer = Explainer().fit(history, graph)
    exp = explainer.explain(
        _incident(target, "gpu", (target,), at), sim.fetch(at - timedelta(hours=1), at, STEP), graph
    )
    assert exp.factors[0].name in {
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "DCGM_FI_DEV_ROW_REMAP_FAILURE",
        "DCGM_FI_DEV_XID_ERRORS",
    }, [(f.name, f.detail) for f in exp.factors]
    assert any("RMA" in h for h in exp.hints), exp.hints


def test_xid_classes_are_the_catalogues() -> None:
    """An XID is read as the catalogue classes it: 95 (uncontained ECC) is a memory XID."""
    assert XID_CODES == {
        "xid_memory": MEMORY_XIDS,
        "xid_nvlink": NVLINK_XIDS,
        "xid_pcie": PCIE_XIDS,
    }
    fleet = make_fleet(30, seed=10)
    frames = _edit(
        fleet.frames, "DCGM_FI_DEV_XID_ERRORS", 95.0, node="gpu-node-001", gpu="2", since=20
    )
    rows = _prepare(frames).rows
    hit = rows.xs("gpu-node-001/2", level="key")
    assert (hit["xid_memory"].iloc[-5:] == 1.0).all()
    assert (hit["xid_pcie"].iloc[-5:] == 0.0).all()
    assert (rows.xs("gpu-node-001/1", level="key")["xid_memory"].dropna() == 0.0).all()
