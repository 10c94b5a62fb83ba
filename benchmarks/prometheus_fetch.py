"""How long one scan's fetch takes from a real Prometheus and VictoriaMetrics, and how many queries.

Simulates the default fleet (4 racks x 8 nodes x 8 GPUs = 256 GPUs) for a few hours, backfills it
into Prometheus (promtool) and imports it into VictoriaMetrics, then times
``PrometheusSource.fetch`` of the default 30-minute window (and the static rules' 60-minute window)
at a 60 s step, and a small fleet for comparison. Prints medians; no assertions.

    .venv/bin/python -m benchmarks.prometheus_fetch [--hours 3] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from storage.metrics import PrometheusSource
from storage.simulator import FleetSimulator, FleetSpec
from tests.fixtures.prometheus import Dataset, serve_prometheus, serve_victoria


class _Counting(requests.Session):
    """Counts requests sent."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def request(self, *args: object, **kwargs: object) -> requests.Response:  # type: ignore[override]
        """Count, then send."""
        self.n += 1
        return super().request(*args, **kwargs)  # type: ignore[arg-type]


def _dataset(spec: FleetSpec, hours: float, out: Path) -> tuple[Dataset, FleetSimulator]:
    """Simulate and write one fleet's history."""
    start = datetime(2026, 11, 15, tzinfo=UTC)
    t0 = time.perf_counter()
    sim = FleetSimulator(spec, start=start, duration=timedelta(hours=hours), seed=3)
    sim.write_history(out)
    print(f"  simulated + wrote {spec.n_gpus} GPUs x {hours} h in {time.perf_counter() - t0:.1f} s")
    ds = Dataset(
        out, out / "metrics.om", out / "topology.yaml", out / "faults.json",
        sim.start, sim.end, sim.step, spec.n_gpus, "simulator",
    )  # fmt: skip
    return ds, sim


def _time_fetch(url: str, ds: Dataset, sim: FleetSimulator, window_min: int, repeat: int) -> None:
    """Print the median fetch time and the query count of one window."""
    end = ds.end - timedelta(minutes=5)
    start = end - timedelta(minutes=window_min)
    times, queries, rows = [], 0, 0
    for _ in range(repeat):
        session = _Counting()
        src = PrometheusSource(url, topology=sim.topology, session=session)
        t0 = time.perf_counter()
        frames = src.fetch(start, end, timedelta(seconds=60))
        times.append(time.perf_counter() - t0)
        queries, rows = session.n, len(frames.gpu) + len(frames.node)
    print(
        f"    {window_min:>3} min window: median {statistics.median(times):.2f} s "
        f"(min {min(times):.2f}), {queries} queries, {rows} GPU+node rows"
    )


def main() -> None:
    """Run the benchmark."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for spec in (FleetSpec(1, 1, 8), FleetSpec()):
            print(
                f"fleet {spec.racks}x{spec.nodes_per_rack}x{spec.gpus_per_node} = {spec.n_gpus} GPUs"
            )
            work = Path(tmp) / f"f{spec.n_gpus}"
            ds, sim = _dataset(spec, args.hours, work / "data")
            for name, serve in (
                ("prometheus", serve_prometheus),
                ("victoriametrics", serve_victoria),
            ):
                t0 = time.perf_counter()
                with serve(ds, work / name) as backend:
                    print(f"  {name}: loaded in {time.perf_counter() - t0:.1f} s")
                    for window in (30, 60):
                        _time_fetch(backend.url, ds, sim, window, args.repeat)


if __name__ == "__main__":
    main()
