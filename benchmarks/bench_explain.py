"""Explanation and rendering speed: time per incident (with and without the SCM cache), PNG renders.

Run: ``.venv/bin/python -m benchmarks.bench_explain [--racks 4 --nodes 8 --gpus 8 --hours 12]``.
One simulated fault of every kind is injected into its own fleet; the explainer is fitted on the
healthy hours before onset and explains the incident at 65 % of the precursor. Prints medians.
Targets: <= 1 s per incident after the one-off ``import dowhy.gcm``; <= 0.3 s per PNG.

``--fleet-gpus N`` (e.g. 100000): each incident is explained and drawn against the dependency
graph of a fleet of N GPUs (racks of ``--nodes`` x ``--gpus``, the simulated fleet its first
racks, named alike), with the frames of the simulated fleet only, as the bot reads an
incident's own nodes for its explanation and images: the per-incident cost at that fleet size.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import networkx as nx

from analysis.explain import Explainer
from analysis.graph import build_graph
from analysis.plots import render_incident_graph, render_incident_metrics
from analysis.types import FleetFrames, GpuRef, GpuScore, Incident, RootCause
from storage.simulator import FleetSimulator, FleetSpec, make_fault

KINDS = {
    "fan": ("node", lambda s: s.node_name(1)),
    "thermal_interface": ("gpu", lambda s: f"{s.node_name(2)}/1"),
    "hbm": ("gpu", lambda s: f"{s.node_name(0)}/2"),
    "nvlink": ("gpu", lambda s: f"{s.node_name(3)}/0"),
    "pcie": ("gpu", lambda s: f"{s.node_name(1)}/3"),
    "pdu": ("pdu", lambda s: s.pdu_id(0)),
    "cooling": ("cooling", lambda s: s.crac_id(s.racks - 1)),
    "switch": ("switch", lambda s: s.leaf_id(0)),
}


class Case(NamedTuple):
    """One fault kind's incident at 65 % of its precursor, its healthy history, graph and frames."""

    incident: Incident
    history: FleetFrames
    graph: nx.DiGraph
    frames: FleetFrames


def make_case(
    spec: FleetSpec,
    kind: str,
    i: int,
    *,
    start: datetime,
    onset: datetime,
    hours: float,
    step: timedelta,
) -> Case:
    """Simulate ``kind``'s fault (the ``i``-th kind: its seed) on its own fleet; the incident
    names its target and affected GPUs, ``frames`` are the 2 hours before it."""
    rc_kind, target_of = KINDS[kind]
    target = target_of(spec)
    fault = make_fault(kind, target, onset, spec=spec)
    assert fault.failure is not None
    sim = FleetSimulator(
        spec, start=start, duration=timedelta(hours=hours + 12), seed=4242 + i, faults=[fault]
    )
    at = onset + (fault.failure - onset) * 0.65
    history = sim.fetch(start, onset - step, step)
    graph = build_graph(sim.topology, history.gpus)
    incident = Incident(
        id=kind,
        at=at,
        severity="warning",
        score=0.9,
        root_cause=RootCause(target, rc_kind),  # type: ignore[arg-type]
        gpus=tuple(GpuScore(*k.split("/"), 0.9) for k in fault.affected),
    )
    return Case(incident, history, graph, sim.fetch(at - timedelta(hours=2), at, step))


def _median_ms(values: list[float], cpu: list[float] | None = None) -> str:
    """Format a median in milliseconds (wall, and CPU time of this process when given)."""
    out = f"{statistics.median(values) * 1000:7.0f} ms"
    if cpu:
        out += f"   (CPU {statistics.median(cpu) * 1000:.0f} ms)"
    return out


