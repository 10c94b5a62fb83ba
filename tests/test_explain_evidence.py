"""The detector's evidence in an explanation the explainer cannot make on its own.

The explainer reads an incident as the median of its latest samples; the detector pages on
windowed features, finer for some faults (a fan that stalls for one sample in twenty). When no
template variable deviates, what the detector paged on leads the factors instead of noise below
the anomaly threshold, and the factor says it was the detector's.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import networkx as nx
import pytest

from analysis.explain import Explainer
from analysis.explain.template import VARS, evidence_variable
from analysis.features import build_features, feature_columns
from analysis.types import Evidence, Explanation, FleetFrames
from tests.fixtures.explain_frames import START, make_fleet
from tests.test_explain import _edit, _incident

FAN = "ipmi_fan_speed_rpm"
NODE = "gpu-node-001"
GPUS = tuple(f"{NODE}/{g}" for g in range(4))
Case = tuple[Explainer, FleetFrames, nx.DiGraph]


@pytest.fixture(scope="module")
def stalled() -> Case:
    """A fitted explainer and frames whose FAN3 on gpu-node-001 stalled on the last sample only."""
    fleet = make_fleet(120, seed=8)
    explainer = Explainer().fit(fleet.window(0, 59), fleet.graph)
    frames = _edit(fleet.window(60, 119), f"{FAN}:FAN3", 600.0, node=NODE, gpu=None, since=119)
    return explainer, frames, fleet.graph


def _explain(case: Case, *evidence: Evidence) -> Explanation:
    explainer, frames, graph = case
    incident = _incident(NODE, "node", GPUS, START + timedelta(minutes=119))
    return explainer.explain(replace(incident, evidence=evidence), frames, graph)


def test_a_fan_the_detector_paged_on_leads_when_the_explainer_sees_nothing(stalled: Case) -> None:
    """One stalled sample is below the explainer's median; the detector's fan evidence leads."""
    plain = _explain(stalled)
    assert plain.factors and plain.factors[0].name != FAN, [f.name for f in plain.factors]
    exp = _explain(stalled, Evidence(f"{NODE}/0", "fan_spread", -16.1))
    assert exp.factors[0].name == FAN, [(f.name, f.detail) for f in exp.factors]
    assert "flagged by the detector: fan_spread at -16.1" in exp.factors[0].detail
    assert exp.factors[0].basis == "detector"
    assert all(f.basis == "deviation" for f in exp.factors[1:])
    assert "flagged by the detector: FAN3 speed" in exp.summary, exp.summary
    assert "attributed" not in exp.summary  # the detector's finding, not a causal attribution
    # the rest is ranked as before, after it
    assert [f.name for f in exp.factors[1:]] == [f.name for f in plain.factors if f.name != FAN][
        : len(exp.factors) - 1
    ]


@pytest.mark.parametrize(
    "evidence",
    [
        Evidence(f"{NODE}/0", "fan_spread", +16.1),  # a fan faster than its siblings is no cause
        Evidence(f"{NODE}/0", "fan_spread", -2.5),  # within the anomaly threshold
        Evidence("gpu-node-002/0", "fan_spread", -16.1),  # another node's GPU
        Evidence(f"{NODE}/0", "util", 25.0),  # the workload is context, never a cause
    ],
)
def test_evidence_that_names_no_cause_of_the_group_changes_nothing(
    stalled: Case, evidence: Evidence
) -> None:
    """Harmless direction, small, outside the group, or a workload descriptor: as without it."""
    plain = _explain(stalled)
    exp = _explain(stalled, evidence)
    assert [f.name for f in exp.factors] == [f.name for f in plain.factors]
    assert all("flagged by the detector" not in f.detail for f in exp.factors)
    assert all(f.basis != "detector" for f in exp.factors)


def test_every_feature_the_detector_scores_reads_a_template_variable_or_none() -> None:
    """The mapping holds on the detector's real column names, whichever way they are spelled."""
    fleet = make_fleet(60, seed=3)
    feats = build_features(fleet.frames, fleet.graph, START + timedelta(minutes=59))
    cols = feature_columns(feats)
    mapped = {c: evidence_variable(c) for c in cols}
    assert all(k is None or k in VARS for k in mapped.values())
    expect = {
        "fan_spread": "fan",
        "temp_vs_node": "temp",
        "inlet_vs_fleet": "inlet",
        "power_viol_rate": "power_violation",
    }
    for col, key in expect.items():
        assert col in cols and mapped[col] == key, (col, mapped.get(col))
    assert any(mapped[c] == "sbe" for c in cols if c.startswith("ecc_sbe"))
    assert not any(mapped[c] for c in cols if c.startswith(("util", "sm_clock", "mem_clock")))
    assert evidence_variable("pdu.output_volts") == "pdu_volts"
    assert evidence_variable("switch.port_errors") == "port_errors"
    assert evidence_variable("pdu.output_watts") is None
    assert evidence_variable("cooling.output_volts") is None  # not the component's variable
