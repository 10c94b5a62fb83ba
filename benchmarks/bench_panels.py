"""Metric panels against the fleet's size: one incident's picture when the cycle's frames hold
more and more GPUs besides the incident's.

Run: ``.venv/bin/python -m benchmarks.bench_panels [--copies 1,4,16 --repeat 2]``.
One simulated fault of every kind (as ``benchmarks.bench_explain``: 2 racks of 32 nodes of 8
GPUs, explained at 65 % of its precursor, 2 h of 1-minute frames) is drawn with its frames
replicated ``copies`` times under other node names (512 x copies GPUs; the copies are peers,
never the incident's). Prints the median wall time per picture for each size. Target: 0.3 s,
whatever the fleet (the picture depends on the incident: ``analysis.plots.panels.PEER_NODES``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pandas as pd

from analysis.explain import Explainer
from analysis.plots import render_incident_metrics
from analysis.types import FleetFrames
from benchmarks.bench_explain import KINDS, make_case
from storage.simulator import FleetSpec


def _replicated(frames: FleetFrames, copies: int) -> FleetFrames:
    """``frames`` with ``copies - 1`` more fleets of the same series under other node names."""
    if copies <= 1:
        return frames

    def grow(df: pd.DataFrame) -> pd.DataFrame:
        more = [df.assign(node=df["node"] + f"-c{i}") for i in range(1, copies)]
        return pd.concat([df, *more], ignore_index=True)

    return replace(frames, gpu=grow(frames.gpu), node=grow(frames.node))


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--copies", default="1,4,16", help="fleet sizes, in 512-GPU fleets")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    spec = FleetSpec(racks=2, nodes_per_rack=32, gpus_per_node=8)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    step = timedelta(minutes=1)
    onset = start + timedelta(hours=12)
    cases = []
    for i, kind in enumerate(KINDS):
        incident, history, graph, frames = make_case(
            spec, kind, i, start=start, onset=onset, hours=12.0, step=step
        )
        explanation = Explainer(random_state=0).fit(history, graph).explain(incident, frames, graph)
        cases.append((replace(incident, explanation=explanation), frames))
    for copies in (int(c) for c in args.copies.split(",")):
        times = []
        rows = 0
        for incident, frames in cases:
            big = _replicated(frames, copies)
            rows = len(big.gpu)
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                render_incident_metrics(incident, big, onset=onset)
                times.append(time.perf_counter() - t0)
        print(
            f"{spec.n_gpus * copies:>7,} GPUs ({rows:>11,} GPU rows): "
            f"render_incident_metrics median {statistics.median(times) * 1000:6.0f} ms"
        )


if __name__ == "__main__":
    main()
