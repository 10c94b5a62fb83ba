"""The in-memory evaluator of the feature plan: reductions over the tidy GPU frame. Pure.

The same definitions as the PromQL evaluator (``storage/promql_reduce.py``), on the same grid
(:mod:`analysis.feature_plan`): the frame's samples are placed on the step grid ending at ``at``
(the last sample in ``(t - step, t]`` at each ``t = at - j*step``), one dense ``GPU x point x
metric`` array, and each reduction is a NaN-aware numpy expression along the points. The
arithmetic follows Prometheus' where it matters (population spread, ``deriv``'s least squares with
a constant series' slope exactly 0), so both evaluators give the same numbers on the same data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.feature_plan import FeaturePlan, Reduction
from analysis.types import Reductions, factorize_runs

__all__ = ["reduce_frames", "reduce_frames_at", "with_reductions_of"]

Array = npt.NDArray[np.float64]
Codes = npt.NDArray[np.intp]
Keys = npt.NDArray[np.object_]


def _grid(
    gpu: pd.DataFrame, plan: FeaturePlan, at: pd.Timestamp, n: int | None = None
) -> tuple[pd.Index, Array, dict[str, int], npt.NDArray[np.bool_]]:
    """Place the samples on the grid: (GPU keys, values[key, j, metric], metric -> column, seen).

    ``j`` counts steps back from ``at`` (``j = 0`` is ``at``); where several samples fall in one
    step the latest wins (``last_over_time``). ``n``: how many points (default: the window's);
    ``seen[key, j]``: the key has a sample of a planned metric at point ``j`` (NaN or not).
    """
    metrics = {m: i for i, m in enumerate(plan.metrics)}
    n = plan.points("window") if n is None else n
    step_ns = round(plan.step.total_seconds() * 1e9)
    # masks and codes on the columns, one copy of the rows kept and no text per row: a fit's
    # whole history is placed at once
    rows = np.empty(0, dtype=np.int64)
    if len(gpu):
        # a tidy frame's labels come in runs (one series after another): hashed once per run
        metric, names = factorize_runs(gpu["metric"].to_numpy())
        col = np.array([metrics.get(m, -1) for m in names], dtype=np.int64)[metric]
        age = at.value - gpu["ts"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        rows = np.flatnonzero((col >= 0) & (age >= 0) & (age // step_ns < n))
    if not len(rows):
        empty = np.zeros((0, n), dtype=bool)
        return pd.Index([], dtype=object), np.full((0, n, len(metrics)), np.nan), metrics, empty
    col, age = col[rows], age[rows]
    j = age // step_ns
    codes, uniques = _keys(gpu["node"].to_numpy()[rows], gpu["gpu"].to_numpy()[rows])
    # the latest sample of each (key, step, metric) cell: order by age descending, last wins
    order = np.argsort(-age, kind="stable")
    cells = np.full((len(uniques), n, len(metrics)), np.nan)
    value = gpu["value"].to_numpy(dtype=np.float64)[rows]
    cells[codes[order], j[order], col[order]] = value[order]
    seen = np.zeros((len(uniques), n), dtype=bool)
    seen[codes, j] = True
    return pd.Index(uniques, dtype=object), cells, metrics, seen


def _keys(node: npt.NDArray[np.object_], gpu: npt.NDArray[np.object_]) -> tuple[Codes, Keys]:
    """Each row's code among the sorted ``<node>/<gpu>`` keys, and the keys (text made once per
    key: labels that only differ in type, ``1`` and ``"1"``, are one key, as in text)."""
    n_code, n_uniq = factorize_runs(node)
    g_code, g_uniq = factorize_runs(gpu)
    pair, pairs = pd.factorize(n_code.astype(np.int64) * len(g_uniq) + g_code)
    text = np.array(
        [f"{n_uniq[p // len(g_uniq)]}/{g_uniq[p % len(g_uniq)]}" for p in pairs], dtype=object
    )
    keys, rank = np.unique(text, return_inverse=True)
    return rank.reshape(-1)[pair], keys


def _sum_count(x: Array) -> tuple[Array, Array]:
    """NaN-aware sum and count along the points."""
    present = ~np.isnan(x)
    return np.where(present, x, 0.0).sum(axis=1), present.sum(axis=1).astype(np.float64)


def _mean(x: Array) -> Array:
    """avg_over_time."""
    total, count = _sum_count(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _std(x: Array) -> Array:
    """stddev_over_time: the population standard deviation."""
    mean = _mean(x)
    dev = x - mean[:, None]
    total, count = _sum_count(dev * dev)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.sqrt(total / np.maximum(count, 1)), np.nan)


def _slope(x: Array, seconds: Array) -> Array:
    """deriv x 60: least-squares slope per minute, at least two points, constant series 0."""
    present = ~np.isnan(x)
    # seconds after the span's first point, as Prometheus' linearRegression takes them
    t = np.where(present, seconds[None, :] - seconds[-1], 0.0)
    y = np.where(present, x, 0.0)
    n = present.sum(axis=1).astype(np.float64)
    sum_x, sum_y = t.sum(axis=1), y.sum(axis=1)
    sum_xy, sum_x2 = (t * y).sum(axis=1), (t * t).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sum_xy - sum_x * sum_y / n
        var = sum_x2 - sum_x * sum_x / n
        slope = cov / var * 60.0
    slope = np.where(_max(x) == _min(x), 0.0, slope)
    return np.where(n >= 2, slope, np.nan)


def _last_index(x: Array) -> npt.NDArray[np.int64]:
    """Index of the latest present point (smallest ``j``); -1 when none."""
    present = ~np.isnan(x)
    first = np.argmax(present, axis=1)
    return np.where(present.any(axis=1), first, -1)


def _last(x: Array) -> Array:
    """last_over_time."""
    idx = _last_index(x)
    vals = x[np.arange(len(x)), np.maximum(idx, 0)] if len(x) else np.empty(0)
    return np.where(idx >= 0, vals, np.nan)


def _max(x: Array) -> Array:
    """max_over_time."""
    present = (~np.isnan(x)).any(axis=1)
    return np.where(present, np.where(np.isnan(x), -np.inf, x).max(axis=1, initial=-np.inf), np.nan)


def _min(x: Array) -> Array:
    """min_over_time."""
    present = (~np.isnan(x)).any(axis=1)
    return np.where(present, np.where(np.isnan(x), np.inf, x).min(axis=1, initial=np.inf), np.nan)


def _steps(x: Array) -> Array:
    """The step into each point from the point one step earlier, NaN unless both are present.

    Column ``j`` is ``x[j] - x[j + 1]`` (``j`` counts back from ``at``): PromQL's
    ``x - x offset step`` on the grid.
    """
    return x[:, :-1] - x[:, 1:]


def _increase(x: Array) -> Array:
    """A counter's increase: max - min without a reset, else the sum of its positive steps."""
    last, top, bottom = _last(x), _max(x), _min(x)
    return np.where(last >= top, top - bottom, _step_sum(x))


