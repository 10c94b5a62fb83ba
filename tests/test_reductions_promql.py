"""The feature plan's two evaluators agree: PromQL in a real TSDB and pandas in memory.

One simulated fleet (faults, a counter reset, scrape gaps, a GPU that vanishes, XIDs) is written
once and loaded into a real Prometheus (promtool backfill), a real VictoriaMetrics, and a
VictoriaMetrics that refuses queries reading more than 2,000 samples (``-search.maxSamplesPerQuery``:
every whole-fleet reduction and raw GPU or node query is refused, so each is asked by parts of the
fleet). At several times the reductions the server computes (``PrometheusSource.reduce``) equal
the simulator's in-memory ones (``reduce_fetched``), and the features built from the server's
reductions plus the three peer metrics raw equal those built in memory from every raw series.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests

from analysis.feature_plan import FeaturePlan
from analysis.features import DEFAULT_RECENT, DEFAULT_WINDOW, build_features
from analysis.graph import build_graph
from analysis.reduce_frames import reduce_frames
from analysis.scoring import GraphRiskModel
from analysis.types import FleetFrames
from bot.pipeline import Pipeline
from storage.metrics import PrometheusSource
from storage.promql_reduce import gated_reductions
from storage.repository import Repository
from storage.simulator import FleetSimulator, FleetSpec, make_fault
from storage.simulator.layout import GPU_METRICS
from tests.fixtures.prometheus import (
    PromqlBackend,
    backfill,
    import_into_victoria,
    start_prometheus,
    start_victoria,
    wait_prometheus,
)

pytestmark = [pytest.mark.prometheus, pytest.mark.victoriametrics]
pytest_plugins = ("tests.fixtures.prometheus",)

START = datetime(2026, 11, 18, tzinfo=UTC)
STEP = timedelta(minutes=1)
DURATION = timedelta(hours=3)
SCAN = START + timedelta(hours=2, minutes=50)
TIMES = (
    SCAN - timedelta(minutes=20),
    SCAN - timedelta(minutes=7),
    SCAN,
    SCAN + timedelta(minutes=4),
)
# Float tolerance: both sides sum the same float64 values, in another order (Prometheus uses
# Kahan sums for averages and deviations, linear regression relative to the first sample).
RTOL, ATOL = 1e-9, 1e-9
RESET_GPU = "gpu-node-001/0"  # ECC SBE counter climbs, resets to 0 inside the window
GAP_GPU = "gpu-node-002/1"  # three missing scrapes in the window
GONE_GPU = "gpu-node-003/3"  # every series stops 6 minutes before SCAN
BURST_GPU = "gpu-node-004/2"  # PCIe replays: a burst then a steady climb, XIDs 13 then 79
SBE = "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"
PCIE = "DCGM_FI_DEV_PCIE_REPLAY_COUNTER"
THERMAL = "DCGM_FI_DEV_THERMAL_VIOLATION"
XID = "DCGM_FI_DEV_XID_ERRORS"


@dataclass
class Fleet:
    """The simulated fleet (in memory) and where its history is written."""

    sim: FleetSimulator
    dir: Path


def _minute(at: datetime) -> int:
    """Grid index of a time."""
    return int((at - START) / STEP)


def _edit(sim: FleetSimulator) -> None:
    """Write a counter reset, scrape gaps, a vanishing GPU and XIDs into the readings."""
    readings = sim.readings
    spec = sim.spec
    col = {
        f"{n}/{g}": i * spec.gpus_per_node + g
        for i, n in enumerate(spec.node_names)
        for g in range(spec.gpus_per_node)
    }
    m = {name: i for i, name in enumerate(GPU_METRICS)}
    steps = readings.gpu.shape[1]
    rng = np.random.default_rng(7)
    reset = _minute(SCAN - timedelta(minutes=12))
    sbe = np.cumsum(rng.integers(0, 4, steps)).astype(float) + 500.0
    sbe[reset:] = np.cumsum(rng.integers(0, 3, steps - reset)).astype(float)
    readings.gpu[m[SBE], :, col[RESET_GPU]] = sbe
    for k in (9, 8, 3):
        readings.gpu[:, _minute(SCAN - timedelta(minutes=k)), col[GAP_GPU]] = np.nan
    readings.gpu[:, _minute(SCAN - timedelta(minutes=5)) :, col[GONE_GPU]] = np.nan
    pcie = np.cumsum(rng.integers(0, 2, steps)).astype(float)
    pcie[_minute(SCAN - timedelta(minutes=15)) :] += 400.0
    readings.gpu[m[PCIE], :, col[BURST_GPU]] = pcie
    xid = np.zeros(steps)
    xid[_minute(SCAN - timedelta(minutes=18)) :] = 13.0
    xid[_minute(SCAN - timedelta(minutes=4)) :] = 79.0
    readings.gpu[m[XID], :, col[BURST_GPU]] = xid


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    """A 16-GPU simulated fleet with an HBM and a PCIe fault, edited, written to disk once."""
    spec = FleetSpec(racks=2, nodes_per_rack=2, gpus_per_node=4)
    onset = START + timedelta(minutes=30)
    faults = [
        make_fault("hbm", "gpu-node-002/2", onset, spec=spec, precursor=timedelta(hours=2)),
        make_fault("pcie", "gpu-node-004/1", onset, spec=spec, precursor=timedelta(hours=2.2)),
    ]
    sim = FleetSimulator(spec, start=START, duration=DURATION, step=STEP, seed=21, faults=faults)
    _edit(sim)
    out = tmp_path_factory.mktemp("reductions")
    sim.write_history(out)
    return Fleet(sim, out)


@pytest.fixture(scope="module", params=["prometheus", "victoriametrics", "victoriametrics-small"])
def server(
    request: pytest.FixtureRequest, fleet: Fleet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """The fleet in Prometheus, VictoriaMetrics, and a VictoriaMetrics with a tiny sample limit."""
    work = tmp_path_factory.mktemp(request.param)
    if request.param == "prometheus":
        backfill(fleet.dir / "metrics.om", work / "tsdb")
        srv = wait_prometheus(start_prometheus(work / "tsdb"))
    else:
        flags = ("-search.maxSamplesPerQuery=2000",) if request.param.endswith("small") else ()
        srv = start_victoria(work / "vmdata", flags)
        import_into_victoria(srv, fleet.dir / "metrics.om")
    try:
        yield request.param, srv.url
    finally:
        srv.stop()


PLAN = FeaturePlan(DEFAULT_WINDOW, DEFAULT_RECENT, STEP)


def _requests() -> tuple[int, int]:
    """The fewest and most requests a table of the plan takes: one per reduction not gated and
    one gate per gated metric, plus the gated ones where their metric changed and the hardware
    XID count where an XID did."""
    gated = gated_reductions(PLAN)
    code_sets = sum(r.codes is not None for r in PLAN.reductions)
    least = len(PLAN.reductions) - len(gated) - code_sets + len({r.metric for r in gated})
    return least, least + len(gated) + code_sets


def test_server_reductions_equal_the_in_memory_ones(fleet: Fleet, server: tuple[str, str]) -> None:
    """Every reduction, every GPU, several times: the same numbers within float tolerance.

    Four reductions in flight at once, as the product sends them (``GPU_RISK_PROMETHEUS_
    CONCURRENCY``), each refused one asked by parts in its own worker.
    """
    kind, url = server
    source = PrometheusSource(url, retries=0, concurrency=4)
    for at in TIMES:
        got = source.reduce(PLAN, at)
        want = fleet.sim.reduce(PLAN, at)
        assert got.at == want.at == at
        assert list(got.table.columns) == list(want.table.columns)
        assert set(got.table.index) == set(want.table.index), at
        pd.testing.assert_frame_equal(
            got.table.sort_index(),
            want.table.sort_index(),
            rtol=RTOL,
            atol=ATOL,
            obj=f"{kind} at {at}",
        )
        stats = source.last_stats
        assert stats is not None
        if kind.endswith("small"):  # refused whole, asked by parts of the fleet
            assert stats.requests > len(PLAN.reductions)


def test_a_flat_counter_is_asked_only_whether_it_changed(
    fleet: Fleet, server: tuple[str, str]
) -> None:
    """The gate: a counter flat on every GPU costs one ``changes`` query and reads 0; one that
    moved on some nodes is asked its increase and steps for those nodes only."""
    kind, url = server
    spec = fleet.sim.spec
    session = Recording()
    source = PrometheusSource(url, retries=0, concurrency=4, session=session)
    got = source.reduce(PLAN, SCAN).table
    sent = [q for path, q in session.sent if path == "query"]
    raw = fleet.sim.fetch(SCAN - DEFAULT_WINDOW + STEP, SCAN, STEP).gpu
    moved = raw.groupby(["metric", "node", "gpu"])["value"].nunique() > 1
    nodes_moved = moved[moved].reset_index().groupby("metric")["node"].agg(set)
    gated = gated_reductions(PLAN)
    flat = {r.metric for r in gated} - set(nodes_moved.index)
    some = {r.metric for r in gated} & set(nodes_moved.index)
    # what the simulator, the edits and the faults wrote
    assert THERMAL in flat and PCIE in some and len(nodes_moved[PCIE]) < len(spec.node_names)

    def naming(metric: str) -> list[str]:
        return [q for q in sent if re.search(rf"\b{metric}\b", q)]

    for metric in flat:
        ungated = [r for r in PLAN.reductions if r.metric == metric and r not in gated]
        if not kind.endswith("small"):  # else each asked by parts
            assert len(naming(metric)) == 1 + len(ungated), naming(metric)
        assert any("changes(" in q for q in naming(metric))
        for red in (r for r in gated if r.metric == metric and r.kind != "new_codes"):
            assert got[red.name].notna().sum() >= 15 and (got[red.name].dropna() == 0).all()
    if kind.endswith("small"):
        return
    for metric in some:
        exact = [q for q in naming(metric) if "changes(" not in q and "Hostname=~" in q]
        assert exact, metric
        for q in exact:
            match = re.search(r'Hostname=~"([^"]*)"', q)
            assert match is not None
            asked = set(match.group(1).replace("\\", "").split("|"))
            assert asked >= nodes_moved[metric] and len(asked) <= len(nodes_moved[metric]) + 1


def test_the_edits_are_in_the_reductions(fleet: Fleet) -> None:
    """The test data has what it claims: a reset, gaps, a vanished GPU, a burst, XIDs."""
    t = fleet.sim.reduce(PLAN, SCAN).table
    g = fleet.sim.fetch(SCAN - DEFAULT_WINDOW + STEP, SCAN, STEP).gpu
    sbe = g[(g["node"] + "/" + g["gpu"] == RESET_GPU) & (g["metric"] == SBE)]["value"].to_numpy()
    steps = np.diff(sbe)
    assert len(sbe) == 30 and (steps < 0).sum() == 1  # one reset inside the window
    # after a reset: the sum of the positive steps (not max - min across the reset)
    assert t.loc[RESET_GPU, f"{SBE}:increase:window"] == steps.clip(min=0).sum()
    assert t.loc[GAP_GPU, "DCGM_FI_DEV_GPU_TEMP:count:window"] <= 27
    last = t.loc[GONE_GPU, "DCGM_FI_DEV_GPU_TEMP:last_time:window"]
    assert last <= (SCAN - timedelta(minutes=6)).timestamp()
    assert t.loc[BURST_GPU, f"{PCIE}:top_step:window"] >= 400
    assert t.loc[BURST_GPU, f"{XID}:new_codes:window:hardware"] == 1
    assert t.loc[BURST_GPU, f"{XID}:new_codes:window:any"] == 2


def test_features_from_either_evaluator_are_the_same(fleet: Fleet, server: tuple[str, str]) -> None:
    """build_features with the server's reductions and only the peer metrics raw = in memory."""
    from analysis.context import PEER_METRICS
    from storage.topology import load_topology

    kind, url = server

    source = PrometheusSource(url, topology=load_topology(fleet.dir / "topology.yaml"), retries=0)
    for at in TIMES:
        full = fleet.sim.fetch(at - DEFAULT_WINDOW, at, STEP)
        graph = build_graph(fleet.sim.topology, full.gpus)
        want = build_features(full, graph, at)
        raw = source.fetch(at - DEFAULT_WINDOW, at, STEP, gpu_metrics=PEER_METRICS)
        assert set(raw.gpu["metric"]) == set(PEER_METRICS)
        got = build_features(replace(raw, reduced=source.reduce(PLAN, at)), graph, at)
        pd.testing.assert_frame_equal(
            got[want.columns],
            want,
            rtol=1e-6,
            atol=1e-6,
            check_dtype=False,
            obj=f"{kind} features at {at}",
        )


