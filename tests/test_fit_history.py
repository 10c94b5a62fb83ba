"""A model fit's history: read in parts the server accepts, and only for a sample of whole nodes.

One simulated fleet (16 GPUs on 4 nodes in 2 racks, 4 hours) is loaded into a plain
VictoriaMetrics, a VictoriaMetrics that refuses queries reading more than 3,000 samples
(``-search.maxSamplesPerQuery``: every whole-fleet query of the fit's history is refused and
asked by parts of the fleet) and a Prometheus that refuses queries holding more than 600
samples (``--query.max-samples``: a part of one node still too large is asked by halves of its
time range). The history read in parts equals the one read whole; a sample of nodes reads their
GPU, node and ``up`` series and every component's; and the bot's cold start on a fleet larger
than ``fit_max_gpus`` fits on such a sample, from the sample-limited server, and scores every GPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
import requests

from analysis.scoring import GraphRiskModel
from analysis.types import FleetFrames, Topology
from bot.pipeline import Pipeline
from storage.metrics import PrometheusSource
from storage.repository import Repository
from storage.simulator import FleetSimulator, FleetSpec
from storage.source import NodeSample, restrict
from storage.topology import load_topology
from tests.fixtures.prometheus import (
    Server,
    backfill,
    import_into_victoria,
    start_prometheus,
    start_victoria,
    wait_prometheus,
)

pytestmark = [pytest.mark.prometheus, pytest.mark.victoriametrics]

START = datetime(2026, 11, 18, tzinfo=UTC)
STEP = timedelta(minutes=1)
FIT_START, FIT_END = START + timedelta(minutes=10), START + timedelta(hours=3, minutes=30)
SCAN = START + timedelta(hours=3, minutes=50)


@dataclass
class Fleet:
    """The simulated fleet, its topology file's topology and the servers holding its history."""

    sim: FleetSimulator
    topology: Topology
    servers: dict[str, Server]


class Recording(requests.Session):
    """A session that remembers each request's API path, PromQL, time range and status."""

    def __init__(self) -> None:
        """Nothing recorded yet."""
        super().__init__()
        self.sent: list[tuple[str, str, str, int]] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """Send, then record."""
        params = kwargs.get("params") or {}
        response = super().request(method, url, *args, **kwargs)
        span = f"{params.get('start')}-{params.get('end')}"
        path = url.rsplit("/api/v1/", 1)[-1]
        self.sent.append((path, str(params.get("query", "")), span, response.status_code))
        return response


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """The fleet's history in the three servers (started once for the module)."""
    spec = FleetSpec(racks=2, nodes_per_rack=2, gpus_per_node=4)
    sim = FleetSimulator(spec, start=START, duration=timedelta(hours=4), step=STEP, seed=31)
    out = tmp_path_factory.mktemp("fit-history")
    sim.write_history(out)
    servers: dict[str, Server] = {}
    try:
        for name, flags in (("vm", ()), ("vm-small", ("-search.maxSamplesPerQuery=3000",))):
            servers[name] = start_victoria(out / name, flags)
            import_into_victoria(servers[name], out / "metrics.om")
        backfill(out / "metrics.om", out / "tsdb")
        prom = start_prometheus(out / "tsdb", flags=("--query.max-samples=600",))
        servers["prometheus-small"] = wait_prometheus(prom)
        yield Fleet(sim, load_topology(out / "topology.yaml"), servers)
    finally:
        for server in servers.values():
            server.stop()


def _source(fleet: Fleet, name: str, session: requests.Session | None = None) -> PrometheusSource:
    """The product's reader of one server."""
    url = fleet.servers[name].url
    return PrometheusSource(url, topology=fleet.topology, retries=0, session=session)


def _same(got: FleetFrames, want: FleetFrames) -> None:
    """The same rows in every frame, whatever their order."""
    for part in ("gpu", "node", "component", "up"):
        a, b = getattr(got, part), getattr(want, part)
        keys = [c for c in a.columns if c != "value"]
        a = a.sort_values(keys).reset_index(drop=True)
        b = b.sort_values(keys).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, check_dtype=False, obj=part)


@pytest.mark.parametrize("limited", ["vm-small", "prometheus-small"])
def test_a_history_too_large_for_one_query_is_read_in_parts_equal_to_the_whole(
    fleet: Fleet, limited: str
) -> None:
    session = Recording()
    got = _source(fleet, limited, session).fetch(FIT_START, FIT_END, STEP)
    want = _source(fleet, "vm").fetch(FIT_START, FIT_END, STEP)
    assert len(want.gpu) > 16 * 200 and not want.component.empty and not want.up.empty
    _same(got, want)
    ranged = [s for s in session.sent if s[0] == "query_range"]
    refused = [s for s in ranged if s[3] == 422]
    accepted = [s for s in ranged if s[3] == 200]
    assert refused, "the limit refused nothing: the test does not exercise the parts"
    # every query the server accepted was within its limit, and each part was asked once
    assert len({(q, span) for _, q, span, _ in accepted}) == len(accepted)
    assert any('Hostname=~".*' in q for _, q, _, _ in accepted)  # by parts of the fleet
    if limited == "prometheus-small":  # a single node's 3 hours still hold too many samples
        spans = {span for _, q, span, _ in accepted if "DCGM_FI_DEV_GPU_TEMP" in q}
        assert len(spans) > 1


