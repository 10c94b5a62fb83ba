"""Time the backtest replay (``bot.commands.backtest.run_backtest``) on the simulator.

Run: ``.venv/bin/python -m benchmarks.backtest_replay``. Prints, per fleet size, the seconds per
cycle of the whole replay with the static rules (the bot's pipeline: tracker, lifecycle decisions
on an in-memory store), and of the frame slicing alone, as medians over the cycles.
"""

from __future__ import annotations

import itertools
import statistics
import time
from datetime import UTC, datetime, timedelta

from analysis.backtest import FrameSlicer
from bot.commands.backtest import run_backtest
from bot.config import load_settings
from bot.wiring import backtest_pipelines
from storage.simulator import FleetSimulator, FleetSpec


def main() -> None:
    """Run the benchmark and print one line per fleet size."""
    start = datetime(2026, 10, 1, tzinfo=UTC)
    for spec in (FleetSpec(2, 2, 4), FleetSpec(4, 8, 8)):
        sim = FleetSimulator(spec, start=start, duration=timedelta(hours=8), seed=3)
        first = start + timedelta(hours=2)
        last = start + timedelta(hours=4)
        ticks: list[float] = [time.perf_counter()]
        settings = load_settings(None, fit_window_hours=2)
        pipelines = backtest_pipelines(
            settings, sim, sim.topology, detectors=["static"], explain=False, horizon=last
        )
        run_backtest(
            pipelines,
            sim.faults,
            start=first,
            end=last,
            step=timedelta(minutes=10),
            on_cycle=lambda done, total, ticks=ticks: ticks.append(time.perf_counter()),
        )
        per_cycle = [b - a for a, b in itertools.pairwise(ticks)][1:]
        slicer = FrameSlicer(sim.fetch(first - timedelta(hours=1), last, timedelta(minutes=1)))
        cuts = []
        for k in range(13):
            at = first + timedelta(minutes=10 * k)
            t = time.perf_counter()
            slicer.window(at - timedelta(hours=1), at)
            cuts.append(time.perf_counter() - t)
        print(
            f"{spec.n_gpus:4d} GPUs: replay {statistics.median(per_cycle):.3f} s/cycle "
            f"(static rules), slicing {statistics.median(cuts) * 1000:.1f} ms/cycle"
        )


if __name__ == "__main__":
    main()
