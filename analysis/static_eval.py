"""Vectorised Prometheus semantics on frames, for the static rules (``analysis.static_rules``).

Tidy rows become numpy arrays with one integer code per series (``_Series``); ``_Grid`` is the
evaluation grid ending at ``at``: an instant value is the last sample at most ``lookback`` old,
range windows are closed ``[t - w, t]``, and a condition is held when true at every evaluation of
``for``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from analysis.types import FleetFrames


def _ns(d: timedelta) -> int:
    """A duration in integer nanoseconds."""
    return int(pd.Timedelta(d).value)


@dataclass(frozen=True)
class _Series:
    """A tidy frame's rows up to ``at`` as numpy arrays, with one integer code per series.

    ``codes[i]`` indexes ``keys`` (the series' label tuple); ``ts`` is in UTC nanoseconds. Rows
    after ``at`` are dropped; with ``metrics``, each row also carries its metric code.
    """

    ts: np.ndarray
    values: np.ndarray
    codes: np.ndarray
    keys: list[tuple[object, object]]
    metric_codes: np.ndarray | None
    metric_names: dict[str, int]

    @classmethod
    def of(
        cls,
        df: pd.DataFrame,
        labels: tuple[str, str],
        at_ns: int,
        *,
        metrics: tuple[str, ...] | None,
    ) -> _Series:
        """Split ``df`` into series by its two ``labels`` (and codes for ``metrics`` if given)."""
        ts = _ts_ns(df["ts"])
        keep = ts <= at_ns
        if not keep.all():
            df = df.loc[keep]
            ts = ts[keep]
        a, a_uniq = pd.factorize(df[labels[0]], sort=False)
        b, b_uniq = pd.factorize(df[labels[1]], sort=False)
        pair, pair_uniq = pd.factorize(a.astype(np.int64) * max(len(b_uniq), 1) + b, sort=False)
        nb = max(len(b_uniq), 1)
        keys = [(a_uniq[int(p // nb)], b_uniq[int(p % nb)]) for p in pair_uniq]
        metric_codes: np.ndarray | None = None
        metric_names: dict[str, int] = {}
        if metrics is not None:  # only these metrics get codes (isin is cheaper than factorize)
            wanted = df["metric"].isin(metrics).to_numpy()
            metric_codes = np.full(len(df), -1, dtype=np.intp)
            codes, m_uniq = pd.factorize(df["metric"].to_numpy()[wanted], sort=False)
            metric_codes[wanted] = codes
            metric_names = {str(m): i for i, m in enumerate(m_uniq)}
        return cls(
            ts=ts,
            values=df["value"].to_numpy(dtype=float),
            codes=pair.astype(np.intp),
            keys=keys,
            metric_codes=metric_codes,
            metric_names=metric_names,
        )

    def metric(self, name: str) -> np.ndarray | None:
        """Row indices of one metric (None when the frame has none of it)."""
        code = self.metric_names.get(name)
        if code is None or self.metric_codes is None:
            return None
        return np.flatnonzero(self.metric_codes == code)

    def seen_keys(self) -> list[tuple[object, object]]:
        """Every series with at least one row up to ``at``."""
        return self.keys


def _ts_ns(col: pd.Series) -> np.ndarray:
    """A timestamp column as UTC int64 nanoseconds."""
    ts = pd.DatetimeIndex(col)
    if ts.tz is None:
        ts = ts.tz_localize("UTC")
    if ts.unit != "ns":
        ts = ts.as_unit("ns")
    return np.asarray(ts.asi8)


@dataclass(frozen=True)
class _Grid:
    """The evaluation grid: every ``step`` back from ``at`` to the frames' start."""

    at: pd.Timestamp
    step: pd.Timedelta
    times: pd.DatetimeIndex

    @classmethod
    def build(cls, frames: FleetFrames, at: datetime) -> _Grid:
        """Anchor the grid at ``at`` and reach back to the window's start."""
        at_ts = _utc(at)
        step = pd.Timedelta(frames.step)
        n = max(0, math.ceil((at_ts - _utc(frames.start)) / step))
        times = pd.DatetimeIndex([at_ts - step * k for k in range(n, -1, -1)])
        return cls(at_ts, step, times)

    @property
    def at_ns(self) -> int:
        """``at`` in UTC nanoseconds."""
        return int(self.at.value)

    def instant(
        self, series: _Series, rows: np.ndarray, lookback: timedelta
    ) -> tuple[np.ndarray, np.ndarray]:
        """Wide array (grid x series): the last sample at most ``lookback`` old at each time.

        Returns the array and the series code of each column (series with a sample on the grid).
        """
        step = int(self.step.value)
        t0 = int(self.times[0].value)
        n_times = len(self.times)
        values = series.values[rows]
        ok = ~np.isnan(values)  # the last sample of a cell is its last non-missing one
        rows, values = rows[ok], values[ok]
        delta = series.ts[rows] - t0
        cells = -(-delta // step)  # ceil: a sample belongs to the next evaluation at or after it
        keep = (cells >= 0) & (cells < n_times)
        rows, values, cells = rows[keep], values[keep], cells[keep]
        cols, col_of = np.unique(series.codes[rows], return_inverse=True)
        wide = np.full((n_times, len(cols)), np.nan)
        if len(rows):
            key = cells * len(cols) + col_of
            order = np.lexsort((series.ts[rows], key))  # by cell and series, then time
            key = key[order]
            last = np.ones(len(key), dtype=bool)
            last[:-1] = key[1:] != key[:-1]
            wide.reshape(-1)[key[last]] = values[order][last]
        limit = int(pd.Timedelta(lookback) / self.step)
        if limit > 0 and len(cols):
            idx = np.where(~np.isnan(wide), np.arange(n_times)[:, None], -1)
            np.maximum.accumulate(idx, axis=0, out=idx)
            fill = (idx >= 0) & (np.arange(n_times)[:, None] - idx <= limit)
            wide = np.where(fill, wide[np.maximum(idx, 0), np.arange(len(cols))], np.nan)
        return wide, cols

    def held(self, cond: np.ndarray, hold: timedelta) -> np.ndarray:
        """Per column: the condition held at every evaluation in [at - hold, at]."""
        lo = self.at - pd.Timedelta(hold)
        if self.times[0] > lo:  # the window does not reach back far enough to know
            return np.zeros(cond.shape[1], dtype=bool)
        first = int(np.searchsorted(self.times.as_unit("ns").asi8, lo.value, side="left"))
        return np.asarray(cond[first:].all(axis=0))

    def last_values(
        self, series: _Series, rows: np.ndarray, lookback: timedelta
    ) -> list[tuple[int, float]]:
        """Per series code: the instant value at ``at`` (last sample at most ``lookback`` old)."""
        ts = series.ts[rows]
        values = series.values[rows]
        keep = (ts >= self.at_ns - _ns(lookback)) & ~np.isnan(values)
        rows = rows[keep]
        if len(rows) == 0:
            return []
        codes = series.codes[rows]
        order = np.lexsort((series.ts[rows], codes))
        codes = codes[order]
        last = np.ones(len(codes), dtype=bool)
        last[:-1] = codes[1:] != codes[:-1]
        return [
            (int(c), float(v)) for c, v in zip(codes[last], values[keep][order][last], strict=True)
        ]


def _utc(ts: datetime | pd.Timestamp) -> pd.Timestamp:
    """Aware UTC pandas timestamp."""
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
