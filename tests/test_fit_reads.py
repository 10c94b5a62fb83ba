"""What a fit reads from a source that reduces at many times: reductions where they pay.

A source with ``reduce_at`` (Prometheus, VictoriaMetrics) gives a fit of the default 24 hours the
GPUs' own reductions at the fit's cycle ends and only the peer metrics raw; a short history, a
sample of nodes or a source without ``reduce_at`` reads every series raw. The fit learns the
same model either way (against real servers: ``tests/test_reductions_promql.py``); here the
source is the simulator with an in-memory ``reduce_at`` that records what was asked.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

import analysis.scoring
from analysis.context import PEER_METRICS
from analysis.explain import Explainer
from analysis.feature_plan import FeaturePlan
from analysis.features import DEFAULT_RECENT, DEFAULT_WINDOW, feature_history
from analysis.frames import sort_frames
from analysis.graph import build_graph
from analysis.peer_memo import PeerRowsMemo
from analysis.scoring import GraphRiskModel
from analysis.thermal import FLEET, fit_temp_per_watt, lead_in
from analysis.types import FleetFrames, Reductions
from bot.fit import fit_spans, read_history, reductions_pay
from bot.pipeline import Pipeline
from storage.repository import Repository
from storage.simulator import FleetSimulator, FleetSpec, make_fault
from storage.source import NodeSample
from tests.fixtures.reducing import Reducing

START = datetime(2026, 11, 2, tzinfo=UTC)
STEP = timedelta(minutes=1)


@pytest.fixture(scope="module")
def sim() -> FleetSimulator:
    """Two nodes of two GPUs, 26 hours at a 60-s scrape."""
    spec = FleetSpec(racks=1, nodes_per_rack=2, gpus_per_node=2)
    return FleetSimulator(spec, start=START, duration=timedelta(hours=26), step=STEP, seed=3)


def test_a_day_s_fit_reads_reductions_at_its_cycle_ends_and_the_peers_raw(
    sim: FleetSimulator,
) -> None:
    """24 hours: the reductions at the scorer's 48 cycle ends, the peer metrics raw; the model
    fitted on them is the one fitted on every raw series."""
    source = Reducing(sim)
    scorer = GraphRiskModel(random_state=0)
    end = START + timedelta(hours=25)
    start = end - timedelta(hours=24)
    history = read_history(source, scorer, start, end, STEP)
    times = scorer.history_times(start, end)
    assert len(times) == 48 and source.asked == [tuple(times)]
    assert source.fetched == [PEER_METRICS]
    assert set(history.gpu["metric"]) == set(PEER_METRICS)
    assert history.fit_reduced is not None and len(history.fit_reduced) == 48
    raw = read_history(sim, GraphRiskModel(), start, end, STEP)  # every series raw
    graph = build_graph(sim.topology, list(raw.gpus))
    a = GraphRiskModel(random_state=0).fit(history, graph)
    b = GraphRiskModel(random_state=0).fit(raw, graph)
    assert a.columns_ == b.columns_ and a.n_train_rows_ == b.n_train_rows_
    pd.testing.assert_frame_equal(a.baseline_, b.baseline_, rtol=1e-9, atol=1e-12)
    pd.testing.assert_series_equal(a.scale_, b.scale_, rtol=1e-9, atol=1e-12)


def test_a_fleet_past_the_row_budget_is_fitted_on_fewer_cycle_ends(sim: FleetSimulator) -> None:
    """Four GPUs and a budget of 80 rows: 20 cycle ends reduced, and the fit learns from those
    20 x 4 rows, every GPU with its own baseline; the same model as a raw fit of 20 cycles."""
    source = Reducing(sim)
    scorer = GraphRiskModel(random_state=0, fit_max_rows=80)
    end = START + timedelta(hours=25)
    start = end - timedelta(hours=24)
    history = read_history(source, scorer, start, end, STEP)
    assert [len(t) for t in source.asked] == [20]
    assert source.asked[0] == tuple(scorer.history_times(start, end, gpus=4))
    raw = read_history(sim, GraphRiskModel(), start, end, STEP)  # every series raw
    graph = build_graph(sim.topology, list(raw.gpus))
    a = GraphRiskModel(random_state=0, fit_max_rows=80).fit(history, graph)
    b = GraphRiskModel(random_state=0, fit_max_rows=80).fit(raw, graph)
    assert a.n_train_rows_ == b.n_train_rows_ == 80
    assert a.baseline_.notna().all().all() and len(a.baseline_) == 4
    pd.testing.assert_frame_equal(a.baseline_, b.baseline_, rtol=1e-9, atol=1e-12)
    unbudgeted = GraphRiskModel(random_state=0, fit_max_rows=0).fit(raw, graph)
    assert unbudgeted.n_train_rows_ == 48 * 4


@pytest.mark.parametrize(
    ("gpus", "budget", "cycles"),
    [
        (128, 200_000, 48),  # the evaluation's fleets: every cycle
        (4_166, 200_000, 48),
        (10_000, 200_000, 20),
        (100_000, 200_000, 16),  # the floor
        (100_000, 0, 48),  # no budget
        (None, 200_000, 48),  # a fleet of unknown size
    ],
)
def test_the_row_budget_sets_the_fit_s_cycles(gpus: int | None, budget: int, cycles: int) -> None:
    """``fit_max_rows // gpus`` cycles, between 16 and ``fit_cycles``."""
    scorer = GraphRiskModel(fit_max_rows=budget)
    assert scorer.cycles_for(gpus) == cycles
    end = START + timedelta(hours=25)
    assert len(scorer.history_times(end - timedelta(hours=24), end, gpus=gpus)) == cycles