class Recording(requests.Session):
    """A session that remembers each request's API path and PromQL."""

    def __init__(self) -> None:
        """Nothing recorded yet."""
        super().__init__()
        self.sent: list[tuple[str, str]] = []
        self.starts: list[tuple[str, pd.Timestamp]] = []
        """Each range query's PromQL and start."""

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """Record, then send."""
        params = kwargs.get("params") or {}
        path = url.rsplit("/api/v1/", 1)[-1]
        self.sent.append((path, str(params.get("query", ""))))
        if path == "query_range":
            start = pd.Timestamp(float(params["start"]), unit="s", tz="UTC")
            self.starts.append((str(params["query"]), start))
        return super().request(method, url, *args, **kwargs)


def _pipeline(source: Any, fleet: Fleet) -> Pipeline:
    """The product's cycle over ``source`` (images, no explainer, in-memory store)."""
    return Pipeline(
        source=source,
        topology=fleet.sim.topology,
        repository=Repository.from_url("sqlite://"),
        make_scorer=lambda: GraphRiskModel(
            random_state=0, fit_window=timedelta(hours=2), fit_cycles=12
        ),
        fit_window=timedelta(hours=2),
    )


def test_a_cycle_on_the_server_scores_as_the_simulator_does(
    fleet: Fleet, server: tuple[str, str]
) -> None:
    """The bot's cycle: reductions from the server, the peer metrics raw, the same risk."""
    from analysis.context import PEER_METRICS
    from storage.topology import load_topology

    kind, url = server
    session = Recording()
    topo = load_topology(fleet.dir / "topology.yaml")
    remote = _pipeline(PrometheusSource(url, topology=topo, retries=0, session=session), fleet)
    local = _pipeline(fleet.sim, fleet)
    remote.refit(SCAN)
    local.refit(SCAN)
    session.sent.clear()
    got, want = remote.run_cycle(SCAN), local.run_cycle(SCAN)
    assert got.ok and want.ok and got.assessment and want.assessment
    instant = [q for path, q in session.sent if path == "query"]
    ranged = [q for path, q in session.sent if path == "query_range"]
    # one per reduction not gated, one gate per gated metric, the gated ones where their metric
    # changed (the hardware-XID count only where XIDs changed) and the cordon read; the
    # sample-limited server is asked each by parts
    least, most = _requests()
    if kind.endswith("small"):
        assert len(instant) > least + 1
    else:
        assert least <= len(instant) <= most + 1
    raw_gpu = [q for q in ranged if "DCGM_" in q]
    assert {m for m in PEER_METRICS if any(m in q for q in raw_gpu)} == set(PEER_METRICS)
    # the peer metrics come from LEAD_IN before the window on, for the thermal lag the fit
    # learnt (the simulator's 2 minutes); every other reader sees the window only
    from analysis.thermal import LAG, LEAD_IN

    assert remote.current is not None and remote.current.scorer.temp_per_watt_[LAG] == 120.0
    read = [(pipe, pipe.read_window(SCAN)) for pipe in (remote, local)]  # what the cycle read
    for pipe, frames in read:
        assert frames.end == pipe.last_end and frames.lead is not None
        start = pd.Timestamp(SCAN - DEFAULT_WINDOW)
        assert frames.lead["ts"].max() < start <= frames.gpu["ts"].min()
        assert frames.lead["ts"].min() <= start - pd.Timedelta(LEAD_IN)
        assert set(frames.lead["metric"]) == set(PEER_METRICS)
        assert frames.node["ts"].min() >= start
    # an incident's nodes get every GPU metric raw (for explanations and images), only they
    found = got.assessment.incidents
    assert found
    session.sent.clear()
    raw = remote.evidence.frames_for(read[0][1], found, SCAN, remote.source)
    nodes = {g.node for inc in found for g in inc.gpus}
    asked = [q for path, q in session.sent if path == "query_range"]
    assert asked and all("Hostname=~" in q for q in asked)
    mine = raw.gpu[raw.gpu["node"].isin(nodes)]
    assert set(mine["metric"]) >= {SBE, PCIE, XID, *PEER_METRICS}
    assert set(raw.gpu[~raw.gpu["node"].isin(nodes)]["metric"]) == set(PEER_METRICS)
    a, b = got.assessment.features, want.assessment.features
    assert a is not None and b is not None
    pd.testing.assert_frame_equal(
        a[b.columns], b, rtol=1e-6, atol=1e-6, check_dtype=False, obj=f"{kind} cycle features"
    )
    assert [(s.key, round(s.score, 9)) for s in got.assessment.scores] == [
        (s.key, round(s.score, 9)) for s in want.assessment.scores
    ]
    assert [i.dedup_key for i in got.incidents] == [i.dedup_key for i in want.incidents]


