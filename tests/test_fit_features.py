"""A fit's feature history is the cycles' own features, however it is computed.

``feature_history`` places the history's samples on the step grid once for all the fit's cycles
(``analysis.reduce_frames.reduce_frames_at``) instead of once per cycle: the tables must be the
very same numbers (not merely close) as each cycle's own ``reduce_frames``, since a model fitted
on them must score exactly as before. The fleet has faults, a counter reset, scrape gaps, a GPU
that vanishes, XIDs, a repeated sample and a NaN sample.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from analysis.feature_plan import FeaturePlan
from analysis.features import (
    DEFAULT_RECENT,
    DEFAULT_WINDOW,
    build_features,
    feature_history,
    gpu_models,
)
from analysis.fit_window import fit_times
from analysis.frames import sort_frames
from analysis.graph import build_graph
from analysis.reduce_frames import reduce_frames, reduce_frames_at
from analysis.thermal import FLEET, LAG, LEAD_IN, fit_temp_per_watt
from analysis.types import FleetFrames
from storage.simulator import FleetSimulator, FleetSpec, make_fault
from storage.simulator.layout import GPU_METRICS

START = datetime(2026, 11, 18, tzinfo=UTC)
STEP = timedelta(minutes=1)
DURATION = timedelta(hours=2)
PLAN = FeaturePlan(DEFAULT_WINDOW, DEFAULT_RECENT, STEP)
GONE = "gpu-node-003/3"


@pytest.fixture(scope="module")
def history() -> tuple[FleetFrames, object]:
    """Two hours of a 16-GPU fleet with faults and edits, and its graph."""
    spec = FleetSpec(racks=2, nodes_per_rack=2, gpus_per_node=4)
    onset = START + timedelta(minutes=30)
    faults = [
        make_fault("hbm", "gpu-node-002/2", onset, spec=spec, precursor=timedelta(hours=1)),
        make_fault("pcie", "gpu-node-004/1", onset, spec=spec, precursor=timedelta(hours=1)),
    ]
    sim = FleetSimulator(spec, start=START, duration=DURATION, step=STEP, seed=5, faults=faults)
    col = {f"{n}/{g}": i * 4 + g for i, n in enumerate(spec.node_names) for g in range(4)}
    m = {name: i for i, name in enumerate(GPU_METRICS)}
    gpu = sim.readings.gpu
    sbe = gpu[m["DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"], :, col["gpu-node-001/0"]]
    sbe[70:] = np.cumsum(np.ones(len(sbe) - 70))  # a counter reset
    gpu[:, [40, 41, 75, 100], col["gpu-node-002/1"]] = np.nan  # scrape gaps
    gpu[:, 80:, col[GONE]] = np.nan  # vanishes 40 minutes before the end
    xid = gpu[m["DCGM_FI_DEV_XID_ERRORS"], :, col["gpu-node-004/2"]]
    xid[60:] = 13.0
    xid[90:] = 79.0
    end = START + DURATION - STEP
    frames = sim.fetch(START, end, STEP)
    extra = frames.gpu.iloc[[10, 500]].copy()  # a repeated sample (the later row wins) ...
    extra["value"] = [123.0, np.nan]  # ... and one whose value is NaN
    frames = FleetFrames(
        gpu=pd.concat([frames.gpu, extra], ignore_index=True),
        node=frames.node,
        component=frames.component,
        up=frames.up,
        start=frames.start,
        end=frames.end,
        step=frames.step,
    )
    graph = build_graph(spec.topology(), [])
    return frames, graph


def test_one_grid_gives_every_cycle_its_own_reductions(history: tuple[FleetFrames, object]) -> None:
    frames, _ = history
    gpu = sort_frames(frames).gpu
    end = frames.end
    times = [
        *fit_times(START, end, DEFAULT_WINDOW, 48),
        end - timedelta(seconds=30),  # off the grid of the others: reduced on its own
        START + timedelta(minutes=5),  # a window mostly before the history
    ]
    got = reduce_frames_at(gpu, PLAN, times)
    assert len(got) == len(times)
    for at, table in zip(times, got, strict=True):
        want = reduce_frames(gpu, PLAN, at)
        pd.testing.assert_frame_equal(table, want, check_exact=True, obj=str(at))
    # the vanished GPU drops out of the later cycles, as in each cycle's own table
    assert GONE in got[0].index
    assert GONE not in got[len(times) - 3].index


@pytest.mark.parametrize("slopes", ["none", "learnt", "no-fleet", "lagged", "lagged-no-fleet"])
def test_feature_history_is_every_cycle_built_on_its_own(
    history: tuple[FleetFrames, object], slopes: str
) -> None:
    """Also with the fit's degrees per watt, whose peer deviations are computed once for the
    whole history (``analysis.context.peer_rows``), and without the fleet's slope among them
    (each window's own estimate then stands in: computed per cycle), and with a thermal lag
    (the window's first rows read the samples before it)."""
    frames, graph = history
    learnt = fit_temp_per_watt(frames, gpu_models(graph))  # type: ignore[arg-type]
    assert FLEET in learnt
    tpw = {
        "none": None,
        "learnt": learnt,
        "no-fleet": {"no-such-model": 0.2},
        # temperature compared at the lagged power reads LEAD_IN before each window
        "lagged": {**learnt, LAG: 120.0},
        "lagged-no-fleet": {"no-such-model": 0.2, LAG: 60.0},
    }[slopes]
    times = fit_times(START, frames.end, DEFAULT_WINDOW, 48)
    rows = feature_history(frames, graph, times, temp_per_watt=tpw)
    ordered = sort_frames(frames)
    for at in (times[0], times[17], times[-1]):
        want = build_features(ordered, graph, at, DEFAULT_WINDOW, temp_per_watt=tpw)
        got = rows.xs(pd.Timestamp(at), level="at")
        pd.testing.assert_frame_equal(got, want, check_exact=True, check_names=False, obj=str(at))


def test_a_cycle_with_its_lead_in_is_the_history_s_cycle(
    history: tuple[FleetFrames, object],
) -> None:
    """A cycle reads its window and, as ``FleetFrames.lead``, the peer metrics of LEAD_IN before
    it (``bot.pipeline.Pipeline.read_window``): with a thermal lag its rows are the fit's. Without
    the lead-in the lag of the window's first rows is cut short, which the test can see."""
    from analysis.frames import slice_frame, slice_frames

    frames, graph = history
    ordered = sort_frames(frames)
    tpw = {**fit_temp_per_watt(frames, gpu_models(graph)), LAG: 120.0}  # type: ignore[arg-type]
    times = fit_times(START, frames.end, DEFAULT_WINDOW, 48)
    at = times[-5]
    rows = feature_history(frames, graph, times, temp_per_watt=tpw).xs(pd.Timestamp(at), level="at")
    start = at - DEFAULT_WINDOW
    window = slice_frames(ordered, start, at)
    lead = slice_frame(ordered.gpu, pd.Timestamp(start - LEAD_IN - STEP), pd.Timestamp(start))
    got = build_features(replace(window, lead=lead), graph, at, temp_per_watt=tpw)
    pd.testing.assert_frame_equal(got, rows, check_exact=True, check_names=False)
    short = build_features(window, graph, at, temp_per_watt=tpw)
    assert not short["temp_vs_node_slope"].equals(rows["temp_vs_node_slope"])


def test_a_cycle_cut_from_the_history_pivot_is_its_own_pivot(
    history: tuple[FleetFrames, object],
) -> None:
    from analysis.context import PEER_METRICS
    from analysis.features import _rows_of
    from analysis.frames import slice_frames

    frames, _ = history
    ordered = sort_frames(frames)
    wide = ordered.gpu_wide(PEER_METRICS)
    for at in fit_times(START, frames.end, DEFAULT_WINDOW, 48)[::7]:
        want = slice_frames(ordered, at - DEFAULT_WINDOW, at).gpu_wide(PEER_METRICS)
        got, _ = _rows_of(wide, at, DEFAULT_WINDOW)
        pd.testing.assert_frame_equal(got, want, check_exact=True, obj=str(at))
        for mine, theirs in zip(got.index.levels, want.index.levels, strict=True):
            pd.testing.assert_index_equal(mine, theirs, exact=True)


def test_node_context_cut_from_the_history_split_is_the_windows_own(
    history: tuple[FleetFrames, object],
) -> None:
    """A window of the history's per-metric split gives the node context of the window's own
    node frame, with a fan's gap, a node without node power and no hwmon metric at all."""
    from analysis.context import FAN, HWMON, NODE_POWER, metric_rows, node_context
    from analysis.frames import slice_frame, to_utc

    frames, _ = history
    node = frames.node
    gap = (node["metric"] == FAN) & (node["sensor"] == node["sensor"].iloc[0])
    gap &= node["ts"].between(to_utc(START + timedelta(minutes=50)), to_utc(START + DURATION))
    drop = gap | (node["metric"] == HWMON)
    drop |= (node["metric"] == NODE_POWER) & (node["node"] == "gpu-node-002")
    ordered = sort_frames(replace(frames, node=node[~drop].reset_index(drop=True))).node
    split = metric_rows(ordered)
    nodes = pd.Index(sorted(ordered["node"].unique()))
    for at in fit_times(START, frames.end, DEFAULT_WINDOW, 48)[::7]:
        end = to_utc(at)
        start = end - pd.Timedelta(DEFAULT_WINDOW)
        win = slice_frame(ordered, start, end)
        kw = {"nodes": nodes, "at": end, "recent": DEFAULT_RECENT}
        want = node_context(win, frames.up, **kw)
        cut = {m: slice_frame(rows, start, end) for m, rows in split.items()}
        got = node_context(win, frames.up, by_metric=cut, **kw)
        pd.testing.assert_frame_equal(got, want, check_exact=True, obj=str(at))
    assert want["hwmon_temp"].isna().all() and want["node_power"].isna().sum() == 1


def test_frames_from_a_time_keep_that_time_and_drop_what_came_before(
    history: tuple[FleetFrames, object],
) -> None:
    """What a cycle's other readers see of its read (``Pipeline.read_window``): as a range query
    from the window's start returns it, the start's own samples included."""
    from analysis.frames import frames_from

    frames, _ = history
    start = pd.Timestamp(START + timedelta(minutes=30))
    cut = frames_from(frames, start.to_pydatetime())
    assert cut.start == start.to_pydatetime() and cut.end == frames.end
    for name in ("gpu", "node", "component", "up"):
        before, after = getattr(frames, name), getattr(cut, name)
        assert after["ts"].min() == start
        assert len(after) == int((before["ts"] >= start).sum())
