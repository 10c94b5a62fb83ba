"""Time ``evaluate`` on the SMD machines per detector and print the mean table and runtimes.

Run: ``.venv/bin/python -m benchmarks.evaluate_smd [DIR] [--repeat N]`` (DIR defaults to
``../shared/data/smd``). Prints, per detector, the median wall time of a full pass over all
machines, the slowest machine, and the mean metrics; and the Hit@P% a random ranking would get.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

from analysis.detectors import DETECTORS
from analysis.evaluation import EvaluationSettings, evaluate_series, mean_table
from storage.datasets import discover, load_machine


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser()
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "smd"
    parser.add_argument("path", nargs="?", type=Path, default=default)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--detectors", default=",".join(DETECTORS))
    args = parser.parse_args()
    t = time.perf_counter()
    machines = [load_machine(ref) for ref in discover(args.path)]
    print(f"loaded {len(machines)} machines in {time.perf_counter() - t:.2f} s")
    # What a uniformly random ranking of the dims scores on average (the floor to beat).
    rand100, rand150 = [], []
    for m in machines:
        n = m.test.shape[1]
        for seg in m.segments:
            d = len(seg.dims)
            rand100.append(d / n)
            rand150.append(min(math.floor(1.5 * d), n) / n)
    print(
        f"random ranking: Hit@100% {statistics.mean(rand100):.3f}, "
        f"Hit@150% {statistics.mean(rand150):.3f} over {len(rand100)} segments"
    )
    for name in args.detectors.split(","):
        settings = EvaluationSettings(detector=name)
        walls: list[float] = []
        slowest = 0.0
        table: dict[str, dict[str, object]] = {}
        for _ in range(args.repeat):
            start = time.perf_counter()
            for m in machines:
                t = time.perf_counter()
                table[m.name] = evaluate_series(m.train, m.test, m.labels, m.segments, settings)
                slowest = max(slowest, time.perf_counter() - t)
            walls.append(time.perf_counter() - start)
        mean = mean_table(table)
        cells = " ".join(f"{k}={v:.3f}" for k, v in mean.items() if v is not None)
        print(
            f"{name:8s} all machines: median {statistics.median(walls):.2f} s "
            f"(slowest machine {slowest:.2f} s) | {cells}"
        )


if __name__ == "__main__":
    main()
