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
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from analysis.context import PEER_METRICS
from analysis.feature_memo import SpanFeatures
from analysis.feature_plan import FeaturePlan
from analysis.features import DEFAULT_RECENT, DEFAULT_WINDOW, build_features, gpu_models
from analysis.frames import split_lead
from analysis.graph import build_graph
from analysis.sustained import SustainedRisk
from analysis.thermal import LAG, fit_temp_per_watt, lead_in
from analysis.types import FleetFrames
from bot.commands.scan import scan_times
from storage.simulator import FleetSimulator, FleetSpec, make_fault
from storage.simulator.layout import GPU_METRICS
from storage.span_source import SpanSource

START = datetime(2026, 11, 18, tzinfo=UTC)
STEP = timedelta(minutes=1)
SPEC = FleetSpec(racks=2, nodes_per_rack=2, gpus_per_node=4)
AT = START + timedelta(hours=3)
PLAN = FeaturePlan(DEFAULT_WINDOW, DEFAULT_RECENT, STEP)
READS = DEFAULT_WINDOW + lead_in(STEP)
GONE = "gpu-node-003/3"


@pytest.fixture(scope="module")
def sim() -> FleetSimulator:
    """Three hours of a 16-GPU fleet: a fault, and a GPU gone 20 minutes before the scan."""
    fault = make_fault(
        "hbm", "gpu-node-002/2", AT - timedelta(hours=1), spec=SPEC, precursor=timedelta(hours=2)
    )
    sim = FleetSimulator(
        SPEC, start=START, duration=timedelta(hours=3, minutes=5), step=STEP, seed=7, faults=[fault]
    )
    col = {f"{n}/{g}": i * 4 + g for i, n in enumerate(SPEC.node_names) for g in range(4)}
    gone = int((AT - timedelta(minutes=20) - START) / STEP)
    sim.readings.gpu[: len(GPU_METRICS), gone:, col[GONE]] = np.nan
    return sim


def _cycle(source: SpanSource | FleetSimulator, sim: FleetSimulator, at: datetime) -> FleetFrames:
    """What ``Pipeline.read_window`` reads for a scorer of reductions."""
    fetched = source.fetch(at - READS, at, STEP, gpu_metrics=PEER_METRICS)
    return replace(split_lead(fetched, at - DEFAULT_WINDOW), reduced=sim.reduce(PLAN, at))


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
