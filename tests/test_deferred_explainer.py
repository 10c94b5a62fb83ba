"""A deferred explainer (the one-shot scan's) explains exactly as one fitted with the scorer."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from analysis.explain import Explainer
from analysis.graph import build_graph
from analysis.types import FleetFrames, GpuScore, Incident, RootCause
from bot.fit import DeferredExplainer
from bot.pipeline import Pipeline
from storage.simulator import FleetSimulator, FleetSpec, make_fault
from tests.fixtures.explain_frames import STEP

SPEC = FleetSpec(racks=2, nodes_per_rack=2, gpus_per_node=4)
START = datetime(2026, 10, 5, tzinfo=UTC)
ONSET = START + timedelta(hours=10)


def test_deferred_explainer_fits_on_first_use_and_explains_the_same() -> None:
    fault = make_fault("fan", "gpu-node-003", ONSET, spec=SPEC)
    sim = FleetSimulator(SPEC, start=START, duration=timedelta(hours=20), seed=7101, faults=[fault])
    assert fault.failure is not None
    at = ONSET + (fault.failure - ONSET) * 0.65
    history = sim.fetch(START, ONSET - STEP, STEP)
    graph = build_graph(sim.topology, history.gpus)
    frames = sim.fetch(at - timedelta(hours=2), at, STEP)
    incident = Incident(
        id="inc-fan",
        at=at,
        severity="warning",
        score=0.9,
        root_cause=RootCause("gpu-node-003", "node"),
        gpus=tuple(GpuScore(k.split("/")[0], k.split("/")[1], 0.9) for k in fault.affected),
    )
    made: list[Explainer] = []

    def make() -> Explainer:
        made.append(Explainer(random_state=0))
        return made[-1]

    reads: list[FleetFrames] = []

    def read() -> FleetFrames:
        reads.append(history)
        return history

    deferred = DeferredExplainer(make, read, graph)
    assert made == [] and reads == []  # nothing read or fitted until an incident is explained
    eager = Explainer(random_state=0).fit(history, graph)
    want = eager.explain(incident, frames, graph)
    got = deferred.explain(incident, frames, graph)
    assert got == want and got.factors
    assert deferred.explain(incident, frames, graph) == want
    assert len(made) == 1 and len(reads) == 1  # read and fitted once


def test_only_the_one_shot_scan_defers_the_explainer() -> None:
    field = {f.name: f for f in dataclasses.fields(Pipeline)}["defer_explainer"]
    assert field.default is False  # the running bot fits it with the scorer, as before
    import inspect

    from bot.commands import scan

    assert "pipeline.defer_explainer = True" in inspect.getsource(scan.run_scan)
