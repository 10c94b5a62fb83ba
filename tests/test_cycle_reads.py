"""A cycle's two reads (the raw peer window and the reductions) side by side when the source
allows it (``Pipeline.read_window``, ``concurrent_reads``), one after the other when not.

The source is the simulator wrapped to gate its reads: the window's fetch waits for the
reductions to have started, which only happens before it returns when they were sent from
another thread (one after the other, the wait runs out and the test fails). The real
client against Prometheus and VictoriaMetrics reads the same frames either way
(``tests/test_reductions_promql.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from analysis.feature_plan import FeaturePlan
from analysis.scoring import GraphRiskModel
from analysis.types import FleetFrames, Reductions
from bot.pipeline import Pipeline
from storage.repository import Repository
from storage.simulator import FleetSimulator, FleetSpec
from storage.source import MetricsSourceError

START = datetime(2026, 11, 18, 8, 0, tzinfo=UTC)
AT = START + timedelta(hours=3)
STEP = timedelta(minutes=1)
SPEC = FleetSpec(racks=1, nodes_per_rack=2, gpus_per_node=4)
#: How long the gated fetch waits for the reductions to start (only a failing test waits it out).
WAIT = 20.0


@dataclass
class Gated:
    """The simulator, its fetch waiting for its reductions to have started."""

    sim: FleetSimulator
    concurrent_reads: bool
    fail_fetch: bool = False
    fail_reduce: bool = False
    started: threading.Event = field(default_factory=threading.Event)
    threads: dict[str, str] = field(default_factory=dict)

    def fetch(
        self,
        start: datetime,
        end: datetime,
        step: timedelta,
        *,
        gpu_metrics: Sequence[str] | None = None,
        nodes: Collection[str] | None = None,
    ) -> FleetFrames:
        self.threads["fetch"] = threading.current_thread().name
        if self.concurrent_reads:
            assert self.started.wait(WAIT), "the reductions were not sent beside the fetch"
        if self.fail_fetch:
            raise MetricsSourceError("the window's read failed")
        return self.sim.fetch(start, end, step, gpu_metrics=gpu_metrics, nodes=nodes)

    def reduce(self, plan: FeaturePlan, at: datetime) -> Reductions:
        self.threads["reduce"] = threading.current_thread().name
        self.started.set()
        if self.fail_reduce:
            raise MetricsSourceError("the reductions failed")
        return self.sim.reduce(plan, at)

    def cordoned(self, at: datetime) -> frozenset[str]:
        return self.sim.cordoned(at)


@pytest.fixture(scope="module")
def sim() -> FleetSimulator:
    return FleetSimulator(SPEC, start=START, duration=timedelta(hours=4), step=STEP, seed=5)


def _pipeline(source: object, sim: FleetSimulator) -> Pipeline:
    return Pipeline(
        source=source,  # type: ignore[arg-type]
        topology=sim.topology,
        repository=Repository.from_url("sqlite://"),
        make_scorer=lambda: GraphRiskModel(random_state=0, fit_window=timedelta(hours=2)),
        fit_window=timedelta(hours=2),
    )


@pytest.mark.parametrize("together", [True, False], ids=["side-by-side", "one-after-other"])
def test_a_cycle_reads_as_the_source_allows_and_reads_the_same(
    sim: FleetSimulator, together: bool
) -> None:
    gated = Gated(sim, concurrent_reads=together)
    pipe = _pipeline(gated, sim)
    assert pipe.feature_window is not None  # a scorer of reductions: two reads a cycle
    got = pipe.read_window(AT)
    main = threading.main_thread().name
    assert gated.threads["fetch"] == main
    assert (gated.threads["reduce"] != main) is together
    want = _pipeline(sim, sim).read_window(AT)
    for name in ("gpu", "lead", "node", "component", "up"):
        pd.testing.assert_frame_equal(getattr(got, name), getattr(want, name), check_exact=True)
    assert got.reduced is not None and want.reduced is not None
    pd.testing.assert_frame_equal(got.reduced.table, want.reduced.table, check_exact=True)


@pytest.mark.parametrize(
    ("fail_fetch", "fail_reduce", "message"),
    [
        (True, True, "the window's read failed"),
        (True, False, "the window's read failed"),
        (False, True, "the reductions failed"),
    ],
    ids=["both", "fetch", "reduce"],
)
def test_a_failed_read_side_by_side_is_raised_as_one_after_the_other_raises_it(
    sim: FleetSimulator, fail_fetch: bool, fail_reduce: bool, message: str
) -> None:
    for together in (True, False):
        gated = Gated(sim, together, fail_fetch=fail_fetch, fail_reduce=fail_reduce)
        gated.started.set()  # one after the other the fetch goes first: do not wait
        with pytest.raises(MetricsSourceError, match=message):
            _pipeline(gated, sim).read_window(AT)