def _step_sum(x: Array) -> Array:
    """The sum of the positive steps between consecutive points (NaN without a pair)."""
    positive, pairs = _sum_count(np.clip(_steps(x), 0.0, None))
    return np.where(pairs > 0, positive, np.nan)


def _top_step(x: Array) -> Array:
    """The largest positive step between consecutive points (0 when none rose)."""
    return _max(np.clip(_steps(x), 0.0, None))


def _new_codes(x: Array, codes: frozenset[int] | None) -> Array:
    """Steps to a new non-zero code (of ``codes``, or any): changes between consecutive points."""
    now, before = x[:, :-1], x[:, 1:]
    with np.errstate(invalid="ignore"):
        new = (now != before) & ~np.isnan(now) & ~np.isnan(before) & (now > 0)
    if codes is not None:
        new &= np.isin(now, np.fromiter(codes, dtype=np.float64))
    count = new.sum(axis=1).astype(np.float64)
    return np.where(count > 0, count, np.nan)


def _last_time(x: Array, stamps: Array) -> Array:
    """Unix seconds of the latest present point."""
    idx = _last_index(x)
    return np.where(idx >= 0, stamps[np.maximum(idx, 0)], np.nan)


def _count(x: Array) -> Array:
    """count_over_time (NaN, not 0, without a sample: PromQL returns no series)."""
    count = (~np.isnan(x)).sum(axis=1).astype(np.float64)
    return np.where(count > 0, count, np.nan)


_SIMPLE: dict[str, Callable[[Array], Array]] = {
    "mean": _mean,
    "std": _std,
    "last": _last,
    "max": _max,
    "count": _count,
    "increase": _increase,
    "top_step": _top_step,
    "step_sum": _step_sum,
}


def _reduce(red: Reduction, x: Array, seconds: Array, stamps: Array) -> Array:
    """Evaluate one reduction on its span's points ``x[key, j]``."""
    fn = _SIMPLE.get(red.kind)
    if fn is not None:
        return fn(x)
    if red.kind == "slope":
        return _slope(x, seconds)
    if red.kind == "last_time":
        return _last_time(x, stamps)
    return _new_codes(x, red.codes)


