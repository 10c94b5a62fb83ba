"""Degrees per watt learnt once per fit: temperature at equal power holds still between fits."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import networkx as nx
import numpy as np
import pytest

from analysis.feature_plan import POWER, TEMP
from analysis.features import build_features, gpu_models
from analysis.scoring import GraphRiskModel
from analysis.thermal import FLEET, fit_temp_per_watt
from analysis.types import FleetFrames
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
    assert model.temp_per_watt_ == fit_temp_per_watt(frames, gpu_models(graph), since=START)
    loaded = GraphRiskModel.from_bytes(model.to_bytes())
    assert loaded.temp_per_watt_ == model.temp_per_watt_
    table = loaded.assess(frames, graph, END).features
    assert table is not None
    expected = build_features(
        frames, graph, END, timedelta(minutes=10), temp_per_watt=model.temp_per_watt_
    )
    np.testing.assert_allclose(table["temp_at_power"], expected["temp_at_power"])
