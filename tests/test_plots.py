"""Incident PNGs: valid images of sensible size, drawn without pyplot."""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from analysis.graph import build_graph, gpus_behind
from analysis.plots import _series_for, panels, render_incident_graph, render_incident_metrics
from analysis.plots.panels import _highlight_order, _row_quantiles
from analysis.types import (
    Explanation,
    Factor,
    FleetFrames,
    GpuRef,
    GpuScore,
    Incident,
    RootCause,
)
from tests.fixtures.explain_frames import START, STEP, make_fleet, make_topology

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _decode(png: bytes) -> np.ndarray:
    """Decode PNG bytes to an RGBA array."""
    assert png.startswith(PNG_MAGIC)
    return imread(io.BytesIO(png), format="png")


def _incident(target: str, kind: str, keys: list[str]) -> Incident:
    """A hand-made incident."""
    return Incident(
        id="i1",
        at=START + 119 * STEP,
        severity="critical",
        score=0.93,
        root_cause=RootCause(target, kind),  # type: ignore[arg-type]
        gpus=tuple(GpuScore(*k.split("/"), 0.9) for k in keys),
    )


@pytest.fixture(scope="module")
def pdu_fleet() -> tuple[FleetFrames, Incident, dict[str, float]]:
    """A PDU sag on rack 1 of a small hand-made fleet."""
    fleet = make_fleet(120, fault="pdu", target="pdu-a1", onset=80, seed=11)
    keys = gpus_behind(fleet.graph, "pdu-a1")
    incident = _incident("pdu-a1", "pdu", keys)
    incident = replace(
        incident,
        explanation=Explanation(
            summary="pdu-a1: output voltage fell",
            factors=(
                Factor("output_volts", "pdu-a1", 0.7),
                Factor("ipmi_voltage_volts", "pdu-a1", 0.3),
            ),
        ),
    )
    scores = {g.key: 0.1 for g in fleet.frames.gpus} | dict.fromkeys(keys, 0.88)
    return fleet.frames, incident, scores


def test_graph_png_decodes_with_sensible_size(
    pdu_fleet: tuple[FleetFrames, Incident, dict[str, float]],
) -> None:
    """The dependency picture is a real PNG, landscape, readable size."""
    frames, incident, scores = pdu_fleet
    graph = build_graph(make_topology(), frames.gpus)
    img = _decode(render_incident_graph(incident, graph, scores))
    h, w = img.shape[:2]
    assert 700 <= w <= 1700 and 300 <= h <= 800, (w, h)
    # the root cause's red outline and risk colours are there: not a blank canvas
    assert img[..., :3].std() > 0.05


def test_metrics_png_has_one_panel_per_key_metric(
    pdu_fleet: tuple[FleetFrames, Incident, dict[str, float]],
) -> None:
    """The metrics picture decodes; three panels make it taller than one."""
    frames, incident, _scores = pdu_fleet
    png = render_incident_metrics(incident, frames, onset=START + 80 * STEP)
    img = _decode(png)
    h, w = img.shape[:2]
    assert 800 <= w <= 1400 and 400 <= h <= 1000, (w, h)
    single = _decode(
        render_incident_metrics(
            replace(incident, explanation=None, root_cause=RootCause("gpu-node-001/0", "gpu")),
            frames.__class__(
                frames.gpu[frames.gpu["metric"] == "DCGM_FI_DEV_GPU_TEMP"],
                frames.node.iloc[0:0],
                frames.component.iloc[0:0],
                frames.up,
                frames.start,
                frames.end,
                frames.step,
            ),
        )
    )
    assert single.shape[0] < h  # only the temperature panel exists there


def test_many_gpus_are_collapsed_per_node() -> None:
    """A PDU over 8 nodes x 8 GPUs is drawn as one box per node, not 64 illegible boxes."""
    topo = make_topology(racks=2, nodes_per_rack=8)
    gpus = [GpuRef(n, str(g)) for n in topo.nodes for g in range(8)]
    graph = build_graph(topo, gpus)
    keys = gpus_behind(graph, "pdu-a1")
    assert len(keys) == 64
    scores = dict.fromkeys((g.key for g in gpus), 0.2) | dict.fromkeys(keys[:10], 0.9)
    img = _decode(render_incident_graph(_incident("pdu-a1", "pdu", keys[:10]), graph, scores))
    assert img.shape[1] <= 1600  # bounded width even with 64 GPUs behind the PDU