class _Clock:
    """Wall and CPU time of one measured call."""

    def __enter__(self) -> _Clock:
        """Start both clocks."""
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop both clocks."""
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0


def _forget(explainer: Explainer) -> None:
    """Drop the explainer's cached training tables, causal models and references (not its fit)."""
    explainer.models_.clear()
    explainer.tables_.clear()
    explainer.references_.clear()


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--racks", type=int, default=4)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--hours", type=float, default=12.0, help="healthy history to fit on")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--fleet-gpus", type=int, default=0, help="explain and draw against a fleet this large"
    )
    args = parser.parse_args()
    spec = FleetSpec(racks=args.racks, nodes_per_rack=args.nodes, gpus_per_node=args.gpus)
    fleet = None
    if args.fleet_gpus > spec.n_gpus:
        per_rack = args.nodes * args.gpus
        big = FleetSpec(
            racks=-(-args.fleet_gpus // per_rack),
            nodes_per_rack=args.nodes,
            gpus_per_node=args.gpus,
        )
        t0 = time.perf_counter()
        refs = [GpuRef(n, str(g)) for n in big.node_names for g in range(args.gpus)]
        fleet = build_graph(big.topology(), refs)
        print(
            f"graph of {big.n_gpus:,} GPUs ({fleet.number_of_nodes():,} vertices) built in "
            f"{time.perf_counter() - t0:.1f} s"
        )
    start = datetime(2026, 11, 1, tzinfo=UTC)
    step = timedelta(minutes=1)
    onset = start + timedelta(hours=args.hours)

    t0 = time.perf_counter()
    from dowhy import gcm  # noqa: F401  (the one-off import the bot pays on first explanation)

    print(f"import dowhy.gcm (one-off)         {time.perf_counter() - t0:7.2f} s")
    print(f"fleet: {spec.n_gpus} GPUs, history {args.hours:g} h at 1 min")

    fit_s: list[float] = []
    cold: list[float] = []
    warm: list[float] = []
    graph_s: list[float] = []
    metrics_s: list[float] = []
    cold_c: list[float] = []
    warm_c: list[float] = []
    graph_c: list[float] = []
    metrics_c: list[float] = []
    warm_fit: list[float] = []
    first: list[float] = []
    first_c: list[float] = []
    rows = []
    for i, kind in enumerate(KINDS):
        incident, history, graph, frames = make_case(
            spec, kind, i, start=start, onset=onset, hours=args.hours, step=step
        )
        shown = fleet if fleet is not None else graph  # what the incident is explained against
        t0 = time.perf_counter()
        explainer = Explainer(random_state=0).fit(history, graph)
        fit_s.append(time.perf_counter() - t0)
        for _ in range(args.repeat):  # without cache: training table and SCM rebuilt each time
            _forget(explainer)
            with _Clock() as c:
                explainer.explain(incident, frames, shown)
            cold.append(c.wall)
            cold_c.append(c.cpu)
        for _ in range(args.repeat):  # warmed by a (background) refit: every kind's models
            _forget(explainer)
            with _Clock() as c:
                explainer.warm()
            warm_fit.append(c.wall)
            with _Clock() as c:
                explainer.explain(incident, frames, shown)
            first.append(c.wall)
            first_c.append(c.cpu)
        times = []
        for _ in range(args.repeat):  # with cache: attribution only
            with _Clock() as c:
                exp = explainer.explain(incident, frames, shown)
            times.append(c.wall)
            warm_c.append(c.cpu)
        warm.extend(times)
        incident = replace(incident, explanation=exp)
        scores = {g.key: 0.1 for g in frames.gpus} | {g.key: g.score for g in incident.gpus}
        for _ in range(args.repeat):
            with _Clock() as c:
                render_incident_graph(incident, shown, scores)
            graph_s.append(c.wall)
            graph_c.append(c.cpu)
            with _Clock() as c:
                render_incident_metrics(incident, frames, onset=onset)
            metrics_s.append(c.wall)
            metrics_c.append(c.cpu)
        top = exp.factors[0] if exp.factors else None
        rows.append(
            (kind, statistics.median(times), top.name if top else "-", top.share if top else 0.0)
        )
    print(f"fit (prepare history), median       {_median_ms(fit_s)}")
    print(f"explain without cache, median       {_median_ms(cold, cold_c)}")
    print(f"warm() in a refit, median           {_median_ms(warm_fit)}")
    print(f"first explain after warm(), median  {_median_ms(first, first_c)}")
    print(f"explain with cache, median          {_median_ms(warm, warm_c)}")
    print(f"render_incident_graph, median       {_median_ms(graph_s, graph_c)}")
    print(f"render_incident_metrics, median     {_median_ms(metrics_s, metrics_c)}")
    print("per kind (cached median, top factor):")
    for kind, t, name, share in rows:
        print(f"  {kind:18s} {t * 1000:6.0f} ms  {name} ({share:.0%})")


if __name__ == "__main__":
    main()
