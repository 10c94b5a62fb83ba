"""A one-shot scan's cold fit runs while another thread reads its cycles' span.

``gpu-risk scan`` runs the cycles a streak needs before the one it reports, their windows read
at once (``storage.span_source.SpanSource``). With a client that reads side by side
(``concurrent_reads``: a TSDB computes one answer while this process decodes another) the fit
of the first cycle's model computes while the span is read (``bot.commands.scan.fit_beside_span``):
one fit, and the scan reports what the scan one read after the other reports. The source is the
simulator with an in-memory ``reduce_at`` that records each read's thread
(``tests.fixtures.reducing``).
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analysis.types import FleetFrames, ScanResult
from bot.config import Settings, load_settings
from storage.simulator import FleetSimulator, FleetSpec, make_fault
from storage.source import MetricsSourceError
from tests.fixtures.reducing import Reducing

START = datetime(2026, 11, 9, tzinfo=UTC)
SPEC = FleetSpec(racks=1, nodes_per_rack=2, gpus_per_node=4)
ONSET = START + timedelta(hours=8)
AT = ONSET + timedelta(hours=3, minutes=15)  # after the failure (a cold fit absorbs a precursor)


@dataclass
class Recorded(Reducing):
    """:class:`Reducing` as a TSDB client that reads side by side or not; its fit's history
    read fails when asked to."""

    concurrent_reads: bool = False
    fail_history: bool = False

    def fetch(
        self,
        start: datetime,
        end: datetime,
        step: timedelta,
        *,
        gpu_metrics: Sequence[str] | None = None,
        nodes: Collection[str] | None = None,
    ) -> FleetFrames:
        if self.fail_history and _history((start, end, step)):
            raise MetricsSourceError("the history's read failed")
        return super().fetch(start, end, step, gpu_metrics=gpu_metrics, nodes=nodes)


def _history(read: tuple[datetime, datetime, timedelta]) -> bool:
    """Whether a read is the fit's history: hours at the scrape step (not which GPUs report in
    the fit window, read at one point per window)."""
    start, end, step = read
    return end - start > timedelta(hours=2) and step < timedelta(minutes=5)


@pytest.fixture(scope="module")
def sim() -> FleetSimulator:
    """Eight GPUs, one of them with an HBM fault from hour 8."""
    fault = make_fault("hbm", "gpu-node-002/1", ONSET, spec=SPEC, precursor=timedelta(hours=3))
    return FleetSimulator(SPEC, start=START, duration=timedelta(hours=12), seed=77, faults=[fault])


def _settings(tmp_path: Path, sim: FleetSimulator) -> Settings:
    from storage.topology import dump_topology

    tmp_path.mkdir(parents=True, exist_ok=True)
    dump_topology(sim.topology, tmp_path / "topology.yaml")
    return load_settings(
        None,
        topology=tmp_path / "topology.yaml",
        fit_window_hours=6,
        model_dir=tmp_path / "models",
    )


def _scan(tmp_path: Path, source: Recorded) -> ScanResult:
    from bot.commands.scan import run_scan

    settings = _settings(tmp_path, source.sim)
    return run_scan(settings, at=AT, detector="graph", source=source, explain=False)  # type: ignore[arg-type]


def _view(result: ScanResult) -> tuple[object, ...]:
    incidents = {(i.dedup_key, i.severity, round(i.score, 12)) for i in result.incidents}
    return result.gpus_scored, incidents, {s.key: s.score for s in result.scores}


def test_the_cold_fit_runs_while_the_span_is_read_and_the_scan_reports_the_same(
    sim: FleetSimulator, tmp_path: Path
) -> None:
    beside = Recorded(sim, concurrent_reads=True)
    got = _scan(tmp_path / "beside", beside)
    alone = Recorded(sim, concurrent_reads=False)
    want = _scan(tmp_path / "alone", alone)
    assert got.incidents, "the HBM fault should be at risk by now"
    assert _view(got) == _view(want)
    main = threading.main_thread().name
    reads = beside.fetches()
    # the fit's history (hours of it) read once, on this thread; the span on another
    history = [r for r in reads if _history(r[1:])]
    assert len(history) == 1 and history[0][0] == main
    span_start = min(r[1] for r in reads if r[2] == AT)
    spans = [r for r in reads if r[1] == span_start]
    assert len(spans) == 1 and spans[0][0].startswith("span")
    # sent once the fit has read its history: the server serves it while the fit computes
    assert reads.index(history[0]) < reads.index(spans[0])
    # one after the other: the span first, on this thread, then the history
    assert {name for _, name in alone.threads} == {main}
    assert len([r for r in alone.fetches() if _history(r[1:])]) == 1


def test_a_fit_that_fails_beside_the_span_fails_the_scan_as_it_would_have(
    sim: FleetSimulator, tmp_path: Path
) -> None:
    """The fit's failure is left to the first cycle, which reads again and reports it."""
    from bot.commands.common import UserError

    for together in (True, False):
        source = Recorded(sim, concurrent_reads=together, fail_history=True)
        with pytest.raises(UserError, match="the history's read failed"):
            _scan(tmp_path / str(together), source)