def test_node_parts_put_every_node_in_exactly_one_part() -> None:
    """The split of a refused query loses and repeats no series, at every level."""
    import re

    from storage.promql_reduce import node_parts

    names = ["gpu-node-001", "gpu-node-010", "a", "7", "", "n-x", "host.example:9100", "b1:9400"]
    for tail in ("", "(:[0-9]+)?"):
        for name in names:
            if tail == "" and ":" in name:
                continue
            level1 = [m for m in node_parts("Hostname", "", tail) if re.fullmatch(m[2][1:-1], name)]
            assert len(level1) == 1, (name, tail, level1)
            suffix = level1[0][2][1:-1].removeprefix("[^:]*" if tail else ".*").removesuffix(tail)
            level2 = [
                m for m in node_parts("Hostname", suffix, tail) if re.fullmatch(m[2][1:-1], name)
            ]
            assert len(level2) == 1, (name, tail, level2)


def test_reductions_on_the_hand_written_fleet(promql_backend: PromqlBackend) -> None:
    """The session's hand-written fleet (a GPU gone exactly at a window's edge, XIDs, a DBE):
    the server's reductions equal the in-memory ones of its own raw window, at several times."""
    from tests.fixtures import fleetdata as fd

    src = PrometheusSource(promql_backend.url, retries=0)
    plan = FeaturePlan(DEFAULT_WINDOW, DEFAULT_RECENT, fd.STEP)
    for at in (fd.SCAN_AT - timedelta(minutes=31), fd.SCAN_AT - timedelta(minutes=10), fd.SCAN_AT):
        got = src.reduce(plan, at).table
        frames = src.fetch(at - DEFAULT_WINDOW, at, fd.STEP)
        want = reduce_frames(frames.gpu, plan, at)
        pd.testing.assert_frame_equal(
            got, want, rtol=RTOL, atol=ATOL, obj=f"{promql_backend.kind} at {at}"
        )