@pytest.mark.parametrize(
    ("hours", "nodes", "why"),
    [
        (2, None, "two hours at a 60-s scrape: the raw samples are fewer"),
        (24, NodeSample(frozenset({"gpu-node-001"})), "a sample of nodes"),
    ],
)
def test_otherwise_a_fit_reads_every_series_raw(
    sim: FleetSimulator, hours: int, nodes: NodeSample | None, why: str
) -> None:
    """A short history, or a sample of nodes: one raw fetch of every GPU metric, no reductions."""
    source = Reducing(sim)
    scorer = GraphRiskModel(random_state=0, fit_window=timedelta(hours=hours))
    end = START + timedelta(hours=25)
    history = read_history(source, scorer, end - timedelta(hours=hours), end, STEP, nodes=nodes)
    assert source.asked == [], why
    assert source.fetched == [None], why
    assert history.fit_reduced is None


def test_a_short_history_of_a_fleet_past_the_budget_reads_its_fewer_cycle_ends_reduced(
    sim: FleetSimulator,
) -> None:
    """Two hours at a 60-s scrape do not pay at 48 cycle ends, but do at the 16 a fleet past
    its row budget is fitted on: told the fleet's size, the fit reads those reduced (the peer
    metrics raw), and learns the model a raw fit of the same 16 cycle ends learns."""
    end = START + timedelta(hours=25)
    start = end - timedelta(hours=2)

    def scorer() -> GraphRiskModel:  # 4 GPUs, 64 rows: 16 cycle ends
        return GraphRiskModel(random_state=0, fit_window=timedelta(hours=2), fit_max_rows=64)

    unknown = Reducing(sim)
    read_history(unknown, scorer(), start, end, STEP)
    assert unknown.asked == [] and unknown.fetched == [None]  # at the most cycle ends: raw
    source = Reducing(sim)
    history = read_history(source, scorer(), start, end, STEP, gpus=4)
    assert source.fetched == [PEER_METRICS]
    assert [len(t) for t in source.asked] == [16]
    raw = read_history(sim, GraphRiskModel(), start, end, STEP)  # every series raw
    graph = build_graph(sim.topology, list(raw.gpus))
    a, b = scorer().fit(history, graph), scorer().fit(raw, graph)
    assert a.n_train_rows_ == b.n_train_rows_ == 64
    pd.testing.assert_frame_equal(a.baseline_, b.baseline_, rtol=1e-9, atol=1e-12)
    pd.testing.assert_series_equal(a.scale_, b.scale_, rtol=1e-9, atol=1e-12)


def test_a_cold_start_counts_the_reporting_gpus_before_its_fit_reads(tmp_path: Path) -> None:
    """A pipeline with no fleet yet (a one-shot scan, a first start) asks which GPUs report in
    the history's last window, so a fleet past its row budget reads its cycle ends reduced."""
    sim = FleetSimulator(
        FleetSpec(racks=1, nodes_per_rack=2, gpus_per_node=2),
        start=START,
        duration=timedelta(hours=4),
        step=STEP,
        seed=3,
    )
    source = Reducing(sim)
    pipeline = Pipeline(
        source=source,
        topology=sim.topology,
        repository=Repository.from_url(f"sqlite:///{tmp_path / 'state.db'}"),
        make_scorer=lambda: GraphRiskModel(
            random_state=0, fit_window=timedelta(hours=2), fit_max_rows=64
        ),
        fit_window=timedelta(hours=2),
        render=False,
    )
    at = START + timedelta(hours=3)
    model = pipeline.fit_model(at)
    assert [len(t) for t in source.asked] == [16]
    assert model.scorer.n_train_rows_ == 64  # type: ignore[attr-defined]


