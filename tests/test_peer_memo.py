"""Successive cycles' peer rows, the shared timestamps taken from the last cycle: the same bits.

A running bot's cycles are a minute apart over 30-minute windows (and the thermal lag's lead-in
before them): ``analysis.peer_memo.PeerRowsMemo`` compares each new timestamp only and takes
the rest from the cycle before, when the samples are the same. A model scores these features,
so they must be the very numbers of each cycle's own computation, with a thermal lag, a GPU
that vanishes, a fault, a sample that changed after it was read, and a new fit.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from analysis.context import PEER_METRICS
from analysis.features import DEFAULT_WINDOW, build_features, gpu_models
from analysis.graph import build_graph
from analysis.peer_memo import PeerRowsMemo
from analysis.thermal import LAG, fit_temp_per_watt
from analysis.types import FleetFrames
from storage.simulator import FleetSimulator
from tests.fixtures.cycle_fleet import AT, PLAN, SPEC, START, STEP, cycle_frames, fleet


@pytest.fixture(scope="module")
def sim() -> FleetSimulator:
    """Three hours of a 16-GPU fleet: a fault, and a GPU gone 20 minutes before ``AT``."""
    return fleet(seed=11)


@pytest.fixture(scope="module")
def tpw(sim: FleetSimulator) -> dict[str, float]:
    """Degrees per watt and a thermal lag, as a fit learns them."""
    graph = build_graph(SPEC.topology(), [])
    history = sim.fetch(START, AT - timedelta(hours=1), STEP)
    return {**fit_temp_per_watt(history, gpu_models(graph)), LAG: 120.0}


def _cycle(sim: FleetSimulator, at: datetime) -> FleetFrames:
    """What ``Pipeline.read_window`` reads for a scorer of reductions."""
    return cycle_frames(sim, sim, at)


def _both(
    frames: FleetFrames, at: datetime, memo: PeerRowsMemo, tpw: dict[str, float], graph: object
) -> None:
    """The features with the memo are those without it, bit for bit."""
    got = build_features(frames, graph, at, DEFAULT_WINDOW, temp_per_watt=tpw, peer_memo=memo)
    want = build_features(frames, graph, at, DEFAULT_WINDOW, temp_per_watt=tpw)
    pd.testing.assert_frame_equal(got, want, check_exact=True, obj=str(at))


def test_cycles_a_minute_apart_compare_only_their_new_timestamps(
    sim: FleetSimulator, tpw: dict[str, float]
) -> None:
    graph = build_graph(SPEC.topology(), [])
    memo = PeerRowsMemo()
    times = [AT - timedelta(minutes=m) for m in range(25, -1, -1)]  # the GPU goes at -20
    for at in times:
        _both(_cycle(sim, at), at, memo, tpw, graph)
    # the first cycle computed its 30 timestamps, each later one its newest only
    gpus = SPEC.racks * SPEC.nodes_per_rack * SPEC.gpus_per_node
    assert memo.computed <= 30 * gpus + (len(times) - 1) * gpus
    assert memo.reused >= (len(times) - 1) * 29 * (gpus - 1)


def test_five_minutes_apart_and_a_window_read_again(
    sim: FleetSimulator, tpw: dict[str, float]
) -> None:
    graph = build_graph(SPEC.topology(), [])
    memo = PeerRowsMemo()
    for at in (AT - timedelta(minutes=10), AT - timedelta(minutes=5), AT, AT):
        _both(_cycle(sim, at), at, memo, tpw, graph)
    assert memo.reused > 0


def test_a_sample_changed_since_the_last_cycle_is_compared_again(
    sim: FleetSimulator, tpw: dict[str, float]
) -> None:
    graph = build_graph(SPEC.topology(), [])
    memo = PeerRowsMemo()
    _both(_cycle(sim, AT - STEP), AT - STEP, memo, tpw, graph)
    frames = _cycle(sim, AT)
    late = AT - timedelta(minutes=12)  # a sample re-read with another value (a late scrape)
    gpu = frames.gpu.reset_index(drop=True)
    row = (gpu["ts"] == pd.Timestamp(late)) & (gpu["metric"] == "DCGM_FI_DEV_POWER_USAGE")
    gpu.loc[np.flatnonzero(row.to_numpy())[0], "value"] += 37.0
    before, reused = memo.computed, memo.reused
    _both(replace(frames, gpu=gpu), AT, memo, tpw, graph)
    # that timestamp and every later one (their lagged power reads it) computed again, the
    # 17 before it taken (15 GPUs: one is gone)
    assert memo.computed - before == 13 * 15
    assert memo.reused - reused == 17 * 15 + 9  # the gone GPU's rows until it went


def test_a_new_fit_s_degrees_per_watt_compare_everything_again(
    sim: FleetSimulator, tpw: dict[str, float]
) -> None:
    graph = build_graph(SPEC.topology(), [])
    memo = PeerRowsMemo()
    _both(_cycle(sim, AT - STEP), AT - STEP, memo, tpw, graph)
    refit = {**tpw, LAG: 60.0}
    before = memo.reused
    _both(_cycle(sim, AT), AT, memo, refit, graph)
    assert memo.reused == before  # nothing taken from rows of the old degrees per watt


def test_another_graph_compares_everything_again(
    sim: FleetSimulator, tpw: dict[str, float]
) -> None:
    """A topology read again (racks moved, the same GPUs) is another graph: its peers may be
    others, so no row is taken from the last graph's."""
    memo = PeerRowsMemo()
    _both(_cycle(sim, AT - STEP), AT - STEP, memo, tpw, build_graph(SPEC.topology(), []))
    _both(_cycle(sim, AT), AT, memo, tpw, build_graph(SPEC.topology(), []))
    assert memo.reused == 0


def test_windows_read_without_the_lag_s_lead_in_are_compared_whole(
    sim: FleetSimulator, tpw: dict[str, float]
) -> None:
    """A window without its lead-in (a caller that read just the window): the lag of its first
    rows read samples of the last window that this one does not hold, so none is taken."""
    graph = build_graph(SPEC.topology(), [])
    memo = PeerRowsMemo()
    for at in (AT - STEP, AT):
        frames = sim.fetch(at - DEFAULT_WINDOW, at, STEP, gpu_metrics=PEER_METRICS)
        _both(replace(frames, reduced=sim.reduce(PLAN, at)), at, memo, tpw, graph)
    assert memo.reused == 0