# A run of cycles (a one-shot scan's warm-up): new XID codes on gpu-node-002 from the first,
# on gpu-node-004 from the second (13, then 79), so the hardware-code count is asked for
# different nodes at different times.
RUN = tuple(SCAN - timedelta(minutes=m) for m in (20, 15, 10, 5, 0))
# A run whose span (16 + 30 minutes: 47 points) is read at once.
SPAN_RUN = tuple(SCAN - timedelta(minutes=m) for m in (16, 12, 8, 4, 0))
# A scan's run with held-risk checkpoints before its warm-up cycles: two evenly spaced runs of
# reductions (16 and 8 minutes back; 3, 2 and 1), the last cycle's asked alone.
UNEVEN_RUN = tuple(SCAN - timedelta(minutes=m) for m in (16, 8, 3, 2, 1, 0))


def test_reductions_of_a_run_of_cycles_are_each_cycles_own(
    fleet: Fleet, server: tuple[str, str]
) -> None:
    """``reduce_at``: one range query per reduction, the very tables of one ``reduce`` per time."""
    kind, url = server
    session = Recording()
    source = PrometheusSource(url, retries=0, session=session)
    got = source.reduce_at(PLAN, RUN)
    ranged = [q for path, q in session.sent if path == "query_range"]
    assert not [q for path, q in session.sent if path == "query"]
    if not kind.endswith("small"):
        least, most = _requests()
        assert least <= len(ranged) <= most
    for at, mine in zip(RUN, got, strict=True):
        alone = source.reduce(PLAN, at)
        assert mine.at == alone.at == at
        pd.testing.assert_frame_equal(mine.table, alone.table, check_exact=True, obj=f"{kind} {at}")
    hw = f"{XID}:new_codes:window:hardware"
    # gpu-node-004 is asked for the later times' new codes, not reported at the first
    assert set(got[0].table[hw].dropna().index) == {"gpu-node-002/2"}
    assert got[-1].table.loc[BURST_GPU, hw] == 1


