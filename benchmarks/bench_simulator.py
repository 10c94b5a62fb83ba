"""Fleet simulator speed and memory: generation, fetch of a 30-minute window, OpenMetrics writing.

Run: ``.venv/bin/python -m benchmarks.bench_simulator [--days 1] [--promtool]``.
Prints medians; the targets are generation of 256 GPUs x 1 day at 1 min in a few seconds and
< 2 GB, and a 30-minute fetch < 0.3 s.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storage.simulator import FleetSimulator, FleetSpec


def _rss_mb() -> float:
    """Peak resident memory of this process in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--promtool", action="store_true", help="also time promtool backfill")
    args = parser.parse_args()
    spec = FleetSpec()
    start = datetime(2026, 11, 1, tzinfo=UTC)
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    sim = FleetSimulator(spec, start=start, duration=timedelta(days=args.days), seed=1)
    gen = time.perf_counter() - t0
    print(
        f"generate {spec.n_gpus} GPUs x {args.days:g} d @1m: {gen:.2f} s, "
        f"peak RSS {_rss_mb():.0f} MB (before: {rss0:.0f} MB), faults {len(sim.faults)}"
    )
    times = []
    rows = 0
    for k in range(30):
        a = start + timedelta(minutes=37 * k % int(args.days * 1440 - 40))
        t0 = time.perf_counter()
        frames = sim.fetch(a, a + timedelta(minutes=30), timedelta(minutes=1))
        times.append(time.perf_counter() - t0)
        rows = len(frames.gpu) + len(frames.node) + len(frames.component) + len(frames.up)
    print(
        f"fetch 30 min @1m: median {statistics.median(times) * 1000:.1f} ms, "
        f"max {max(times) * 1000:.1f} ms, {rows} rows"
    )
    t0 = time.perf_counter()
    frames = sim.fetch(start, start + timedelta(hours=24), timedelta(minutes=5))
    print(f"fetch 24 h @5m: {time.perf_counter() - t0:.2f} s, {len(frames.gpu)} GPU rows")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        sim.write_history(out)
        size = (out / "metrics.om").stat().st_size / 1e6
        print(f"write_history: {time.perf_counter() - t0:.1f} s, metrics.om {size:.0f} MB")
        promtool = shutil.which("promtool")
        if args.promtool and promtool:
            t0 = time.perf_counter()
            subprocess.run(
                [
                    promtool,
                    "tsdb",
                    "create-blocks-from",
                    "openmetrics",
                    "--max-block-duration=24h",
                    str(out / "metrics.om"),
                    str(out / "tsdb"),
                ],
                check=True,
                capture_output=True,
            )
            print(f"promtool backfill: {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