def test_a_history_too_large_to_hold_is_read_span_by_span_and_learns_the_same_model(
    sim: FleetSimulator,
) -> None:
    """A day whose peer metrics pass the span budget: the fit reads its cycle windows a span at
    a time, as it featurises them, and the thermal constants from every GPU at the slope's
    timestamps and the lag's nodes raw; it learns the model a fit on every raw series learns,
    and scores a cycle the same."""
    source = Reducing(sim)
    end = START + timedelta(hours=25)
    start = end - timedelta(hours=24)
    history = read_history(
        source, GraphRiskModel(random_state=0), start, end, STEP, gpus=4, span_samples=2_000
    )
    assert history.fit_spans is not None and len(history.fit_spans) > 4
    assert source.ranges[0][2] == 5 * STEP  # the slope's 288 timestamps: every 5th minute
    reads_before = len(source.ranges)
    # every series raw (a source without reduce_at), with the first cycle's thermal lead-in
    raw = read_history(sim, GraphRiskModel(random_state=0), start, end, STEP)
    assert raw.lead is not None and raw.lead["ts"].min() == start - lead_in(STEP)
    graph = build_graph(sim.topology, list(raw.gpus))
    a = GraphRiskModel(random_state=0).fit(history, graph)
    spans = source.ranges[reads_before:]
    assert len(spans) == len(history.fit_spans)  # each span read once, while fitting
    assert all((hi - lo) // STEP + 1 <= 2_000 // 12 for lo, hi, _ in spans)
    b = GraphRiskModel(random_state=0).fit(raw, graph)
    assert a.temp_per_watt_ == b.temp_per_watt_ and a.temp_per_watt_
    assert a.columns_ == b.columns_ and a.n_train_rows_ == b.n_train_rows_ == 48 * 4
    pd.testing.assert_frame_equal(a.baseline_, b.baseline_, rtol=1e-9, atol=1e-12)
    pd.testing.assert_series_equal(a.scale_, b.scale_, rtol=1e-9, atol=1e-12)
    pd.testing.assert_frame_equal(a.own_scale_, b.own_scale_, rtol=1e-9, atol=1e-12)
    at = end + timedelta(minutes=30)
    window = sim.fetch(at - timedelta(minutes=30), at, STEP)
    mine, theirs = a.assess(window, graph, at), b.assess(window, graph, at)
    assert mine.scores == theirs.scores and mine.incidents == theirs.incidents


def test_a_fit_read_span_by_span_takes_the_peer_rows_its_spans_share_from_the_one_before(
    sim: FleetSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two hours fitted at 16 cycle ends 6 minutes apart, one 30-minute window a span: each
    span's peer rows of the timestamps the span before also held are taken from it (the fit's
    :class:`PeerRowsMemo`), and every feature row, bit for bit, is the one the span gives
    computed whole."""
    end = START + timedelta(hours=3)
    start = end - timedelta(hours=2)
    scorer = GraphRiskModel(random_state=0, fit_window=timedelta(hours=2), fit_cycles=16)
    history = read_history(Reducing(sim), scorer, start, end, STEP, gpus=4, span_samples=500)
    assert history.fit_spans is not None
    spans = list(history.fit_spans)
    assert len(spans) == 16  # one cycle window each, overlapping the one before by 24 minutes
    graph = build_graph(sim.topology, list(history.gpus))
    slopes = (
        GraphRiskModel(random_state=0)
        .fit(read_history(sim, GraphRiskModel(random_state=0), START, end, STEP), graph)
        .temp_per_watt_
    )
    assert FLEET in slopes
    memo = PeerRowsMemo()
    args = [(sort_frames(s), graph, sorted(r.at for r in s.fit_reduced or ())) for s in spans]
    taken = [feature_history(*a, temp_per_watt=slopes, peer_memo=memo) for a in args]
    whole = [feature_history(*a, temp_per_watt=slopes) for a in args]
    assert memo.reused > 2 * memo.computed  # most of each span's rows came from the one before
    assert memo.computed >= 30 * 4  # the first span's rows, at least, were computed
    for got, want in zip(taken, whole, strict=True):
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    # the fit takes them too: its model is the one of spans computed whole, bit for bit
    a = scorer.fit(history, graph)
    monkeypatch.setattr(analysis.scoring, "PeerRowsMemo", lambda: None)  # each span whole
    b = GraphRiskModel(random_state=0, fit_window=timedelta(hours=2), fit_cycles=16)
    b.fit(history, graph)
    assert a.n_train_rows_ == b.n_train_rows_ == 16 * 4
    assert pickle.dumps(a) == pickle.dumps(b)


def test_a_fleet_past_the_thermal_budget_reads_fewer_of_the_slope_s_timestamps(
    sim: FleetSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fit read span by span whose slope timestamps would pass ``THERMAL_SAMPLES`` (GPUs x
    timestamps) reads every k-th of them, from the last back, in one range query; the slope
    pooled over the GPUs is close to the one from every timestamp."""
    import analysis.thermal
    import bot.fit

    monkeypatch.setattr(analysis.thermal, "LAG_NODES", 1)  # the other node read at the stride
    end = START + timedelta(hours=25)
    start = end - timedelta(hours=24)
    args = (GraphRiskModel(random_state=0), start, end, STEP)
    full_source = Reducing(sim)
    full = read_history(full_source, *args, gpus=4, span_samples=2_000)
    monkeypatch.setattr(bot.fit, "THERMAL_SAMPLES", 4 * 100)  # 288 timestamps -> every 3rd
    source = Reducing(sim)
    thin = read_history(source, *args, gpus=4, span_samples=2_000)
    (lo, hi, stride), (_, full_hi, full_stride) = source.ranges[0], full_source.ranges[0]
    assert stride == 3 * full_stride == 15 * STEP
    assert hi == full_hi and (hi - lo) // stride == 95  # 96 of the 288, the last one kept
    since = args[0].fit_start(start, end)
    want = fit_temp_per_watt(full, {}, since=since)
    got = fit_temp_per_watt(thin, {}, since=since)
    assert got.keys() == want.keys() == {FLEET} and got != want
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=0.1, abs=0.005), key