@pytest.mark.parametrize(
    ("run", "runs", "settled"),
    [(SPAN_RUN, 1, False), (UNEVEN_RUN, 2, False), (UNEVEN_RUN, 2, True)],
    ids=["even", "uneven", "uneven-settled"],
)
def test_a_span_source_reads_a_run_of_cycles_at_once(
    fleet: Fleet, server: tuple[str, str], run: tuple[datetime, ...], runs: int, settled: bool
) -> None:
    """``SpanSource``: each cycle's window and reductions as the source's own reads give them,
    from one fetch of the span and one range query per reduction and evenly spaced run of the
    cycles (a scan's held-risk checkpoints, then its warm-up cycles); the last (reported)
    cycle's reductions alone, unless it is long past (``settled``): then with the run before it."""
    from analysis.context import PEER_METRICS
    from storage.span_source import SpanSource
    from storage.topology import load_topology

    kind, url = server
    topo = load_topology(fleet.dir / "topology.yaml")
    session = Recording()
    source = PrometheusSource(url, topology=topo, retries=0)
    remote = PrometheusSource(url, topology=topo, retries=0, session=session)
    span = SpanSource(remote, run, DEFAULT_WINDOW, settled=run[-1] if settled else None)
    for at in run:
        for metrics in (PEER_METRICS, None):
            got = span.fetch(at - DEFAULT_WINDOW, at, STEP, gpu_metrics=metrics)
            want = source.fetch(at - DEFAULT_WINDOW, at, STEP, gpu_metrics=metrics)
            for name in ("gpu", "node", "component", "up"):
                pd.testing.assert_frame_equal(
                    getattr(got, name), getattr(want, name), check_exact=True, obj=f"{kind} {name}"
                )
            assert (got.start, got.end, got.step) == (want.start, want.end, want.step)
        pd.testing.assert_frame_equal(
            span.reduce(PLAN, at).table, source.reduce(PLAN, at).table, check_exact=True
        )
    if kind.endswith("small"):
        return
    ranged = [q for path, q in session.sent if path == "query_range"]
    raw = [q for q in ranged if not q.startswith("max by")]
    # the span read once per set of GPU metrics (the peers', all), not once per cycle
    assert len([q for q in raw if "DCGM_FI_DEV_GPU_TEMP" in q]) == 2
    # the reductions: one range query each per run of the cycles before the last, the last's alone
    # (settled: in the run before it)
    least, most = _requests()
    assert least * runs <= len(ranged) - len(raw) <= most * runs
    instant = len([path for path, _ in session.sent if path == "query"])
    assert instant == 0 if settled else least <= instant <= most
    # an incident's nodes and a window off the span go to the source
    session.sent.clear()
    span.fetch(SCAN - DEFAULT_WINDOW, SCAN, STEP, nodes=["gpu-node-001"])
    assert session.sent
    session.sent.clear()
    span.fetch(SCAN - timedelta(hours=1), SCAN - DEFAULT_WINDOW, STEP, gpu_metrics=PEER_METRICS)
    assert session.sent