def reduce_frames(gpu: pd.DataFrame, plan: FeaturePlan, at: datetime) -> pd.DataFrame:
    """Evaluate every reduction of ``plan`` at ``at`` over a tidy GPU frame.

    Parameters
    ----------
    gpu : pd.DataFrame
        ``FleetFrames.gpu`` (ts, node, gpu, metric, value); samples outside the window are
        ignored.
    plan : FeaturePlan
        The reductions and their lengths.
    at : datetime
        The end of the window (aware UTC).

    Returns
    -------
    pd.DataFrame
        Index GPU key (``<node>/<gpu>``, sorted, the GPUs with a sample of a planned metric in
        the window), one float column per reduction (:attr:`Reduction.name`), NaN where a GPU
        has no value (as a PromQL query returns no series for it).
    """
    stamp = _utc(at)
    keys, cells, column, _ = _grid(gpu, plan, stamp)
    return _evaluate(keys, cells, column, plan, stamp)


def reduce_frames_at(
    gpu: pd.DataFrame, plan: FeaturePlan, times: Sequence[datetime]
) -> list[pd.DataFrame]:
    """:func:`reduce_frames` at each of ``times`` (a fit's cycles over one history), the same tables.

    The samples are placed once on a grid ending at the latest time, and each window is cut out
    of it: a window's cells are the same samples as its own grid's (the same ``(t - step, t]``
    buckets, the latest sample winning), and its GPUs those with a sample in it. A time off that
    grid (not a whole number of steps before the latest) gets its own :func:`reduce_frames`.
    """
    if not times:
        return []
    stamps = [_utc(t) for t in times]
    last = max(stamps)
    step_ns = round(plan.step.total_seconds() * 1e9)
    n = plan.points("window")
    back = {s: (last.value - s.value) // step_ns for s in stamps}
    on_grid = [s for s in stamps if (last.value - s.value) % step_ns == 0]
    depth = max((back[s] for s in on_grid), default=0) + n
    keys, cells, column, seen = _grid(gpu, plan, last, depth)
    out = []
    for stamp in stamps:
        if (last.value - stamp.value) % step_ns:
            out.append(_evaluate(*_grid(gpu, plan, stamp)[:3], plan, stamp))
            continue
        k = back[stamp]
        rows = np.flatnonzero(seen[:, k : k + n].any(axis=1))
        # a C-ordered copy, as _grid's own array: numpy sums the points in the same order
        window = np.ascontiguousarray(cells[rows, k : k + n, :])
        out.append(_evaluate(pd.Index(keys[rows], dtype=object), window, column, plan, stamp))
    return out


def _utc(at: datetime) -> pd.Timestamp:
    """``at`` as an aware UTC timestamp."""
    stamp = pd.Timestamp(at)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _evaluate(
    keys: pd.Index, cells: Array, column: dict[str, int], plan: FeaturePlan, stamp: pd.Timestamp
) -> pd.DataFrame:
    """Every reduction of ``plan`` over the grid ``cells[key, j, metric]`` ending at ``stamp``."""
    step_s = plan.step.total_seconds()
    out: dict[str, Array] = {}
    for red in plan.reductions:
        points = plan.points(red.span)
        x = cells[:, :points, column[red.metric]]
        seconds = -np.arange(points, dtype=np.float64) * step_s
        stamps = stamp.timestamp() + seconds
        out[red.name] = _reduce(red, x, seconds, stamps)
    return pd.DataFrame(out, index=pd.Index(keys, name="gpu_key"), dtype=np.float64)


def with_reductions_of(
    reduced: Reductions, gpu: pd.DataFrame, metrics: Sequence[str]
) -> Reductions:
    """``reduced`` (a TSDB's table for a plan that left ``metrics`` out) with those metrics'
    reductions computed here from ``gpu`` (their raw samples, read anyway) at its time.

    The table is the one the TSDB returns for the whole plan: a column per reduction in the
    plan's order, a row per GPU with a value in either part (sorted), NaN where a GPU has none.
    """
    whole = FeaturePlan(reduced.window, reduced.recent, reduced.step)
    here = reduce_frames(gpu, whole.of_only(metrics), reduced.at)
    table = reduced.table.join(here, how="outer") if len(here.columns) else reduced.table
    table = table.reindex(columns=[r.name for r in whole.reductions]).sort_index()
    table.index.name = reduced.table.index.name
    return replace(reduced, table=table.astype(np.float64))