def test_gpu_incident_renders_and_differs_from_component(
    pdu_fleet: tuple[FleetFrames, Incident, dict[str, float]],
) -> None:
    """A single-GPU incident shows its node's GPUs; the picture differs from the PDU one."""
    frames, incident, scores = pdu_fleet
    graph = build_graph(make_topology(), frames.gpus)
    gpu = _incident("gpu-node-003/1", "gpu", ["gpu-node-003/1"])
    a = render_incident_graph(gpu, graph, scores | {"gpu-node-003/1": 0.97})
    b = render_incident_graph(incident, graph, scores)
    assert _decode(a).shape != _decode(b).shape or a != b
    m = _decode(render_incident_metrics(gpu, frames))
    assert m.shape[0] > 300


def test_empty_window_still_renders() -> None:
    """No metrics at all gives a PNG saying so, not an exception."""
    fleet = make_fleet(10, seed=12)
    empty = FleetFrames(
        FleetFrames.empty_frame(("ts", "node", "gpu", "metric", "value")),
        FleetFrames.empty_frame(("ts", "node", "metric", "sensor", "value")),
        FleetFrames.empty_frame(("ts", "component", "metric", "value")),
        FleetFrames.empty_frame(("ts", "node", "job", "value")),
        fleet.frames.start,
        fleet.frames.end,
        fleet.frames.step,
    )
    _decode(render_incident_metrics(_incident("gpu-node-001/0", "gpu", ["gpu-node-001/0"]), empty))


def test_plots_never_import_pyplot() -> None:
    """Using analysis.plots leaves matplotlib.pyplot unimported (Figure + Agg canvas only)."""
    code = """
import sys
from tests.fixtures.explain_frames import START, STEP, make_fleet
from analysis.graph import gpus_behind
from analysis.plots import render_incident_graph, render_incident_metrics
from analysis.types import GpuScore, Incident, RootCause
fleet = make_fleet(60, fault="fan", target="gpu-node-002", onset=30, seed=1)
keys = gpus_behind(fleet.graph, "gpu-node-002")
inc = Incident("i", START + 59 * STEP, "warning", 0.8, RootCause("gpu-node-002", "node"),
               tuple(GpuScore(*k.split("/"), 0.8) for k in keys))
assert render_incident_graph(inc, fleet.graph, {k: 0.8 for k in keys}).startswith(b"\\x89PNG")
assert render_incident_metrics(inc, fleet.frames, START + 30 * STEP).startswith(b"\\x89PNG")
print("matplotlib.pyplot" in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="."
    )
    assert out.stdout.strip() == "False", out.stderr


def test_gpu_panel_series_are_time_by_gpu_and_the_last_sample_wins(
    pdu_fleet: tuple[FleetFrames, Incident, dict[str, float]],
) -> None:
    """A GPU panel is drawn from FleetFrames.gpu_wide: time x GPU key, a repeated sample's last row."""
    frames, incident, _scores = pdu_fleet
    metric = "DCGM_FI_DEV_GPU_TEMP"
    gpu = frames.gpu[frames.gpu["metric"] == metric]
    first = gpu.iloc[[0]].assign(value=-1.0)  # a repeat of the first sample, appended last
    frames = replace(frames, gpu=pd.concat([gpu, first], ignore_index=True))
    mine, peers, what = _series_for(metric, incident, frames)
    assert what == "GPU"
    keys = sorted(mine.columns) + sorted(peers.columns)
    assert keys == sorted(frames.gpu_wide([metric]).index.get_level_values("key").unique())
    assert set(mine.columns) == {g.key for g in incident.gpus}
    key = f"{first['node'].iloc[0]}/{first['gpu'].iloc[0]}"
    wide = pd.concat([mine, peers], axis=1)
    assert wide.loc[first["ts"].iloc[0], key] == -1.0
    assert wide.index.is_monotonic_increasing