def test_a_scan_s_cycles_read_their_lead_in_from_the_span(
    fleet: Fleet, server: tuple[str, str]
) -> None:
    """A cycle reads its peer metrics from the thermal lead-in before its window on
    (``Pipeline.reads``); ``gpu-risk scan`` sizes its span by it, so the run of cycles is still
    read at once."""
    from storage.span_source import SpanSource
    from storage.topology import load_topology

    kind, url = server
    topo = load_topology(fleet.dir / "topology.yaml")
    session = Recording()
    remote = PrometheusSource(url, topology=topo, retries=0, session=session)
    pipe = _pipeline(remote, fleet)
    assert pipe.reads > DEFAULT_WINDOW
    pipe.source = SpanSource(remote, SPAN_RUN, pipe.reads)
    alone = _pipeline(PrometheusSource(url, topology=topo, retries=0), fleet)
    for at in SPAN_RUN:
        frames, want = pipe.read_window(at), alone.read_window(at)
        assert frames.lead is not None and not frames.lead.empty
        assert frames.gpu["ts"].min() == pd.Timestamp(at - DEFAULT_WINDOW)
        _same_frames(frames, want, kind)
    if kind.endswith("small"):
        return
    raw = [q for path, q in session.sent if path == "query_range" and "DCGM_FI_DEV_GPU_TEMP" in q]
    # 59 points (16 minutes of cycles, the window and the lead-in): read in two parts
    assert len([q for q in raw if not q.startswith("max by")]) == 2


def test_a_cycle_reads_only_its_new_minutes_and_gets_its_whole_window(
    fleet: Fleet, server: tuple[str, str]
) -> None:
    """``storage.rolling``: from its second cycle on the bot asks the server for the raw series
    from ``REREAD`` before the last window's end only, and its frames (the window, the lead-in,
    node, component, ``up``) equal a whole read's exactly, cycles 1 and 5 minutes apart, across
    the fleet's scrape gaps, its counter reset and the GPU that vanishes. A window off the last
    one's grid is read whole."""
    from analysis.context import PEER_METRICS
    from analysis.frames import split_lead
    from storage.rolling import REREAD
    from storage.topology import load_topology

    kind, url = server
    topo = load_topology(fleet.dir / "topology.yaml")
    session = Recording()
    pipe = _pipeline(PrometheusSource(url, topology=topo, retries=0, session=session), fleet)
    whole = PrometheusSource(url, topology=topo, retries=0)
    minutes = (-14, -13, -12, -7, -6, -2, 0, 4)
    for i, at in enumerate(SCAN + timedelta(minutes=m) for m in minutes):
        session.starts.clear()
        got = pipe.read_window(at)
        want = split_lead(
            whole.fetch(at - pipe.reads, at, STEP, gpu_metrics=PEER_METRICS), at - DEFAULT_WINDOW
        )
        _same_frames(got, want, f"{kind} at {at}")
        raw = [t for _, t in session.starts]  # GPU, node, component and up series
        assert raw
        before = SCAN + timedelta(minutes=minutes[i - 1]) if i else None
        if before is None:  # the first: the whole window and its lead-in
            assert min(raw) == pd.Timestamp(at - pipe.reads)
        else:  # each part of a refused query starts there too
            assert min(raw) == pd.Timestamp(before - REREAD), (kind, at)
    session.starts.clear()
    off = SCAN + timedelta(minutes=4, seconds=30)
    _same_frames(
        pipe.read_window(off),
        split_lead(
            whole.fetch(off - pipe.reads, off, STEP, gpu_metrics=PEER_METRICS),
            off - DEFAULT_WINDOW,
        ),
        f"{kind} off the grid",
    )
    assert min(t for _, t in session.starts) == pd.Timestamp(off - pipe.reads)


