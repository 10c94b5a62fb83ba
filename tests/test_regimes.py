"""An idle GPU's temperature comparisons are judged against idle rows' spread, a busy one's against
busy rows'.

Development fleets 105, 111 and 120: an idle GPU's thermal interface failing over 7-17 hours
rose 3 °C against its node at equal power, while the one spread of ``temp_vs_node`` (set by busy
rows: jobs starting and stopping) was 1.1-1.4 °C, so it never read more than +2 sd and was not
warned. Its idle rows spread by 0.2-0.4 °C.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.regimes import (
    MIN_OWN_REGIME_ROWS,
    busy_watts,
    fit_regimes,
    regime_scale,
)
from analysis.scoring import GraphRiskModel

H100, B200 = "NVIDIA H100", "NVIDIA B200"


def test_a_row_is_busy_from_its_models_midpoint_of_window_power() -> None:
    power = [60.0] * 50 + [600.0] * 50 + [140.0] * 50 + [1000.0] * 50
    models = [H100] * 100 + [B200] * 100
    fleet = {"a/0": H100, "b/0": B200, "c/0": "NVIDIA A100", "d/0": ""}
    watts = busy_watts(power, models, fleet)
    assert watts["a/0"] == pytest.approx(330.0)
    assert watts["b/0"] == pytest.approx(570.0)
    # a model without fit rows takes every row's midpoint (5th and 95th percentile: 60, 1000)
    assert watts["c/0"] == pytest.approx(530.0) and watts["d/0"] == pytest.approx(530.0)


def test_a_model_whose_rows_span_few_watts_has_one_regime() -> None:
    watts = busy_watts([60.0, 70.0, 90.0, 120.0] * 20, [H100] * 80, {"a/0": H100})
    assert math.isinf(watts["a/0"])


def _fit_rows(rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray, pd.Index]:
    """20 GPUs x 40 rows: idle (60 W) three rows in four, spread 0.2 °C; busy (500 W) 1.5 °C."""
    keys, power, resid = [], [], []
    for g in range(20):
        for i in range(40):
            busy = i % 4 == 0
            keys.append(f"n{g // 4}/{g % 4}")
            power.append(500.0 if busy else 60.0)
            resid.append(rng.normal(0.0, 1.5 if busy else 0.2))
    return pd.DataFrame({"temp_vs_node": resid}), np.array(power), pd.Index(keys)


def test_idle_and_busy_rows_each_get_their_own_spread() -> None:
    resid, power, keys = _fit_rows(np.random.default_rng(0))
    fleet_models = {k: H100 for k in keys.unique()}
    floors = pd.Series({"temp_vs_node": 0.05})
    scales = fit_regimes(resid, power, keys, fleet_models, floors)
    idle, busy = scales.fleet.loc[False, "temp_vs_node"], scales.fleet.loc[True, "temp_vs_node"]
    assert 0.15 < idle < 0.35 and 1.2 < busy < 2.2
    # each GPU's own spread too: 30 idle rows, 10 busy rows (at least MIN_OWN_REGIME_ROWS)
    assert MIN_OWN_REGIME_ROWS <= 10
    own = scales.own["temp_vs_node"]
    assert own.loc[False].max() < 0.5 and own.loc[True].min() > 0.5

    one = np.full((2, 1), 1.1)  # the one spread, as FeatureScorer.scale_ holds it
    fleet, mine = regime_scale(
        scales, one, own=np.full((2, 1), 0.6), keys=pd.Index(["n0/0", "n0/0"]),
        power=[60.0, 500.0], columns=["temp_vs_node"],
    )  # fmt: skip
    assert fleet[0, 0] == pytest.approx(idle) and fleet[1, 0] == pytest.approx(busy)
    assert mine[0, 0] == pytest.approx(own.loc[(False, "n0/0")])
    # a row without power, or a GPU the fit never saw, keeps what it had
    fleet, mine = regime_scale(
        scales, one, own=np.full((2, 1), 0.6), keys=pd.Index(["n0/0", "zz/0"]),
        power=[np.nan, 60.0], columns=["temp_vs_node"],
    )  # fmt: skip
    assert fleet[0, 0] == 1.1 and mine[0, 0] == 0.6
    assert fleet[1, 0] == 1.1 and mine[1, 0] == 0.6  # zz/0 has no busy_watts: regime unknown


def test_too_few_rows_in_a_regime_leave_the_one_spread() -> None:
    resid, power, keys = _fit_rows(np.random.default_rng(1))
    resid, power, keys = resid.iloc[:40], power[:40], keys[:40]  # one GPU: 10 busy rows
    scales = fit_regimes(resid, power, keys, {"n0/0": H100}, pd.Series({"temp_vs_node": 0.05}))
    assert scales.fleet.loc[:, "temp_vs_node"].isna().all()


def _scorer(scales: object, one: float) -> GraphRiskModel:
    model = GraphRiskModel()
    model.scale_ = pd.Series({"temp_vs_node": one, "pcie_replay_rate": 1.0})
    model.own_scale_ = pd.DataFrame(columns=["temp_vs_node", "pcie_replay_rate"], dtype=float)
    model.regimes_ = scales  # type: ignore[assignment]
    return model


def test_the_scorer_judges_an_idle_gpu_3_degrees_over_its_node_far_out_and_a_busy_one_not() -> None:
    resid, power, keys = _fit_rows(np.random.default_rng(2))
    scales = fit_regimes(
        resid, power, keys, {k: H100 for k in keys.unique()}, pd.Series({"temp_vs_node": 0.05})
    )
    model = _scorer(scales, one=1.1)
    at = pd.Index(["n0/0", "n0/0"])
    scale = model._scale_for(at, pd.Series([62.0, 480.0]))
    z = 3.0 / scale[:, 0]
    assert z[0] > 8  # idle: 3 °C is ten idle spreads
    assert z[1] < 2.5  # busy: within a job's usual swing
    assert list(scale[:, 1]) == [1.0, 1.0]  # a counter keeps the one spread
    # a model fitted before regimes (or without power) judges both with the one spread
    assert list(_scorer(None, one=1.1)._scale_for(at, pd.Series([62.0, 480.0]))[:, 0]) == [
        1.1,
        1.1,
    ]


def test_a_gpu_of_a_model_with_one_regime_keeps_the_one_spread() -> None:
    """Development fleet 132: an L40S node's rows span few watts; judged by the H100s' idle
    spread, its fan-profile change read +12 sd."""
    resid, power, keys = _fit_rows(np.random.default_rng(3))
    fleet_models = {k: H100 for k in keys.unique()}
    flat = pd.Index([f"l{g}/0" for g in range(4)])
    fleet_models |= {k: "NVIDIA L40S" for k in flat}
    l40s = pd.DataFrame({"temp_vs_node": np.random.default_rng(4).normal(0.0, 1.0, 80)})
    resid = pd.concat([resid, l40s], ignore_index=True)
    power = np.concatenate([power, np.full(80, 280.0)])
    keys = keys.append(pd.Index(np.repeat(flat, 20)))
    scales = fit_regimes(resid, power, keys, fleet_models, pd.Series({"temp_vs_node": 0.05}))
    assert math.isinf(scales.busy_watts["l0/0"])
    # the L40S rows are in neither regime's spread
    assert scales.fleet.loc[False, "temp_vs_node"] < 0.35
    fleet, mine = regime_scale(
        scales, np.full((2, 1), 1.1), own=np.full((2, 1), 0.9), keys=pd.Index(["l0/0", "n0/0"]),
        power=[280.0, 60.0], columns=["temp_vs_node"],
    )  # fmt: skip
    assert (fleet[0, 0], mine[0, 0]) == (1.1, 0.9)
    assert fleet[1, 0] < 0.35


def test_temperature_against_the_gpus_own_history_keeps_the_one_spread() -> None:
    """A fan-profile or inlet change moves ``temp_at_power`` of every GPU of a node alike: only
    the comparisons with peers have regimes."""
    from analysis.regimes import REGIME_FEATURES

    assert "temp_vs_node" in REGIME_FEATURES and "temp_at_power" not in REGIME_FEATURES
    assert "mem_temp_at_power" not in REGIME_FEATURES


def test_a_failing_thermal_interface_reads_far_out_against_its_regimes_spread() -> None:
    """On the simulator's busy fleet it is the busy rows that are steady (idle rows hold a job's
    end): the busy GPU's thermal interface, a third of the way to failure, reads +8 sd against
    its regime and under +4 sd against the one spread; half way, a page against a near miss."""
    from datetime import UTC, datetime, timedelta

    from analysis.graph import build_graph
    from storage.simulator import FleetSimulator, FleetSpec, make_fault

    start, step = datetime(2026, 11, 2, tzinfo=UTC), timedelta(minutes=1)
    spec = FleetSpec(racks=2, nodes_per_rack=2, gpus_per_node=8)
    onset, key = start + timedelta(hours=10), "gpu-node-002/3"
    fault = make_fault("thermal_interface", key, onset, spec=spec, precursor=timedelta(hours=10))
    sim = FleetSimulator(spec, start=start, duration=timedelta(hours=21), seed=3, faults=[fault])
    history = sim.fetch(start, onset - step, step)
    graph = build_graph(sim.topology, history.gpus)
    model = GraphRiskModel(random_state=0).fit(history, graph)
    assert model.regimes_ is not None
    assert model.regimes_.fleet.loc[True, "temp_vs_node"] < 0.6 * model.scale_["temp_vs_node"]

    def judged(share: float) -> tuple[float, float]:
        at = onset + timedelta(hours=10 * share)
        assessment = model.assess(sim.fetch(at - timedelta(hours=1), at, step), graph, at)
        z = model.standardise(assessment.features.loc[[key]]).iloc[0]["temp_vs_node"]
        return float(z), next(s.score for s in assessment.scores if s.key == key)

    third, half = judged(0.3), judged(0.5)
    regimes = model.regimes_
    model.regimes_ = None  # the one spread, as model 12 judged it
    third_one, half_one = judged(0.3), judged(0.5)
    model.regimes_ = regimes
    assert third[0] > 7 and third_one[0] < 4
    assert half[1] >= model.threshold > half_one[1]