def test_spans_join_overlapping_windows_within_the_budget() -> None:
    """Windows that overlap share a span until it would pass the budget; windows apart (a
    large fleet's day: cycle ends an hour apart) are read apart; a window alone may pass it."""
    reach = timedelta(minutes=42)
    close = [START + timedelta(minutes=5 * i) for i in range(1, 7)]  # 5 minutes apart
    spans = fit_spans(close, reach, STEP, gpus=10, budget=10 * 3 * 60)  # 60 points a span
    assert [s.times for s in spans] == [tuple(close[:4]), tuple(close[4:])]
    assert spans[0].start == close[0] - reach and spans[0].end == close[3]
    apart = [START + timedelta(hours=i) for i in range(3)]
    spans = fit_spans(apart, reach, STEP, gpus=10, budget=10**9)
    assert [s.times for s in spans] == [(t,) for t in apart]
    assert len(fit_spans(close, reach, STEP, gpus=10**6, budget=1)) == len(close)


def test_reductions_pay_from_a_few_hours_of_samples() -> None:
    """48 times of the plan's reductions against its own-series metrics raw, at a 60-s scrape."""
    plan = FeaturePlan(DEFAULT_WINDOW, DEFAULT_RECENT, STEP)
    assert not reductions_pay(plan, 48, 120)  # 2 hours
    assert reductions_pay(plan, 48, 1441)  # 24 hours
    assert reductions_pay(plan, 12, 120)  # fewer cycle ends


