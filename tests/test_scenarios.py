"""The randomized scenario matrix: determinism, width over the dev seeds, PromQL names, files, CLI."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from analysis.evaluation.protocol import DEV_SEEDS, REPORT_SEEDS
from bot.cli import build_app
from storage.datasets import load_benign, load_faults
from storage.simulator.faults import FAULT_KINDS, make_fault
from storage.simulator.scenario import BENIGN_KINDS, Scenario, draw_scenario
from storage.simulator.shape import ScenarioSpec
from storage.simulator.variation import PRECURSOR_SHAPES, Variation
from storage.topology import load_topology

# A small 4-rack fleet (32 GPUs at a 5-minute step, PDUs shared by two racks each).
SMALL = 106


@pytest.fixture(scope="module")
def small() -> Scenario:
    """Dev seed 106 drawn small."""
    return draw_scenario(SMALL, max_gpus=32)


def test_same_seed_same_scenario_and_frames(small: Scenario) -> None:
    """One seed is one scenario and one set of frames; another seed differs."""
    again = draw_scenario(SMALL, max_gpus=32)
    assert again == small
    assert again.variation == small.variation
    end = small.start + timedelta(hours=6)
    a = small.simulator().fetch(small.start, end, small.step)
    b = again.simulator().fetch(small.start, end, small.step)
    for name in ("gpu", "node", "component", "up"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert draw_scenario(SMALL + 1, max_gpus=32).description != small.description


def test_distributions_are_wide_over_the_dev_seeds() -> None:
    """Across dev seeds 100-139 every axis of the matrix takes many values."""
    assert not set(DEV_SEEDS) & set(REPORT_SEEDS)
    drawn = [draw_scenario(s) for s in DEV_SEEDS]
    shapes = {(d.spec.racks, d.spec.nodes_per_rack, d.spec.gpus_per_node) for d in drawn}
    assert len(shapes) >= 20
    assert {d.spec.gpus_per_node for d in drawn} == {4, 8}
    assert max(d.spec.racks for d in drawn) >= 10 and min(d.spec.racks for d in drawn) == 1
    assert all(d.spec.n_gpus <= 512 for d in drawn)
    assert len({d.step for d in drawn}) == 5
    assert any(len(set(d.spec.node_models)) > 1 for d in drawn)
    assert len({d.description["workload"]["style"] for d in drawn}) >= 6  # type: ignore[index]
    units = [
        (d.spec.racks, d.spec.components_of_kind(k)) for d in drawn for k in ("pdu", "cooling")
    ]
    assert any(racks >= 3 and any(len(r) > 1 for _c, r in u) and len(u) > 2 for racks, u in units)
    assert any(racks >= 2 and len(u) == 1 for racks, u in units)  # no peer
    assert any(racks >= 3 and len(u) == 2 for racks, u in units)  # one peer
    assert any(racks >= 2 and len(u) == racks for racks, u in units)  # per rack
    cooling_names = {
        d.topology.components[c].metrics["supply_temp_celsius"].split("{")[0]
        for d in drawn
        for c, _r in d.spec.components_of_kind("cooling")
    }
    assert len(cooling_names) >= 4
    faults = [f for d in drawn for f in d.faults]
    assert {f.kind for f in faults} == set(FAULT_KINDS)
    shapes_drawn = {s for d in drawn for _f, _k, s in d.variation.fault_shapes}
    assert shapes_drawn == set(PRECURSOR_SHAPES)
    lengths = [(f.failure - f.onset) for f in faults if f.failure]
    assert min(lengths) <= timedelta(hours=1) and max(lengths) >= timedelta(hours=72)
    for d in drawn:
        assert 1 <= len(d.faults) <= 6 and d.history >= timedelta(hours=24)
        assert timedelta(days=1) <= d.replay <= timedelta(days=4)
        shape_of = {fid: shape for fid, _k, shape in d.variation.fault_shapes}
        for f in d.faults:
            assert d.replay_start <= f.onset and f.failure is not None and f.failure <= d.end
            assert f.signal_start is not None and f.onset <= f.signal_start < f.failure
            assert (f.signal_start > f.onset) == (d.variation.quiet_share(f.id) > 0)
            if shape_of[f.id] in ("linear", "exponential"):
                assert f.signal_start == f.onset
            elif shape_of[f.id] == "step":  # quiet for 20-70 % of the precursor
                assert f.signal_start - f.onset >= 0.2 * (f.failure - f.onset)
    assert {e.kind for d in drawn for e in d.benign} == set(BENIGN_KINDS)


def test_a_precursor_s_signal_starts_where_its_shape_leaves_its_quiet_phase() -> None:
    """quiet_share is where shape_progress first rises above a quiet step's or episode's level."""
    p = np.arange(4000) / 4000
    starts: dict[str, list[float]] = {"step": [], "intermittent": [], "linear": []}
    for seed in range(12):
        shapes = (("s", "nvlink", "step"), ("i", "hbm", "intermittent"), ("l", "fan", "linear"))
        variation = Variation(seed=seed, fault_shapes=shapes)
        for fid, _kind, shape in shapes:
            out = variation.shape_progress(fid, p)
            first_on = p[np.argmax(out > 0.03 * p + 1e-9)]
            quiet = variation.quiet_share(fid)
            assert first_on == pytest.approx(quiet, abs=2 / len(p)), (seed, shape)
            starts[shape].append(quiet)
    assert min(starts["step"]) >= 0.2 and max(starts["step"]) <= 0.7
    assert any(s > 0 for s in starts["intermittent"]) and set(starts["linear"]) == {0.0}


def test_healthy_scenario_has_benign_events_and_no_faults() -> None:
    """healthy=True: workload and benign events only."""
    drawn = draw_scenario(SMALL, healthy=True, max_gpus=32)
    assert drawn.faults == () and drawn.benign
    faulty = draw_scenario(SMALL, max_gpus=32)
    assert (drawn.spec, drawn.start, drawn.step, drawn.benign) == (
        faulty.spec,
        faulty.start,
        faulty.step,
        faulty.benign,
    )


def test_topology_promql_names_the_facility_series(small: Scenario, tmp_path: Path) -> None:
    """Every component metric's PromQL selects a series the exposition writes, and fetch has it."""
    sim = small.simulator()
    frames = sim.fetch(small.start, small.start + timedelta(hours=2), small.step)
    topo = small.topology
    got = set(zip(frames.component["component"], frames.component["metric"], strict=True))
    want = {(c.id, key) for c in topo.components.values() for key in c.metrics}
    assert got == want
    sim.write_history(tmp_path)
    heads = {line.split("} ")[0] for line in (tmp_path / "metrics.om").read_text().splitlines()}
    for comp in topo.components.values():
        for query in comp.metrics.values():
            name, _, label = query.rstrip("}").partition("{")
            assert any(h.startswith(f"{name}{{{label}") for h in heads), query
    assert load_topology(tmp_path / "topology.yaml") == topo