def test_a_cycle_asks_the_server_only_for_what_it_does_not_read_raw(
    fleet: Fleet, server: tuple[str, str]
) -> None:
    """The peer metrics are read raw anyway: their reductions are computed from those samples
    (``with_reductions_of``), the server is asked for the others only, and the cycle's table
    equals the server's for the whole plan (every GPU, every column, float rounding). Off the
    step grid the server is asked for them all."""
    from analysis.context import PEER_METRICS
    from storage.topology import load_topology

    kind, url = server
    topo = load_topology(fleet.dir / "topology.yaml")
    session = Recording()
    pipe = _pipeline(PrometheusSource(url, topology=topo, retries=0, session=session), fleet)
    whole = PrometheusSource(url, topology=topo, retries=0)
    for at in TIMES:
        session.sent.clear()
        got = pipe.read_window(at).reduced
        want = whole.reduce(PLAN, at)
        assert got is not None and got.at == want.at
        instant = [q for path, q in session.sent if path == "query"]
        assert instant and not [q for q in instant if any(m in q for m in PEER_METRICS)]
        assert list(got.table.columns) == list(want.table.columns)
        pd.testing.assert_frame_equal(
            got.table, want.table, rtol=RTOL, atol=ATOL, obj=f"{kind} at {at}"
        )
    # a cycle off the step grid (its raw window is not on the reductions' grid): all asked
    session.sent.clear()
    off = pipe.read_window(SCAN + timedelta(seconds=30)).reduced
    assert off is not None
    instant = [q for path, q in session.sent if path == "query"]
    assert {m for m in PEER_METRICS if any(m in q for q in instant)} == set(PEER_METRICS)
    pd.testing.assert_frame_equal(off.table, whole.reduce(PLAN, SCAN).table, check_exact=True)


def test_a_fit_on_the_server_reads_reductions_and_learns_what_the_simulator_does(
    fleet: Fleet, server: tuple[str, str]
) -> None:
    """A refit from a TSDB reads the GPUs' own reductions at its cycle ends (range queries, the
    server computing them) and only the peer metrics raw, and learns the very model a fit on
    every raw series in memory learns; the explainer reads every series raw."""
    from analysis.context import PEER_METRICS
    from analysis.explain import Explainer
    from storage.topology import load_topology

    kind, url = server
    session = Recording()
    topo = load_topology(fleet.dir / "topology.yaml")
    # at the product's concurrency (4 requests in flight)
    remote = _pipeline(
        PrometheusSource(url, topology=topo, retries=0, session=session, concurrency=4), fleet
    )
    local = _pipeline(fleet.sim, fleet)
    remote.refit(SCAN)
    local.refit(SCAN)
    ranged = [q for path, q in session.sent if path == "query_range"]
    # the history's own-series metrics come as reductions only, the peer metrics raw too
    own = [q for q in ranged if SBE in q or PCIE in q]
    assert own and not [q for q in own if _raw(q)]
    raw_gpu = [q for q in ranged if "DCGM_" in q and _raw(q)]
    assert {m for m in PEER_METRICS if any(m in q for q in raw_gpu)} == set(PEER_METRICS)
    assert not [q for q in raw_gpu if not any(m in q for m in PEER_METRICS)]
    _same_model(remote, local, kind)
    # the explainer learns from every series raw (the whole fleet: it is smaller than its sample)
    session.sent.clear()
    remote.make_explainer = local.make_explainer = lambda: Explainer(random_state=0)
    remote.refit(SCAN)
    local.refit(SCAN)
    asked = [q for path, q in session.sent if path == "query_range"]
    assert any(SBE in q and _raw(q) for q in asked)
    ea, eb = remote.current.explainer, local.current.explainer
    assert isinstance(ea, Explainer) and isinstance(eb, Explainer)
    pd.testing.assert_frame_equal(
        ea.history_.rows.sort_index(), eb.history_.rows.sort_index(), rtol=1e-9, obj=kind
    )