def test_a_stored_model_explains_from_a_sample_of_nodes_raw_history(tmp_path: Path) -> None:
    """A model loaded from disk comes without an explainer: the first incident's explanation
    fits one on the raw history of a sample of whole nodes (about 128 GPUs of the fleet's 144),
    not on every series of the fit window."""
    spec = FleetSpec(racks=3, nodes_per_rack=6, gpus_per_node=8)
    onset = START + timedelta(hours=7)
    fault = make_fault("pcie", "gpu-node-002/1", onset, spec=spec, precursor=timedelta(hours=2))
    sim = FleetSimulator(spec, start=START, duration=timedelta(hours=10), seed=11, faults=[fault])
    stored = GraphRiskModel(random_state=0, fit_window=timedelta(hours=6))
    history = sim.fetch(START, onset - timedelta(minutes=30), STEP)
    stored.fit(history, build_graph(sim.topology, list(history.gpus)))
    source = Reducing(sim)
    pipeline = Pipeline(
        source=source,
        topology=sim.topology,
        repository=Repository.from_url(f"sqlite:///{tmp_path / 'state.db'}"),
        make_scorer=lambda: GraphRiskModel(random_state=0, fit_window=timedelta(hours=6)),
        make_explainer=lambda: Explainer(random_state=0),
        load_model=lambda graph: stored,
        fit_window=timedelta(hours=6),
        render=False,
    )
    assert fault.failure is not None
    at, explained = onset + timedelta(minutes=30), []
    while at <= fault.failure and not explained:
        outcome = pipeline.run_cycle(at)
        assert outcome.ok, outcome.error
        explained = [i for i in outcome.incidents if i.explanation is not None]
        at += timedelta(minutes=5)
    assert explained, "no incident was explained"
    assert pipeline.current is not None and pipeline.current.scorer is stored
    # besides the incident's own node (read for its explanation and images): one sample
    sampled = [n for n in source.nodes if n is not None and len(n) > 1]
    assert len(sampled) == 1 and 14 <= len(sampled[0]) <= 17  # 8 GPUs a node: ~128 of 144


def test_the_row_budget_comes_from_gpu_risk_fit_max_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The setting reaches every learning scorer the bot builds; its default is the model's."""
    from analysis.scorer import ScorerParams
    from analysis.scoring import DEFAULT_FIT_MAX_ROWS
    from bot.config import load_settings
    from bot.wiring import scorer_factory

    assert load_settings(None).fit_max_rows == ScorerParams().fit_max_rows == DEFAULT_FIT_MAX_ROWS
    monkeypatch.setenv("GPU_RISK_FIT_MAX_ROWS", "1234")
    settings = load_settings(None)
    for detector in ("graph", "iforest", "ecod"):
        scorer = scorer_factory(settings, detector)()
        assert getattr(scorer, "fit_max_rows", None) == 1234, detector


@dataclass
class SideBySide(Reducing):
    """:class:`Reducing` over a TSDB client that reads side by side (``concurrent_reads``): a
    fetch waits for a ``reduce_at`` to have started, which happens before it returns only when
    the reductions were sent from another thread."""

    concurrent_reads: bool = True
    started: threading.Event = field(default_factory=threading.Event)

    def fetch(
        self,
        start: datetime,
        end: datetime,
        step: timedelta,
        *,
        gpu_metrics: Sequence[str] | None = None,
        nodes: Collection[str] | None = None,
    ) -> FleetFrames:
        assert self.started.wait(20.0), "the fit's reductions were not sent beside its reads"
        return super().fetch(start, end, step, gpu_metrics=gpu_metrics, nodes=nodes)

    def reduce_at(self, plan: FeaturePlan, times: Sequence[datetime]) -> list[Reductions]:
        self.started.set()
        return super().reduce_at(plan, times)


@pytest.mark.parametrize("span_samples", [None, 2_000], ids=["whole", "span-by-span"])
def test_the_server_reduces_at_the_fit_s_cycle_ends_while_its_raw_reads_are_decoded(
    sim: FleetSimulator, span_samples: int | None
) -> None:
    """A fit from a client that reads side by side sends the reductions at its cycle ends from
    a second thread while this one reads the peer metrics (or, span by span, the thermal
    constants' samples), and gets the history one after the other gives."""
    end = START + timedelta(hours=25)
    start = end - timedelta(hours=24)
    budget = {} if span_samples is None else {"span_samples": span_samples}
    source = SideBySide(sim)
    got = read_history(source, GraphRiskModel(random_state=0), start, end, STEP, gpus=4, **budget)
    main = threading.main_thread().name
    reduced = [name for read, name in source.threads if read == "reduce_at"]
    assert len(reduced) == 1 and reduced[0] != main
    assert {name for read, name in source.threads if read == "fetch"} == {main}
    want = read_history(
        Reducing(sim), GraphRiskModel(random_state=0), start, end, STEP, gpus=4, **budget
    )
    assert got.fit_reduced is not None and want.fit_reduced is not None
    for a, b in zip(got.fit_reduced, want.fit_reduced, strict=True):
        assert a.at == b.at
        pd.testing.assert_frame_equal(a.table, b.table, check_exact=True)
    pd.testing.assert_frame_equal(got.gpu, want.gpu, check_exact=True)
    assert (got.fit_spans is None) is (want.fit_spans is None) is (span_samples is None)
