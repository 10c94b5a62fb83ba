"""The alert flow across a GPU falling off the bus: one model, the GPU kept and paged as gone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from analysis.scoring import GraphRiskModel
from bot.pipeline import Pipeline
from storage.replay import CachedSource
from storage.repository import Repository
from storage.simulator import FleetSimulator, FleetSpec, make_fault
from storage.source import MetricsSourceError


def test_a_vanished_gpu_stays_in_the_fleet_without_a_refit(tmp_path: Path) -> None:
    spec = FleetSpec(racks=2, nodes_per_rack=2, gpus_per_node=4)
    start = datetime(2026, 11, 3, tzinfo=UTC)
    onset = start + timedelta(hours=8)
    fault = make_fault("pcie", "gpu-node-002/1", onset, spec=spec, precursor=timedelta(hours=2))
    sim = FleetSimulator(spec, start=start, duration=timedelta(hours=12), seed=5107, faults=[fault])
    fits: list[GraphRiskModel] = []

    def make_scorer() -> GraphRiskModel:
        fits.append(GraphRiskModel(random_state=0))
        return fits[-1]

    repo = Repository.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    pipeline = Pipeline(
        source=sim,
        topology=sim.topology,
        repository=repo,
        make_scorer=make_scorer,
        fit_window=timedelta(hours=8),
    )
    assert fault.failure is not None
    at = onset
    while at <= fault.failure + timedelta(hours=1):
        outcome = pipeline.run_cycle(at)
        assert outcome.ok, outcome.error
        at += timedelta(minutes=10)
    fitted = [
        m for m in fits if hasattr(m, "detector_")
    ]  # (one more was built to read its contract)
    assert len(fitted) == 1, "the model was refitted when the GPU's series vanished"
    # an hour after XID 79 its series are gone, yet it is still scored and its incident open
    assert outcome.gpus_scored == spec.n_gpus
    open_now = [r.incident for r in repo.open_incidents()]
    mine = [i for i in open_now if "gpu-node-002/1" in {g.key for g in i.gpus}]
    assert mine and mine[0].severity == "critical"
    repo.close()


def test_a_cycle_without_enough_history_fails_cleanly_and_the_next_one_retries(
    tmp_path: Path,
) -> None:
    """No model can be fitted yet: the cycle says why instead of raising, nothing is decided."""
    spec = FleetSpec(racks=1, nodes_per_rack=1, gpus_per_node=2)
    start = datetime(2026, 11, 3, tzinfo=UTC)
    sim = FleetSimulator(spec, start=start, duration=timedelta(hours=6), seed=5108)
    repo = Repository.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    pipeline = Pipeline(
        source=sim,
        topology=sim.topology,
        repository=repo,
        make_scorer=lambda: GraphRiskModel(random_state=0),
        fit_window=timedelta(hours=4),
    )
    early = pipeline.run_cycle(start + timedelta(minutes=40))  # 10 minutes of history
    assert not early.ok and early.error is not None and early.error.startswith("no model:")
    assert repo.status().last_scan is not None and not repo.status().last_scan.ok
    later = pipeline.run_cycle(start + timedelta(hours=5))
    assert later.ok and later.gpus_scored == spec.n_gpus
    repo.close()


class ModelSource(FleetSimulator):
    """A simulated fleet whose ``gpu_models`` answers ``answer(number of asks)``, remembered."""

    def __init__(self, spec: FleetSpec, answer: Callable[[int], dict[str, str]]) -> None:
        super().__init__(spec, start=T_MODELS, duration=timedelta(hours=2), seed=3, healthy=True)
        self.answer = answer
        self.asked: list[datetime] = []

    def gpu_models(self, at: datetime, window: timedelta) -> dict[str, str]:
        self.asked.append(at)
        return self.answer(len(self.asked))


T_MODELS = datetime(2026, 11, 3, tzinfo=UTC)


def test_the_graph_knows_each_nodes_gpu_model_asking_the_source_once(tmp_path: Path) -> None:
    """GPUs are compared with peers of their model: the cycle's graph carries dcgm's modelName."""

    def answer(n: int) -> dict[str, str]:
        if n == 1:  # Prometheus answers the cycle's fetch, then times out
            raise MetricsSourceError("GPU models: timed out")
        return {"gpu-node-001": "NVIDIA L40S"}  # gpu-node-002: unknown to the source

    sim = ModelSource(FleetSpec(racks=1, nodes_per_rack=2, gpus_per_node=2), answer)
    start, asked = T_MODELS, sim.asked
    repo = Repository.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    pipeline = Pipeline(  # through the replay's cache, as backtests and evaluations read
        source=CachedSource(sim), topology=sim.topology, repository=repo, make_scorer=GraphRiskModel
    )
    models, graphs = [], []
    for minutes in (60, 65, 70):
        frames = sim.fetch(
            start + timedelta(minutes=minutes - 30), start + timedelta(minutes=minutes), sim.step
        )
        graph = pipeline.graph_of(frames)
        graphs.append(graph)
        models.append(graph.nodes["gpu-node-001"]["model"])
    assert models == [None, "NVIDIA L40S", "NVIDIA L40S"]  # a failed ask is asked again
    assert graph.nodes["gpu-node-002"]["model"] is None
    assert len(asked) == 2, "the models were asked again with no new node"
    # the same fleet and models: the graph is built once (10,000 GPUs: 0.3 s a cycle)
    assert graphs[2] is graphs[1] and graphs[1] is not graphs[0]
    # a GPU new to the fleet gives a new graph with it
    more = frames.gpu.copy()
    more["gpu"] = more["gpu"].where(more["gpu"] != "1", "7")
    grown = pipeline.graph_of(replace(frames, gpu=pd.concat([frames.gpu, more])))
    assert grown is not graph and "gpu-node-001/7" in grown and "gpu-node-001/7" not in graph
    repo.close()


def test_the_fit_sample_is_stratified_by_the_gpu_models_the_graph_learned(tmp_path: Path) -> None:
    """A first fit (no cycle yet) learns the nodes' GPU models once and samples each model."""
    spec = FleetSpec(racks=1, nodes_per_rack=4, gpus_per_node=2)
    half = {n: ("NVIDIA H100" if n < "gpu-node-003" else "NVIDIA L40S") for n in spec.node_names}
    sim = ModelSource(spec, lambda _: half)
    start, asked = T_MODELS, sim.asked
    repo = Repository.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    pipeline = Pipeline(
        source=sim,
        topology=sim.topology,
        repository=repo,
        make_scorer=GraphRiskModel,
        fit_max_gpus=4,
    )
    at = start + timedelta(hours=1)
    sampled = pipeline.fit_sample(at)
    assert sampled is not None
    graph, sample = sampled
    drawn = sorted(graph.nodes[n]["model"] for n in sample)
    assert drawn == ["NVIDIA H100", "NVIDIA L40S"], sample  # one node of each model, of four
    frames = sim.fetch(at - timedelta(minutes=30), at, sim.step)
    pipeline.graph_of(frames)
    assert len(asked) == 1, "the models were asked again for the same nodes"
    repo.close()
