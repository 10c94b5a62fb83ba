"""A one-shot scan's cycles featurised from their span: the very features of each cycle's own.

``gpu-risk scan`` runs its held-risk checkpoints and warm-up cycles on windows cut from one read
of their span (``storage.span_source.SpanSource``); ``analysis.feature_memo.SpanFeatures``
compares the span's peer metrics once and cuts each cycle's rows from them. A model scores
these features, so they must be the same numbers (not merely close) as each cycle's own, with
a thermal lag (the first rows of a window read the samples before it), a GPU that vanishes
within the span, and a fault.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pandas as pd
import pytest

from analysis.feature_memo import SpanFeatures
from analysis.features import DEFAULT_WINDOW, build_features, gpu_models
from analysis.graph import build_graph
from analysis.sustained import SustainedRisk
from analysis.thermal import LAG, fit_temp_per_watt
from analysis.types import FleetFrames
from bot.commands.scan import scan_times
from storage.simulator import FleetSimulator
from storage.span_source import SpanSource
from tests.fixtures.cycle_fleet import AT, GONE, READS, SPEC, START, STEP, cycle_frames, fleet


@pytest.fixture(scope="module")
def sim() -> FleetSimulator:
    """Three hours of a 16-GPU fleet: a fault, and a GPU gone 20 minutes before the scan."""
    return fleet(seed=7)


def _cycle(source: SpanSource | FleetSimulator, sim: FleetSimulator, at: datetime) -> FleetFrames:
    """What ``Pipeline.read_window`` reads for a scorer of reductions."""
    return cycle_frames(source, sim, at)


def test_each_cycle_of_a_span_has_its_own_features(sim: FleetSimulator) -> None:
    graph = build_graph(SPEC.topology(), [])
    history = sim.fetch(START, AT - timedelta(hours=1), STEP)
    tpw = {**fit_temp_per_watt(history, gpu_models(graph)), LAG: 120.0}
    times = scan_times(AT, STEP, 5, SustainedRisk(0.5, timedelta(hours=1)))
    assert len(times) == 10
    span = SpanSource(sim, times, READS)
    memo = SpanFeatures(span_of=span.span_of)
    for at in times:
        frames = _cycle(span, sim, at)
        assert span.span_of(frames) is not None
        got = memo.build(frames, graph, at, DEFAULT_WINDOW, temp_per_watt=tpw)
        alone = _cycle(sim, sim, at)
        want = build_features(alone, graph, at, DEFAULT_WINDOW, temp_per_watt=tpw)
        pd.testing.assert_frame_equal(got, want, check_exact=True, obj=str(at))
    assert memo.runs == 1  # the span's peer rows once for the ten cycles
    assert got.loc[GONE, "fail_vanished"]
    # the lag reads the lead-in: without it the first rows' comparison differs (the test sees it)
    short = build_features(
        replace(frames, lead=None), graph, times[-1], DEFAULT_WINDOW, temp_per_watt=tpw
    )
    assert not short["temp_vs_node_slope"].equals(got["temp_vs_node_slope"])


def test_a_cycle_read_on_its_own_or_without_the_fit_s_slopes_is_built_as_before(
    sim: FleetSimulator,
) -> None:
    graph = build_graph(SPEC.topology(), [])
    times = scan_times(AT, STEP, 1, None)
    span = SpanSource(sim, times, READS)
    memo = SpanFeatures(span_of=span.span_of)
    own = _cycle(sim, sim, AT - timedelta(hours=1))  # outside the span: read on its own
    assert span.span_of(own) is None
    for frames, at in ((own, AT - timedelta(hours=1)), (_cycle(span, sim, AT), AT)):
        got = memo.build(frames, graph, at, DEFAULT_WINDOW, temp_per_watt=None)
        want = build_features(frames, graph, at, DEFAULT_WINDOW)
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert memo.runs == 0
