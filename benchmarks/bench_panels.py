"""Metric panels against the fleet's size: one incident's picture when the fleet holds more and
more GPUs besides the incident's.

Run: ``.venv/bin/python -m benchmarks.bench_panels [--copies 1,4,16 --picture-copies 1,16,196
--repeat 2]``. One simulated fault of every kind (as ``benchmarks.bench_explain``: 2 racks of 32
nodes of 8 GPUs, explained at 65 % of its precursor, 2 h of 1-minute frames) is drawn with its
frames replicated ``copies`` times under other node names (512 x copies GPUs; the copies are
peers, never the incident's), two ways:

- *whole frames* (``--copies``): drawn from every GPU's rows, as a replay that holds the fleet's
  frames draws it;
- *picture* (``--picture-copies``): as the running bot draws it (``bot.evidence``): the
  incident's nodes and ``PEER_NODES`` others chosen from the fleet's node names (timed), their
  series as the TSDB answers the one query for them (built here, not timed: the query engine's
  work), then drawn (timed). 196 copies: 100,352 GPUs. ``--window-minutes 30``: the picture of
  the bot's default cycle window instead of the bench's 2 hours.

Prints the median wall time per picture for each size. Target: 0.3 s, whatever the fleet.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pandas as pd

from analysis.explain import Explainer
from analysis.plots import picture_read, render_incident_metrics
from analysis.types import FleetFrames, Incident
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


def _picture(
    frames: FleetFrames, incident: Incident, copies: int, window: timedelta | None = None
) -> tuple[FleetFrames, float]:
    """The frames the bot draws ``incident`` from in a fleet of ``copies`` bench fleets (the
    ``window`` before it when given, as the bot reads its cycle window), and the seconds it took
    to choose their nodes (``analysis.plots.picture_read``, as the bot asks)."""
    if window is not None:
        lo = pd.Timestamp(incident.at - window)

        def recent(df: pd.DataFrame) -> pd.DataFrame:
            return df[(df["ts"] >= lo).to_numpy()]

        frames = replace(frames, gpu=recent(frames.gpu), node=recent(frames.node))
        frames = replace(frames, component=recent(frames.component))
    base = sorted({str(n) for n in frames.gpu["node"]} | {str(n) for n in frames.node["node"]})
    names = base + [f"{n}-c{i}" for i in range(1, copies) for n in base]
    t0 = time.perf_counter()
    keep, _ = picture_read([incident], names)
    chose = time.perf_counter() - t0
    copy = re.compile(r"^(.*)-c\d+$")

    def rows(df: pd.DataFrame) -> pd.DataFrame:
        by = {str(n): part for n, part in df.groupby("node", sort=False)}
        parts = []
        for name in sorted(keep):
            m = copy.match(name)
            part = by.get(m.group(1) if m else name)
            if part is not None:
                parts.append(part.assign(node=name))
        return pd.concat(parts, ignore_index=True) if parts else df.iloc[0:0]

    return replace(frames, gpu=rows(frames.gpu), node=rows(frames.node)), chose


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--copies", default="1,4,16", help="fleet sizes, in 512-GPU fleets")
    parser.add_argument(
        "--picture-copies", default="1,16,196", help="fleet sizes for the bot's picture path"
    )
    parser.add_argument(
        "--window-minutes",
        type=int,
        default=0,
        help="draw the picture from this many minutes before the incident (the bot's cycle "
        "window, GPU_RISK_WINDOW_MINUTES, 30 by default); 0: the bench's 2 hours",
    )
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
            f"whole frames: render_incident_metrics median {statistics.median(times) * 1000:6.0f} ms"
        )
    for copies in (int(c) for c in args.picture_copies.split(",") if c):
        chose: list[float] = []
        drew: list[float] = []
        sizes: list[int] = []
        for incident, frames in cases:
            window = timedelta(minutes=args.window_minutes) if args.window_minutes else None
            picture, seconds = _picture(frames, incident, copies, window)
            sizes.append(len(picture.gpu))
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                render_incident_metrics(incident, picture, onset=onset)
                drew.append(time.perf_counter() - t0)
                chose.append(seconds)
        total = [c + d for c, d in zip(chose, drew, strict=True)]
        print(
            f"{spec.n_gpus * copies:>7,} GPUs (picture {int(statistics.median(sizes)):>9,} GPU rows): "
            f"choose {statistics.median(chose) * 1000:5.1f} ms + draw "
            f"{statistics.median(drew) * 1000:4.0f} ms = median {statistics.median(total) * 1000:4.0f} ms"
        )


if __name__ == "__main__":
    main()