def test_a_sample_of_nodes_reads_their_series_and_every_component(fleet: Fleet) -> None:
    sample = NodeSample({"gpu-node-001", "gpu-node-004"})
    session = Recording()
    got = _source(fleet, "vm-small", session).fetch(FIT_START, FIT_END, STEP, nodes=sample)
    whole = _source(fleet, "vm").fetch(FIT_START, FIT_END, STEP)
    _same(got, restrict(whole, nodes=sample))
    assert set(got.gpu["node"]) == set(got.node["node"]) == set(sample)
    assert set(got.up["node"]) == set(sample)
    assert set(got.component["component"]) == set(whole.component["component"]) != set()
    # GPU series asked by the node label, node exporters and ``up`` by the instance label
    gpu = [q for p, q, _, _ in session.sent if p == "query_range" and "DCGM_FI_DEV_GPU_TEMP" in q]
    up = [q for p, q, _, _ in session.sent if p == "query_range" and "last_over_time(up" in q]
    assert gpu and all("gpu\\\\-node\\\\-001|gpu\\\\-node\\\\-004" in q for q in gpu)
    assert up and all("instance=~" in q for q in up)
    # a plain list of nodes still reads only their GPU series (an incident's raw series)
    plain = _source(fleet, "vm").fetch(FIT_START, FIT_END, STEP, nodes=sorted(sample))
    assert plain.node.empty and plain.up.empty and plain.component.empty
    assert set(plain.gpu["node"]) == set(sample)


def test_a_fleet_over_the_cap_is_fitted_on_whole_nodes_and_scored_whole(fleet: Fleet) -> None:
    """The cold start on the sample-limited server: 2 of 4 nodes fitted, 16 GPUs scored."""
    fits: list[GraphRiskModel] = []

    def make_scorer() -> GraphRiskModel:
        fits.append(GraphRiskModel(random_state=0, fit_window=timedelta(hours=3), fit_cycles=12))
        return fits[-1]

    session = Recording()
    repo = Repository.from_url("sqlite://")
    pipeline = Pipeline(
        source=_source(fleet, "vm-small", session),
        topology=fleet.topology,
        repository=repo,
        make_scorer=make_scorer,
        fit_window=timedelta(hours=3),
        fit_max_gpus=8,
        random_state=4,
    )
    first = pipeline.run_cycle(SCAN)
    assert first.ok, first.error
    assert first.gpus_scored == 16
    scorer = pipeline.scorer
    assert isinstance(scorer, GraphRiskModel)
    learnt = {k.rpartition("/")[0] for k in scorer.baseline_.index}
    racks = {getattr(fleet.topology.rack_of(n), "id", None) for n in learnt}
    assert len(learnt) == 2 and len(racks) == 2, learnt  # whole nodes, one of each rack
    assert len(scorer.baseline_) == 8
    # the history was read for those nodes only (the cycle's own window is the whole fleet)
    ranged = [q for p, q, _, _ in session.sent if p == "query_range" and "DCGM_FI_DEV_GPU_" in q]
    picked = [q for q in ranged if 'Hostname=~"gpu' in q]
    assert picked and all(all(n.replace("-", "\\\\-") in q for n in learnt) for q in picked)
    # the model serves the whole fleet: the next cycle scores with it, no refit
    again = pipeline.run_cycle(SCAN + STEP)
    assert again.ok and again.gpus_scored == 16
    assert sum(hasattr(m, "detector_") for m in fits) == 1
    assert scorer.fingerprint_ == pipeline.fingerprint
    repo.close()


def test_a_refit_before_any_cycle_learns_the_fleet_then_samples_it(fleet: Fleet) -> None:
    """The replay's first refit (no cycle yet): the fleet is read from the window, then sampled."""
    fits: list[GraphRiskModel] = []

    def make_scorer() -> GraphRiskModel:
        fits.append(GraphRiskModel(random_state=0, fit_window=timedelta(hours=3), fit_cycles=12))
        return fits[-1]

    repo = Repository.from_url("sqlite://")
    pipeline = Pipeline(
        source=fleet.sim,
        topology=fleet.sim.topology,
        repository=repo,
        make_scorer=make_scorer,
        fit_window=timedelta(hours=3),
        fit_max_gpus=8,
    )
    scorer = pipeline.refit(SCAN)
    assert isinstance(scorer, GraphRiskModel) and len(scorer.baseline_) == 8
    outcome = pipeline.run_cycle(SCAN)
    assert outcome.ok and outcome.gpus_scored == 16
    assert sum(hasattr(m, "detector_") for m in fits) == 1  # the model serves the whole fleet
    repo.close()
