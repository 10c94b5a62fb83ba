"""Degrees per watt and the thermal lag learnt once per fit: temperature at equal power holds
still between fits, and a job starting elsewhere does not make a busy GPU look hot."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import networkx as nx
import numpy as np
import pytest

from analysis.feature_plan import POWER, TEMP
from analysis.features import build_features, gpu_models
from analysis.scoring import GraphRiskModel
from analysis.thermal import (
    FLEET,
    LAG,
    LAG_NODES,
    MAX_TIMESTAMPS,
    fit_temp_per_watt,
    fit_thermal_lag,
    lag_nodes,
    lagged_power,
    slope_times,
)
from analysis.types import FleetFrames
from storage.simulator.signals import thermal_lag
from tests.fixtures.handmade_fleet import END, START, fleet

#: gpu-node-001/002 hold model A (0.10 K/W, each GPU its own offset); 003/004 model B, air-cooled:
#: hot at idle and only 0.02 K/W more per watt.
MODEL = {"gpu-node-001": "A", "gpu-node-002": "A", "gpu-node-003": "B", "gpu-node-004": "B"}


def _name_models(graph: nx.DiGraph) -> None:
    for node, data in graph.nodes(data=True):
        if data.get("kind") == "node":
            data["model"] = MODEL[node]


def _two_models(node: str, gpu: str, metric: str, t: np.ndarray) -> np.ndarray | None:
    """Model B busy (500 W) for the first half hour, then idle (60 W); model A idle at 80 W,
    except gpu-node-001/0, which runs a job of 400 W from minute 20 to minute 40."""
    if MODEL[node] == "B":
        watts = np.where(t < 30, 500.0, 60.0)
        temp = 60.0 + 0.02 * watts
    else:
        busy = (node, gpu) == ("gpu-node-001", "0")
        watts = np.where(busy & (t >= 20) & (t < 40), 400.0, 80.0)
        temp = 30.0 + 0.10 * watts + int(gpu)  # each GPU its own offset
    return {POWER: watts, TEMP: temp}.get(metric)


def test_the_slope_is_learnt_within_each_gpu_and_per_model() -> None:
    frames, graph = fleet(_two_models)
    _name_models(graph)
    slopes = fit_temp_per_watt(frames, gpu_models(graph))
    # model B: four GPUs per node swung 440 W; model A: one GPU swung (too few for its own)
    assert slopes["B"] == pytest.approx(0.02, abs=1e-9)
    assert "A" not in slopes
    # the fleet's pooled within-GPU slope weighs every swing; GPU and model offsets do not enter
    assert 0.02 < slopes[FLEET] < 0.10
    # a fleet where no GPU changed load: the slope across GPUs over the whole history instead
    flat, _ = fleet(_steady)
    assert set(fit_temp_per_watt(flat, {})) == {FLEET}
    assert fit_temp_per_watt(flat, {})[FLEET] == pytest.approx(0.1, abs=1e-6)
    assert fit_temp_per_watt(_no_gpu(frames), {}) == {}


def _steady(node: str, gpu: str, metric: str, t: np.ndarray) -> np.ndarray | None:
    """Every GPU at its own steady power (100-250 W), 0.1 K/W across them."""
    watts = np.full(t.size, 100.0 + 50 * int(gpu))
    return {POWER: watts, TEMP: 30.0 + 0.1 * watts}.get(metric)


def _no_gpu(frames: FleetFrames) -> FleetFrames:
    return replace(frames, gpu=frames.gpu.iloc[:0])


def test_an_idle_gpu_is_not_hotter_at_its_power_because_other_gpus_stopped_working() -> None:
    # gpu-node-002/1 idles at 80 W and 39 °C for the whole hour. Estimated in each window across
    # the fleet, the degrees per watt follow the other model's jobs (B busy at 500 W, then idle):
    # the idle GPU's temperature "at its power" moves by several degrees between two windows in
    # which nothing about it changed. With the fit's slopes it holds still.
    frames, graph = fleet(_two_models)
    _name_models(graph)
    first, second = START + timedelta(minutes=29), END
    idle = "gpu-node-002/1"
    per_window = [
        build_features(frames, graph, at).loc[idle, "temp_at_power"] for at in (first, second)
    ]
    assert abs(per_window[1] - per_window[0]) > 3.0
    slopes = {"A": 0.10, "B": 0.02, FLEET: 0.05}
    learnt = [
        build_features(frames, graph, at, temp_per_watt=slopes).loc[idle, "temp_at_power"]
        for at in (first, second)
    ]
    assert learnt[0] == pytest.approx(learnt[1], abs=1e-9)
    assert learnt[0] == pytest.approx(39.0 - 0.10 * 80.0, abs=1e-9)


def test_the_fit_learns_the_slopes_keeps_them_and_scores_with_them() -> None:
    frames, graph = fleet(_two_models)
    _name_models(graph)
    model = GraphRiskModel(
        window=timedelta(minutes=10), fit_window=timedelta(minutes=59), fit_cycles=8
    ).fit(frames, graph)
    assert model.temp_per_watt_ == {
        **fit_temp_per_watt(frames, gpu_models(graph), since=START),
        LAG: fit_thermal_lag(frames, since=START),
    }
    loaded = GraphRiskModel.from_bytes(model.to_bytes())
    assert loaded.temp_per_watt_ == model.temp_per_watt_
    table = loaded.assess(frames, graph, END).features
    assert table is not None
    expected = build_features(
        frames, graph, END, timedelta(minutes=10), temp_per_watt=model.temp_per_watt_
    )
    np.testing.assert_allclose(table["temp_at_power"], expected["temp_at_power"])


def test_lagged_power_is_a_first_order_lag_of_the_gpu_s_own_samples() -> None:
    step = 60e9  # ns
    ts = np.r_[np.arange(30), np.arange(30)].astype(np.int64) * np.int64(step)
    code = np.r_[np.zeros(30), np.ones(30)].astype(np.int64)
    power = np.r_[np.where(np.arange(30) < 10, 100.0, 500.0), np.full(30, 50.0)]
    power[15] = np.nan  # a missing sample is skipped, and stays missing
    lagged = lagged_power(power, code, ts, 120.0)
    assert lagged[:10] == pytest.approx(100.0)  # steady before the step
    r = np.exp(-60.0 / 120.0)
    kept = np.sum(r ** np.arange(8))  # the weights of the last 8 minutes (4 time constants)
    for m in (1, 2, 3):  # m samples after the step: the share of the new power, as the recursion
        share = np.sum(r ** np.arange(m)) / kept
        assert lagged[9 + m] == pytest.approx(100.0 + 400.0 * share)
    assert np.isnan(lagged[15])
    assert lagged[25:30] == pytest.approx(500.0)  # 4 time constants on: the new power alone
    assert lagged[30:] == pytest.approx(50.0)  # the other GPU's samples never mix in
    assert np.array_equal(lagged_power(power, code, ts, 0.0), power, equal_nan=True)
    with pytest.raises(ValueError, match="sorted"):
        lagged_power(power[::-1], code[::-1], ts[::-1], 120.0)


def _jobs_with_lag(tau_s: float):  # type: ignore[no-untyped-def]
    """Each GPU starts and stops jobs at its own minutes; temperature follows power with
    ``tau_s`` (the simulator's recursion, not the lag the model computes)."""

    def override(node: str, gpu: str, metric: str, t: np.ndarray) -> np.ndarray | None:
        phase = (int(node[-1]) * 7 + int(gpu) * 3) % 11
        watts = np.where(((t + phase) // 9) % 2 == 0, 650.0, 90.0)
        lag = thermal_lag(watts, 60.0, tau_s) if tau_s > 0 else watts
        temp = 30.0 + 0.08 * lag + int(gpu)
        return {POWER: watts, TEMP: temp, "DCGM_FI_DEV_MEMORY_TEMP": temp + 5.0}.get(metric)

    return override


@pytest.mark.parametrize("tau", [0.0, 60.0, 120.0, 180.0])
def test_the_fit_learns_how_far_temperature_lags_power(tau: float) -> None:
    frames, _ = fleet(_jobs_with_lag(tau))
    assert fit_thermal_lag(frames) == tau
    # no GPU changed load: nothing to learn the lag from, none is assumed
    flat, _ = fleet(_steady)
    assert fit_thermal_lag(flat) == 0.0
    assert fit_thermal_lag(_no_gpu(frames)) == 0.0


def _job_starts_elsewhere(node: str, gpu: str, metric: str, t: np.ndarray) -> np.ndarray | None:
    """gpu-node-001 busy at 585 W all hour; gpu-node-003's GPUs start a 660-W job at minute 56
    and warm with a 2-minute lag; everyone else idles at 80 W (development fleet 109)."""
    if node == "gpu-node-001":
        watts = np.full(t.size, 585.0)
    elif node == "gpu-node-003":
        watts = np.where(t >= 56, 660.0, 80.0)
    else:
        watts = np.full(t.size, 80.0)
    temp = 30.0 + 0.08 * thermal_lag(watts, 60.0, 120.0)
    return {POWER: watts, TEMP: temp, "DCGM_FI_DEV_MEMORY_TEMP": temp + 5.0}.get(metric)


def test_a_busy_node_is_not_hot_because_a_job_just_started_elsewhere() -> None:
    frames, graph = fleet(_job_starts_elsewhere)
    thermal = {FLEET: 0.08}
    busy = "gpu-node-001/0"
    # at the instantaneous power the starting GPUs, still at idle temperature, are its only
    # comparable peers: the busy node reads degrees hotter than the fleet "at equal power"
    plain = build_features(frames, graph, END, temp_per_watt=thermal)
    assert plain.loc[busy, "node_temp_vs_fleet"] > 3.0
    # at the power each GPU has been drawing (the fit's lag) they are as warm as their load
    lagged = build_features(frames, graph, END, temp_per_watt={**thermal, LAG: 120.0})
    assert abs(lagged.loc[busy, "node_temp_vs_fleet"]) < 0.5


def test_the_lead_in_keeps_the_window_s_sample_grid() -> None:
    from analysis.thermal import LEAD_IN, lead_in

    assert lead_in(timedelta(minutes=1)) == LEAD_IN == timedelta(minutes=12)
    assert lead_in(timedelta(seconds=15)) == LEAD_IN
    assert lead_in(timedelta(minutes=5)) == timedelta(minutes=15)
    assert lead_in(timedelta(0)) == LEAD_IN


def test_the_slope_s_timestamps_are_a_regular_stride_a_range_query_serves() -> None:
    """At most 288 points of the history's grid after the fit window's start, every k-th back
    from the newest (a range query at k steps returns exactly them); all of a short history."""
    start, step = datetime(2026, 11, 2, tzinfo=UTC), timedelta(minutes=1)
    end = start + timedelta(hours=24, seconds=30)  # off the grid: the newest point is before it
    since = start + timedelta(minutes=10)
    picks = slope_times(start, end, step, since)
    assert picks[-1] == start + timedelta(hours=24) and picks[0] > since
    assert len(picks) <= MAX_TIMESTAMPS and len(picks) > MAX_TIMESTAMPS - 5
    assert {b - a for a, b in pairwise(picks)} == {5 * step}
    assert all((t - start) % step == timedelta(0) for t in picks)
    short = slope_times(start, start + timedelta(hours=2), step)
    assert short == [start + i * step for i in range(121)]
    assert slope_times(start, start, timedelta(0)) == []


def test_the_lag_s_nodes_are_evenly_spaced_over_the_sorted_names() -> None:
    """32 of 100 nodes, the first and last among them, whatever order they come in."""
    names = [f"gpu-node-{i:03d}" for i in range(100)]
    chosen = lag_nodes(reversed(names))
    assert len(chosen) == LAG_NODES and chosen == sorted(chosen)
    assert chosen[0] == names[0] and chosen[-1] == names[-1]
    assert lag_nodes(names[:5]) == names[:5]
