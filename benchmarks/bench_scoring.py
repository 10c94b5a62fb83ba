"""Speed of the graph model: featurise + score one cycle, and fit, at 256 and 1,024 GPUs.

Run: ``.venv/bin/python -m benchmarks.bench_scoring [--repeat 5]``. Prints medians (seconds).
Targets: featurise 256 GPUs x 30-minute window well under 1 s; a full cycle (features, scores,
incidents) under 1 s at 256 GPUs.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from analysis.features import build_features, slice_frames, sort_frames
from analysis.graph import build_graph
from analysis.scoring import GraphRiskModel
from benchmarks.timing import median_seconds
from storage.simulator.fleet import FleetSimulator
from storage.simulator.spec import FleetSpec

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def bench(racks: int, repeat: int, fit_hours: int, fit_cycles: int) -> None:
    """Simulate a fleet of ``racks`` x 8 x 8 GPUs and time featurise, assess and fit."""
    spec = FleetSpec(racks=racks, nodes_per_rack=8, gpus_per_node=8)
    sim = FleetSimulator(spec, start=T0, duration=timedelta(hours=fit_hours + 1), seed=5)
    frames = sort_frames(sim.fetch(sim.start, sim.end, timedelta(minutes=1)))
    graph = build_graph(sim.topology, frames.gpus)
    history = slice_frames(frames, T0 - timedelta(minutes=1), T0 + timedelta(hours=fit_hours))
    at = T0 + timedelta(hours=fit_hours, minutes=45)
    window = slice_frames(frames, at - timedelta(minutes=30), at)
    model = GraphRiskModel(fit_window=timedelta(hours=fit_hours), fit_cycles=fit_cycles)
    fit_s = median_seconds(lambda: model.fit(history, graph), 1 if spec.n_gpus > 256 else repeat)
    feat_s = median_seconds(lambda: build_features(window, graph, at), repeat)
    cycle_s = median_seconds(lambda: model.assess(window, graph, at), repeat)
    print(
        f"{spec.n_gpus:5d} GPUs | featurise {feat_s:.3f} s | featurise+score+incidents "
        f"{cycle_s:.3f} s | fit on {fit_cycles} cycles x {spec.n_gpus} GPUs "
        f"({fit_cycles * spec.n_gpus} rows, {fit_hours} h) {fit_s:.2f} s"
    )


def main() -> None:
    """Run the benchmark at 256 and 1,024 GPUs."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--fit-hours", type=int, default=6)
    parser.add_argument("--fit-cycles", type=int, default=48)
    args = parser.parse_args()
    for racks in (4, 16):
        bench(racks, args.repeat, args.fit_hours, args.fit_cycles)


if __name__ == "__main__":
    main()
