"""A cycle's raw window read in part when the last one overlaps it (``storage.rolling``).

The source is the simulator made to answer as a TSDB source does (its frames sorted by labels,
then time: ``concat_frames``, as ``PrometheusSource.fetch`` joins its answers) and to record what
it is asked. Against Prometheus and VictoriaMetrics (scrape gaps, a counter reset, a vanishing
GPU, a server refusing large queries): ``tests/test_reductions_promql.py::
test_a_cycle_reads_only_its_new_minutes_and_gets_its_whole_window``.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from analysis.context import PEER_METRICS
from analysis.scoring import GraphRiskModel
from analysis.types import (
    COMPONENT_COLUMNS,
    GPU_COLUMNS,
    NODE_COLUMNS,
    UP_COLUMNS,
    FleetFrames,
    Reductions,
)
from bot.pipeline import Pipeline
from storage.promql_frames import concat_frames
from storage.repository import Repository
from storage.rolling import REREAD, RollingWindow
from storage.simulator import FleetSimulator, FleetSpec, make_fault
from storage.source import MetricsSourceError
from storage.span_source import SpanSource

START = datetime(2026, 11, 18, 8, 0, tzinfo=UTC)
STEP = timedelta(minutes=1)
SPEC = FleetSpec(racks=2, nodes_per_rack=2, gpus_per_node=4)
WINDOW = timedelta(minutes=42)
AT = START + timedelta(hours=2, minutes=30)


@dataclass
class Tsdb:
    """The simulator answering as a TSDB source: frames sorted by labels, then time."""

    sim: FleetSimulator
    rolling_reads: bool = True
    fail: str | None = None
    """``"part"``: a read that is not a whole window fails; ``"all"``: every read fails."""
    asked: list[tuple[datetime, datetime]] = field(default_factory=list)
    """Each whole-fleet read's start and end (an incident's nodes' reads are not counted)."""

    def fetch(
        self,
        start: datetime,
        end: datetime,
        step: timedelta,
        *,
        gpu_metrics: Sequence[str] | None = None,
        nodes: Collection[str] | None = None,
    ) -> FleetFrames:
        if nodes is None:
            self.asked.append((start, end))
        whole = end - start >= WINDOW
        if self.fail == "all" or (self.fail == "part" and not whole):
            raise MetricsSourceError(f"no DCGM series in [{start}, {end}]")
        f = self.sim.fetch(start, end, step, gpu_metrics=gpu_metrics, nodes=nodes)
        return replace(
            f,
            gpu=concat_frames([f.gpu], GPU_COLUMNS),
            node=concat_frames([f.node], NODE_COLUMNS),
            component=concat_frames([f.component], COMPONENT_COLUMNS),
            up=concat_frames([f.up], UP_COLUMNS),
        )

    def reduce(self, plan, at):  # type: ignore[no-untyped-def]
        return self.sim.reduce(plan, at)

    def cordoned(self, at: datetime) -> frozenset[str]:
        return self.sim.cordoned(at)


@pytest.fixture(scope="module")
def sim() -> FleetSimulator:
    """Four hours of a 16-GPU fleet with a PCIe fault failing inside them."""
    fault = make_fault(
        "pcie",
        "gpu-node-002/1",
        START + timedelta(hours=2),
        spec=SPEC,
        precursor=timedelta(hours=1),
    )
    return FleetSimulator(
        SPEC, start=START, duration=timedelta(hours=4), step=STEP, seed=5, faults=[fault]
    )


def _same(got: FleetFrames, want: FleetFrames, what: str) -> None:
    for name in ("gpu", "node", "component", "up"):
        pd.testing.assert_frame_equal(
            getattr(got, name), getattr(want, name), check_exact=True, obj=f"{what} {name}"
        )
    assert (got.start, got.end, got.step) == (want.start, want.end, want.step)


def test_each_window_after_the_first_is_asked_from_reread_before_the_last_end(
    sim: FleetSimulator,
) -> None:
    """Cycles 1, 5 and 15 minutes apart: the same frames as a whole read, and only the part from
    ``REREAD`` before the last window's end asked."""
    source, rolling = Tsdb(sim), RollingWindow()
    ends = [AT + timedelta(minutes=m) for m in (0, 1, 2, 7, 12, 27)]
    for i, end in enumerate(ends):
        source.asked.clear()
        got = rolling.fetch(source, end - WINDOW, end, STEP, gpu_metrics=PEER_METRICS)
        _same(got, Tsdb(sim).fetch(end - WINDOW, end, STEP, gpu_metrics=PEER_METRICS), str(end))
        first = end - WINDOW if i == 0 else ends[i - 1] - REREAD
        assert source.asked == [(first, end)]