def test_shared_pdu_fault_reaches_every_rack_it_feeds(small: Scenario) -> None:
    """A fault on a PDU feeding two racks sags its volts and takes both racks down."""
    spec = small.spec
    assert isinstance(spec, ScenarioSpec)
    pdu, racks = next((c, r) for c, r in spec.components_of_kind("pdu") if len(r) > 1)
    onset = small.replay_start + timedelta(hours=2)
    fault = make_fault("pdu", pdu, onset, spec=spec, precursor=timedelta(hours=4))
    assert len(fault.affected) == len(racks) * spec.nodes_per_rack * spec.gpus_per_node
    faulty = dataclasses.replace(small, faults=(fault,))
    frames = faulty.simulator().fetch(
        onset - timedelta(hours=3), onset + timedelta(hours=5), small.step
    )
    volts = frames.component.query("component == @pdu and metric == 'output_volts'")
    before = volts[volts.ts < onset].value.median()
    late = volts[(volts.ts > onset + timedelta(hours=3)) & (volts.ts < fault.failure)].value
    assert late.median() < before - 2.0
    after = frames.up[(frames.up.ts > fault.failure) & (frames.up.job == "dcgm")]
    down = set(after[after.value == 0.0].node)
    assert {k.rpartition("/")[0] for k in fault.affected} <= down


def test_faults_and_benign_json_round_trip(small: Scenario, tmp_path: Path) -> None:
    """faults.json and benign.json read back as the scenario's faults and benign events."""
    small.simulator().write_history(tmp_path)
    assert load_faults(tmp_path / "faults.json") == small.faults
    assert load_benign(tmp_path / "benign.json") == small.benign


def test_cli_simulate_history_random_scenario(tmp_path: Path) -> None:
    """simulate history --scenario random writes the four files of the drawn scenario."""
    out = tmp_path / "s"
    args = ["simulate", "history", "--scenario", "random", "--seed", str(SMALL)]
    result = CliRunner().invoke(build_app(), [*args, "--max-gpus", "32", "--out", str(out)])
    assert result.exit_code == 0, result.output
    drawn = draw_scenario(SMALL, max_gpus=32)
    assert load_topology(out / "topology.yaml") == drawn.topology
    assert load_faults(out / "faults.json") == drawn.faults
    assert load_benign(out / "benign.json") == drawn.benign
    assert (out / "metrics.om").read_text().endswith("# EOF\n")
    bad = CliRunner().invoke(build_app(), [*args, "--scenario", "nope", "--out", str(out)])
    assert bad.exit_code == 2
