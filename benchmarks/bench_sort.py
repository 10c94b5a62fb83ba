"""Sorting a fit span's tidy GPU frame by time (``analysis.frames.sort_by_time``) against the
sort it replaced (``sort_values`` then ``reset_index(drop=True)``, which copies the sorted frame
once more).

A TSDB's frames come sorted by their labels, then time (``storage.promql_frames.concat_frames``);
a fit featurising a span sorts them by time first (``analysis.features.feature_history``). At
100,000 GPUs a span (one cycle window and its lead-in) of the peer metrics is about 13 million
rows, and the forty-sixth session's cold start spent 83 s of its 16 spans in this sort.

Run: ``.venv/bin/python -m benchmarks.bench_sort [--gpus 100000] [--points 42] [--repeat 5]``.
Prints the medians of the two, timed alternately in one run, their ratio, and each one's peak
of traced memory; the two results are checked equal first.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from statistics import median

import numpy as np
import pandas as pd

from analysis.context import PEER_METRICS
from analysis.frames import sort_by_time

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def span_frame(gpus: int, points: int, seed: int = 0) -> pd.DataFrame:
    """A tidy GPU frame of ``gpus`` GPUs (8 a node) x the peer metrics x ``points`` minutes, in
    a TSDB's order: by node, GPU and metric, then time."""
    series = gpus * len(PEER_METRICS)
    nodes = np.array([f"gpu-node-{i:05d}" for i in range(gpus // 8 + 1)], dtype=object)
    ids = np.array([str(i) for i in range(8)], dtype=object)
    metrics = np.array(PEER_METRICS, dtype=object)
    s = np.arange(series)
    gpu, metric = s // len(PEER_METRICS), s % len(PEER_METRICS)
    stamps = pd.date_range(T0, periods=points, freq="1min", tz="UTC").asi8
    return pd.DataFrame(
        {
            "ts": pd.to_datetime(np.tile(stamps, series), utc=True),
            "node": np.repeat(nodes[gpu // 8], points),
            "gpu": np.repeat(ids[gpu % 8], points),
            "metric": np.repeat(metrics[metric], points),
            "value": np.random.default_rng(seed).random(series * points),
        }
    )


def before(df: pd.DataFrame) -> pd.DataFrame:
    """The sort ``sort_by_time`` replaced."""
    return df.sort_values("ts", kind="stable").reset_index(drop=True)


def peak_mb(fn: Callable[[pd.DataFrame], pd.DataFrame], df: pd.DataFrame) -> float:
    """The peak of memory traced while ``fn(df)`` runs, beyond what was held before (MB)."""
    gc.collect()
    tracemalloc.start()
    fn(df)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 1e6


def main(argv: list[str] | None = None) -> None:
    """Time both sorts alternately on one frame; print medians, ratio and peaks."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpus", type=int, default=100_000)
    ap.add_argument(
        "--points", type=int, default=42, help="minutes a span holds (window + lead-in)"
    )
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    df = span_frame(args.gpus, args.points)
    pd.testing.assert_frame_equal(sort_by_time(df), before(df))
    times: dict[str, list[float]] = {"before": [], "sort_by_time": []}
    for _ in range(args.repeat):
        for name, fn in (("before", before), ("sort_by_time", sort_by_time)):
            gc.collect()
            t = time.perf_counter()
            fn(df)
            times[name].append(time.perf_counter() - t)
    b, a = median(times["before"]), median(times["sort_by_time"])
    print(f"{len(df):,} rows ({args.gpus:,} GPUs x {len(PEER_METRICS)} metrics x {args.points})")
    print(
        f"sort_values + reset_index: median {b:.2f} s of {[round(t, 2) for t in times['before']]}"
    )
    print(
        f"sort_by_time:              median {a:.2f} s of {[round(t, 2) for t in times['sort_by_time']]}"
    )
    print(f"ratio {a / b:.2f}x")
    print(
        f"peak traced: before {peak_mb(before, df):,.0f} MB, sort_by_time {peak_mb(sort_by_time, df):,.0f} MB"
    )


if __name__ == "__main__":
    main()