def test_windows_split_at_their_lead_in_read_in_part_as_whole_reads_split(
    sim: FleetSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cycle's read split at its window's start (``lead_until``): what is kept is the split
    frames and the rows before the split, and the next windows come out as a whole read split
    there (its GPU rows before it as the ``lead``), a minute, five and fifteen minutes apart.
    The kept parts and the new minutes are joined by their runs, never by the fallback sort
    (the parts in time order)."""
    from analysis.frames import split_lead
    from storage import promql_frames

    orders: list[bool] = []
    runs = promql_frames.sorted_order

    def spy(df, keys):  # type: ignore[no-untyped-def]
        order = runs(df, keys)
        orders.append(order is not None)
        return order

    monkeypatch.setattr(promql_frames, "sorted_order", spy)
    source, rolling = Tsdb(sim), RollingWindow()
    ends = [AT + timedelta(minutes=m) for m in (0, 1, 2, 7, 22)]
    for i, end in enumerate(ends):
        source.asked.clear()
        split = end - WINDOW + timedelta(minutes=12)
        got = rolling.fetch(
            source, end - WINDOW, end, STEP, gpu_metrics=PEER_METRICS, lead_until=split
        )
        whole = Tsdb(sim).fetch(end - WINDOW, end, STEP, gpu_metrics=PEER_METRICS)
        want = split_lead(whole, split)
        _same(got, want, str(end))
        assert got.lead is not None and want.lead is not None and not got.lead.empty
        pd.testing.assert_frame_equal(got.lead, want.lead, check_exact=True)
        first = end - WINDOW if i == 0 else ends[i - 1] - REREAD
        assert source.asked == [(first, end)]
    assert orders and all(orders)
    # a window kept split is extended unsplit, and the other way round
    later = ends[-1] + STEP
    got = rolling.fetch(source, later - WINDOW, later, STEP, gpu_metrics=PEER_METRICS)
    _same(got, Tsdb(sim).fetch(later - WINDOW, later, STEP, gpu_metrics=PEER_METRICS), "unsplit")
    assert got.lead is None


@pytest.mark.parametrize(
    ("start", "end", "step", "metrics"),
    [
        (AT - WINDOW + timedelta(seconds=30), AT + timedelta(seconds=30), STEP, PEER_METRICS),
        (AT - WINDOW + STEP, AT + STEP, timedelta(seconds=30), PEER_METRICS),
        (AT - WINDOW + STEP, AT + STEP, STEP, None),
        (AT - WINDOW - STEP, AT + STEP, STEP, PEER_METRICS),
        (AT - WINDOW - 2 * STEP, AT - STEP, STEP, PEER_METRICS),
        (AT + timedelta(hours=1) - WINDOW, AT + timedelta(hours=1), STEP, PEER_METRICS),
    ],
    ids=["off-grid", "other-step", "other-metrics", "starts-earlier", "ends-earlier", "no-overlap"],
)
def test_a_window_the_kept_one_cannot_extend_is_read_whole(
    sim: FleetSimulator,
    start: datetime,
    end: datetime,
    step: timedelta,
    metrics: Sequence[str] | None,
) -> None:
    source, rolling = Tsdb(sim), RollingWindow()
    rolling.fetch(source, AT - WINDOW, AT, STEP, gpu_metrics=PEER_METRICS)
    source.asked.clear()
    got = rolling.fetch(source, start, end, step, gpu_metrics=metrics)
    assert source.asked == [(start, end)]
    _same(got, Tsdb(sim).fetch(start, end, step, gpu_metrics=metrics), "whole")


def test_a_failed_part_is_read_whole_and_a_failed_whole_read_raises_as_before(
    sim: FleetSimulator,
) -> None:
    """The last minutes refused (no DCGM data in them): the whole window, as a cycle read it
    before; every read refused: the source's own error, and nothing kept for the next read."""
    source, rolling = Tsdb(sim), RollingWindow()
    rolling.fetch(source, AT - WINDOW, AT, STEP, gpu_metrics=PEER_METRICS)
    source.fail, source.asked = "part", []
    end = AT + STEP
    got = rolling.fetch(source, end - WINDOW, end, STEP, gpu_metrics=PEER_METRICS)
    assert source.asked == [(AT - REREAD, end), (end - WINDOW, end)]
    _same(got, Tsdb(sim).fetch(end - WINDOW, end, STEP, gpu_metrics=PEER_METRICS), "refused")
    source.fail = "all"
    later = end + STEP
    with pytest.raises(MetricsSourceError, match=r"no DCGM series in \["):
        rolling.fetch(source, later - WINDOW, later, STEP, gpu_metrics=PEER_METRICS)
    source.fail, source.asked = None, []
    rolling.fetch(source, later - WINDOW, later, STEP, gpu_metrics=PEER_METRICS)
    assert source.asked == [(later - WINDOW, later)]


def _pipeline(source: object, sim: FleetSimulator) -> Pipeline:
    return Pipeline(
        source=source,  # type: ignore[arg-type]
        topology=sim.topology,
        repository=Repository.from_url("sqlite://"),
        make_scorer=lambda: GraphRiskModel(random_state=0, fit_window=timedelta(hours=2)),
        fit_window=timedelta(hours=2),
    )


def test_the_bot_s_cycles_read_in_part_and_score_as_whole_reads_do(sim: FleetSimulator) -> None:
    """``Pipeline.run_cycle`` over a source with ``rolling_reads``: its second and later cycles
    ask for the new minutes only, and every score and incident equals the cycles of a pipeline
    reading each window whole. A one-shot scan's ``SpanSource`` is never read in part (its
    windows are cut from one read of the span)."""
    rolling, whole = Tsdb(sim), Tsdb(sim, rolling_reads=False)
    a, b = _pipeline(rolling, sim), _pipeline(whole, sim)
    times = [AT + timedelta(minutes=5 * i) for i in range(4)]
    for pipe in (a, b):
        pipe.refit(times[0])
    paged = 0
    for i, at in enumerate(times):
        rolling.asked.clear()
        got, want = a.run_cycle(at), b.run_cycle(at)
        paged += len(got.incidents)
        assert got.ok and want.ok and got.assessment and want.assessment
        assert [(s.key, s.score) for s in got.assessment.scores] == [
            (s.key, s.score) for s in want.assessment.scores
        ]
        assert [i.dedup_key for i in got.incidents] == [i.dedup_key for i in want.incidents]
        window = [(s, e) for s, e in rolling.asked if e == at and s < at - timedelta(minutes=20)]
        assert bool(window) == (i == 0), rolling.asked  # whole only at the first cycle
        # the cycle shared its frames with the rolling read (which keeps them): nothing in the
        # cycle (features, incidents, images) changed them, so a read extending them still
        # gives the whole read's frames
        kept, read = a.read_window(at), b.read_window(at)
        _same(kept, read, f"after the cycle at {at}")
        assert kept.lead is not None and read.lead is not None
        pd.testing.assert_frame_equal(kept.lead, read.lead, check_exact=True)
    assert paged  # the fault is paged, both ways
    span_times = [AT + timedelta(minutes=m) for m in (0, 5, 10)]
    span = SpanSource(Tsdb(sim), span_times, a.reads)
    assert not getattr(span, "rolling_reads", True)
    # nor does it leave the peer metrics' reductions to the cycle: one range query each for
    # the whole run reads their samples once
    assert not getattr(span, "remote_reductions", True)


def test_the_running_bot_s_cycles_sit_on_the_step_grid_so_they_read_in_part(
    sim: FleetSimulator,
) -> None:
    """``Runtime.cycle_time``: the bot's clock (ticks a little late, one a little early) put on
    the step grid, where the reductions are evaluated anyway; each cycle then extends the last
    one's window. A tick whose grid point was scanned already runs at the clock itself (and
    reads whole, off the grid), as every cycle did before."""
    from types import SimpleNamespace

    from bot.runtime import Runtime

    source = Tsdb(sim)
    pipe = _pipeline(source, sim)
    pipe.refit(AT)
    ms = timedelta(milliseconds=1)
    ticks = [AT + 150 * ms, AT + STEP + 20 * ms, AT + 2 * STEP - 10 * ms, AT + 3 * STEP + 400 * ms]
    ticks.append(AT + 4 * STEP + 30 * ms)
    ats, whole = [], []
    for tick in ticks:
        at = Runtime.cycle_time(SimpleNamespace(clock=lambda t=tick: t), pipe)  # type: ignore[arg-type]
        source.asked.clear()
        assert pipe.run_cycle(at).ok
        ats.append(at)
        whole.append(any(e == at and e - s > timedelta(minutes=20) for s, e in source.asked))
    assert ats == [AT, AT + STEP, AT + 2 * STEP - 10 * ms, AT + 3 * STEP, AT + 4 * STEP]
    assert whole == [True, False, True, True, False]


def test_a_fit_s_spans_read_in_part_give_the_whole_reads_frames(sim: FleetSimulator) -> None:
    """``bot.fit.SpanReads`` over a source with ``rolling_reads``: each span after the first
    that overlaps the one before is asked from ``REREAD`` before that one's end, a span apart
    is read whole, every span's frames equal a whole read's, the last span lets the kept
    window go, and a source without ``rolling_reads`` is read whole as before."""
    from bot.fit import SpanReads, fit_spans

    ends = [AT - timedelta(minutes=m) for m in (90, 80, 70, 60, 20, 10)]
    spans = fit_spans(ends, WINDOW, STEP, gpus=16, budget=16 * 3 * 50)  # 50 points a span
    assert [len(s.times) for s in spans] == [1, 1, 1, 1, 1, 1]
    reduced = [Reductions(t, WINDOW, STEP, STEP, pd.DataFrame()) for t in ends]
    source = Tsdb(sim)
    reads = SpanReads(source, spans, STEP, reduced)
    asked = []
    for i, span in enumerate(spans):
        source.asked.clear()
        got = reads[i]
        _same(got, Tsdb(sim).fetch(span.start, span.end, STEP, gpu_metrics=PEER_METRICS), str(i))
        assert got.fit_reduced == (reduced[i],)
        asked += source.asked
    # 70 → 60 overlap; 60 → 20 do not (the window is 42 minutes)
    want = [(spans[0].start, spans[0].end)]
    want += [(spans[i - 1].end - REREAD, spans[i].end) for i in (1, 2, 3)]
    want += [(spans[4].start, spans[4].end), (spans[4].end - REREAD, spans[5].end)]
    assert asked == want
    assert reads._rolling is not None and reads._rolling._kept is None  # let go after the last
    whole = Tsdb(sim, rolling_reads=False)
    list(SpanReads(whole, spans, STEP, reduced))
    assert whole.asked == [(s.start, s.end) for s in spans]
    with pytest.raises(IndexError):
        reads[len(spans)]


@dataclass
class Concurrent(Tsdb):
    """A TSDB source whose reads may be sent from other threads; it records each read's thread
    and can fail the reads ending at ``fail_end``."""

    concurrent_reads: bool = True
    fail_end: datetime | None = None
    threads: list[str] = field(default_factory=list)
    reading: list[threading.Event] = field(default_factory=list)

    def fetch(self, start, end, step, *, gpu_metrics=None, nodes=None):  # type: ignore[no-untyped-def]
        self.threads.append(threading.current_thread().name)
        for event in self.reading:
            event.set()
        if end == self.fail_end:
            raise MetricsSourceError(f"refused [{start}, {end}]")
        return super().fetch(start, end, step, gpu_metrics=gpu_metrics, nodes=nodes)


def test_a_fit_s_next_span_is_read_while_it_computes_this_one(sim: FleetSimulator) -> None:
    """From a source with ``concurrent_reads`` the next span is read from another thread while
    the fit holds this one (each span's consumer waits here until the next read has started):
    the same frames and the same reads as one after the other; a read that fails raises when
    its span is asked for, not before."""
    from bot.fit import SpanReads, fit_spans

    ends = [AT - timedelta(minutes=m) for m in (90, 80, 70, 60)]
    spans = fit_spans(ends, WINDOW, STEP, gpus=16, budget=16 * 3 * 50)
    reduced = [Reductions(t, WINDOW, STEP, STEP, pd.DataFrame()) for t in ends]
    source, plain = Concurrent(sim), Tsdb(sim)
    reads = SpanReads(source, spans, STEP, reduced)
    for i, span in enumerate(spans):
        started = threading.Event()
        source.reading.append(started)
        got = reads[i]
        if i + 1 < len(spans):  # the next span is being read while this one is held
            assert started.wait(10), f"span {i + 1} was not read while span {i} was held"
        source.reading.clear()
        _same(got, plain.fetch(span.start, span.end, STEP, gpu_metrics=PEER_METRICS), str(i))
    assert source.threads[0] == threading.current_thread().name
    assert all(name.startswith("span") for name in source.threads[1:]), source.threads
    assert source.asked == [(spans[0].start, spans[0].end)] + [
        (spans[i - 1].end - REREAD, spans[i].end) for i in range(1, len(spans))
    ]
    failing = Concurrent(sim, fail_end=spans[2].end)
    reads = SpanReads(failing, spans, STEP, reduced)
    reads[0], reads[1]  # span 2's read has failed meanwhile (its part, then whole)
    with pytest.raises(MetricsSourceError, match="refused"):
        reads[2]