def test_a_fit_too_large_to_hold_reads_the_server_span_by_span(
    fleet: Fleet, server: tuple[str, str]
) -> None:
    """Past its span budget a refit from a TSDB reads its cycle windows a span at a time, the
    slope's timestamps at their stride and the lag's nodes raw, and learns the model a fit on
    every raw series in memory learns."""
    from analysis.thermal import lead_in
    from bot.fit import fit_spans
    from storage.topology import load_topology

    kind, url = server
    session = Recording()
    topo = load_topology(fleet.dir / "topology.yaml")
    source = PrometheusSource(url, topology=topo, retries=0, session=session, concurrency=4)
    remote = _pipeline(source, fleet)
    remote.fit_span_samples = 16 * 3 * 50  # 50 points of the 16 GPUs' peer metrics
    local = _pipeline(fleet.sim, fleet)
    remote.refit(SCAN)
    local.refit(SCAN)
    ranged = [q for path, q in session.sent if path == "query_range"]
    temps = [q for q in ranged if q.startswith("last_over_time(DCGM_FI_DEV_GPU_TEMP")]
    start, end = SCAN - timedelta(hours=2), SCAN - DEFAULT_WINDOW
    times = remote.make_scorer().history_times(start, end, gpus=16)
    spans = fit_spans(times, DEFAULT_WINDOW + lead_in(STEP), STEP, 16, 16 * 3 * 50)
    assert len(spans) > 2
    # which GPUs report, the slope's timestamps, the lag's nodes, and each span once (a server
    # with a tiny sample limit answers each in parts)
    assert len(temps) == 3 + len(spans) or kind.endswith("small"), kind
    _same_model(remote, local, kind)


def _same_model(remote: Pipeline, local: Pipeline, kind: str) -> None:
    """The two pipelines' current scorers learnt the same model: columns, rows, baselines,
    spreads and degrees per watt (keyed by GPU model: the written history names none)."""
    got, want = remote.current, local.current
    assert got is not None and want is not None
    a, b = got.scorer, want.scorer
    assert a.columns_ == b.columns_ and a.n_train_rows_ == b.n_train_rows_
    for attr in ("baseline_", "scale_", "center_", "fill_"):
        pd.testing.assert_frame_equal(
            pd.DataFrame(getattr(a, attr)),
            pd.DataFrame(getattr(b, attr)),
            rtol=1e-6,
            atol=1e-9,
            obj=f"{kind} {attr}",
        )
    assert sorted(set(a.temp_per_watt_.values())) == pytest.approx(
        sorted(set(b.temp_per_watt_.values())), rel=1e-9
    )


def _raw(query: str) -> bool:
    """Whether a PromQL query reads raw samples: each step's last (``PrometheusSource.fetch``),
    not a reduction over a window."""
    return re.fullmatch(r"last_over_time\(.*\[59999ms\]\)", query) is not None


def test_a_cycle_s_two_reads_side_by_side_read_what_one_after_the_other_reads(
    fleet: Fleet, server: tuple[str, str]
) -> None:
    """At a client concurrency above 1 a cycle sends its reductions from a second thread while
    it reads the raw window (``Pipeline.read_window``; a scan's first cycle reads every cycle's
    reductions beside the whole span): the frames and reductions are those of the reads one
    after the other, on a plain source and through a scan's span."""
    from storage.span_source import SpanSource
    from storage.topology import load_topology

    kind, url = server
    topo = load_topology(fleet.dir / "topology.yaml")
    together = PrometheusSource(url, topology=topo, retries=0, concurrency=4)
    assert together.concurrent_reads
    alone = PrometheusSource(url, topology=topo, retries=0)
    assert not alone.concurrent_reads
    sequential = _pipeline(alone, fleet)
    plain = _pipeline(together, fleet)
    spanned = _pipeline(together, fleet)
    spanned.source = SpanSource(together, UNEVEN_RUN, spanned.reads, settled=SCAN)
    for at in UNEVEN_RUN:
        want = sequential.read_window(at)
        for pipe in (plain, spanned):
            got = pipe.read_window(at)
            _same_frames(got, want, kind)
            assert got.reduced is not None and want.reduced is not None
            # a scan's span asks the server for the peer metrics' reductions too, which a
            # cycle computes from its raw window: the same numbers to float rounding
            exact = pipe is plain
            pd.testing.assert_frame_equal(
                got.reduced.table,
                want.reduced.table,
                check_exact=exact,
                rtol=RTOL,
                atol=ATOL,
                obj=f"{kind} reduced",
            )


def _same_frames(got: FleetFrames, want: FleetFrames, kind: str) -> None:
    """A cycle's read frame by frame: the window, its lead-in, node, component and ``up``."""
    for name in ("gpu", "lead", "node", "component", "up"):
        pd.testing.assert_frame_equal(
            getattr(got, name).reset_index(drop=True),
            getattr(want, name).reset_index(drop=True),
            check_exact=True,
            obj=f"{kind} {name}",
        )