def test_the_worst_lines_are_highlighted_in_the_harmful_direction() -> None:
    """Hot GPUs first for a temperature, slow fans first for fan speed, either way for power."""
    stamps = pd.date_range("2026-11-20", periods=12, freq="1min", tz="UTC")
    peers = pd.DataFrame({"p1": [60.0] * 12, "p2": [62.0] * 12}, index=stamps)
    mine = pd.DataFrame(
        {"idle": [31.0] * 12, "hot": [75.0] * 12, "warm": [66.0] * 12}, index=stamps
    )
    assert _highlight_order("DCGM_FI_DEV_GPU_TEMP", mine, peers) == ["hot", "warm", "idle"]
    assert _highlight_order("ipmi_fan_speed_rpm", mine, peers) == ["idle", "warm", "hot"]
    assert _highlight_order("DCGM_FI_DEV_POWER_USAGE", mine, peers) == ["idle", "hot", "warm"]


def test_row_quantiles_are_pandas_quantiles_skipping_gaps() -> None:
    """The panels' vectorised peer band is pandas' row quantile: gaps skipped, empty rows NaN."""
    rng = np.random.default_rng(7)
    values = rng.normal(60.0, 5.0, size=(40, 25))
    values[rng.random(values.shape) < 0.2] = np.nan  # scrape gaps
    values[3, :] = np.nan  # a timestamp no peer reported
    values[5, 1:] = np.nan  # one peer only
    stamps = pd.date_range("2026-11-20", periods=40, freq="1min", tz="UTC")
    wide = pd.DataFrame(values, index=stamps, columns=[f"n/{i}" for i in range(25)])
    qs = [0.1, 0.5, 0.9]
    got = _row_quantiles(wide, qs)
    want = wide.quantile(qs, axis=1).T
    assert list(got.columns) == qs and got.index.equals(wide.index)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-12, equal_nan=True)
    assert np.isnan(got.iloc[3]).all() and (got.iloc[5] == values[5, 0]).all()


def test_gpu_panels_from_one_shared_pivot_equal_each_metrics_own(
    pdu_fleet: tuple[FleetFrames, Incident, dict[str, float]],
) -> None:
    """The picture pivots its GPU metrics once for all panels; each panel's series are the same
    as pivoting that metric alone (the slower way it was drawn before)."""
    frames, incident, _scores = pdu_fleet
    metrics = ["DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE"]
    some = frames.gpu[frames.gpu["metric"].isin(metrics)]
    stamps = some["ts"].drop_duplicates().sort_values()
    missed = some["ts"].isin(stamps.iloc[::5])  # power missed whole scrapes, and some samples
    some = some[~((some["metric"] == metrics[1]) & (missed | (some.index % 7 == 0)))]
    frames = replace(frames, gpu=some)
    shared = frames.gpu_wide(metrics)
    for metric in metrics:
        alone = _series_for(metric, incident, frames)
        together = _series_for(metric, incident, frames, gpu_wide=shared)
        for a, b in zip(alone[:2], together[:2], strict=True):
            pd.testing.assert_frame_equal(a, b)


def test_a_large_fleets_panels_draw_the_incidents_nodes_and_a_bounded_sample_of_peers() -> None:
    """On a fleet with more nodes than PEER_NODES, the band is drawn from the incident's own
    nodes and PEER_NODES others, the same ones every time, spread over racks; every affected GPU
    stays, and a fleet within the cap is drawn whole."""
    fleet = make_fleet(30, racks=10, nodes_per_rack=10, gpus_per_node=2, seed=3)
    frames = fleet.frames
    incident = _incident("gpu-node-057", "node", ["gpu-node-057/0", "gpu-node-057/1"])
    metric = "DCGM_FI_DEV_GPU_TEMP"
    keep = panels._with_peer_nodes(frames.gpu, {"gpu-node-057"}, limit=12)
    assert keep.equals(panels._with_peer_nodes(frames.gpu, {"gpu-node-057"}, limit=12))
    nodes = set(keep["node"])
    assert "gpu-node-057" in nodes and len(nodes) == 13
    racks = {fleet.graph.nodes[n]["rack"] for n in nodes - {"gpu-node-057"}}
    assert len(racks) >= 4  # a hash, not the first names of the first rack
    mine, peers, _ = _series_for(metric, incident, replace(frames, gpu=keep))
    assert set(mine.columns) == {"gpu-node-057/0", "gpu-node-057/1"}
    assert peers.shape[1] == 12 * 2
    assert panels._with_peer_nodes(frames.gpu, {"gpu-node-057"}, limit=99) is frames.gpu
    assert panels.PEER_NODES >= 32  # enough peers for a 10-90 % band
    png = render_incident_metrics(incident, frames)
    assert _decode(png).shape[0] > 300
