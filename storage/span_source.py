"""A run of cycles at known times read at once: a one-shot scan's cycles before the one it reports.

``gpu-risk scan --at T`` runs the cycles before ``T`` that a streak needs (one scan interval
apart) and those at the held-risk checkpoints (every 15 minutes back to an hour), each reading
its own window: ten overlapping windows and ten sets of reductions for what one read of the
span holds. :class:`SpanSource` wraps the scan's source and answers those reads from one fetch
of the whole span and range queries for the cycles' reductions (``reduce_at``, where the source
has it: ``PrometheusSource``):

- a window of the span (same step, same GPU metrics, the whole fleet, on the span's step grid)
  is cut out of the span's frames: the same rows, as a range query's point at ``t`` does not
  depend on the query's other points, and the source's frames are sorted by their labels and
  time (``storage.promql_frames.concat_frames``). A window lacking a GPU metric the span has is
  fetched on its own, so the source's own checks (a half-empty answer) apply to it as before;
- the reductions at the cycles' times come from the source's ``reduce_at``: the same tables as
  ``reduce`` at each time, one range query per reduction for each evenly spaced run of them
  (the checkpoints, the warm-up cycles and the reported one); the reported cycle's are asked
  alone when it is recent (``settled``: a TSDB may still hold its points back).

Anything else (the fit's history, an incident's nodes, a time outside the run, a span the source
failed to read) goes to the wrapped source, unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import pandas as pd

from analysis.feature_plan import FeaturePlan, grid_time
from analysis.types import (
    FleetFrames,
    Reductions,
)
from storage.promql_frames import concat_fleet_frames
from storage.promql_reduce import MAX_POINTS
from storage.source import MetricsSource, MetricsSourceError

__all__ = ["SpanSource"]

logger = logging.getLogger(__name__)

#: Cycles closer together are read one by one: VictoriaMetrics holds back the points within its
#: ``-search.latencyOffset`` (30 s by default) of now, so a point of a range query ending later
#: need not be the point of a query ending at it.
MIN_INTERVAL = timedelta(minutes=1)


@dataclass
class SpanSource:
    """A ``MetricsSource`` over ``source`` that reads the cycles at ``times`` all at once.

    ``times``: the cycles' ends, oldest first, :data:`MIN_INTERVAL` or more apart (a scan's
    held-risk checkpoints and its warm-up cycles: ``bot.commands.scan.scan_times``). The span is
    read at the first window fetch that falls in it (its step and GPU metrics are that fetch's),
    the reductions at the first ``reduce`` at one of ``times``. ``window``: how far before its
    end a cycle reads (``Pipeline.reads``: the window and any lead-in). ``settled``: a time no
    TSDB holds back any more (``bot.commands.scan.SETTLED`` before now); a last cycle at or
    before it is reduced with the others (a scan of the past), a later one alone.
    """

    #: Its windows are cut from one read already (``storage.rolling`` would only add a join).
    rolling_reads = False
    #: Its reductions come from one range query per reduction for the whole run of cycles, so
    #: the server reads the peer metrics' samples once for them all: computing those here for
    #: each cycle instead saved a 10,000-GPU scan nothing (stored model 29.4 -> 30.2 s back to
    #: back), where a running bot's cycle gained 24 %.
    remote_reductions = False

    source: MetricsSource
    times: Sequence[datetime]
    window: timedelta
    settled: datetime | None = None
    _span: dict[tuple[timedelta, tuple[str, ...] | None], FleetFrames | None] = field(
        default_factory=dict, init=False, repr=False
    )
    _metrics: dict[tuple[timedelta, tuple[str, ...] | None], frozenset[str]] = field(
        default_factory=dict, init=False, repr=False
    )
    """The GPU metrics of each span in ``_span``."""
    _reduced: dict[FeaturePlan, dict[datetime, Reductions]] = field(
        default_factory=dict, init=False, repr=False
    )
    _served: dict[tuple[datetime, timedelta], tuple[timedelta, tuple[str, ...] | None]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __getattr__(self, name: str) -> Any:
        """The wrapped source's other methods (``gpu_models``, ``query_range`` ...)."""
        if name.startswith("_") or name in ("source", "times", "window"):
            raise AttributeError(name)
        return getattr(self.source, name)

    @property
    def start(self) -> datetime:
        """The span's start: the first cycle's window start."""
        return self.times[0] - self.window

    def fetch(
        self,
        start: datetime,
        end: datetime,
        step: timedelta,
        *,
        gpu_metrics: Sequence[str] | None = None,
        nodes: Collection[str] | None = None,
    ) -> FleetFrames:
        """A window of the span cut from one fetch of it; anything else from the source."""
        if nodes is None and self._inside(start, end, step):
            key = (step, None if gpu_metrics is None else tuple(gpu_metrics))
            if key not in self._span:
                self._span[key] = span = self._read(step, gpu_metrics)
                if span is not None:
                    self._metrics[key] = frozenset(span.gpu["metric"].unique())
            span = self._span[key]
            if span is not None:
                cut = _cut(span, self._metrics[key], start, end, step)
                if cut is not None:
                    self._served[(end, step)] = key
                    return cut
        return self.source.fetch(start, end, step, gpu_metrics=gpu_metrics, nodes=nodes)

    def span_of(self, frames: FleetFrames) -> FleetFrames | None:
        """The span a cycle's ``frames`` (its window, or a part of it) were cut from; None when
        its window was read on its own (``analysis.feature_memo.SpanFeatures`` then builds the
        cycle's features as any other)."""
        key = self._served.get((frames.end, frames.step))
        return None if key is None else self._span.get(key)

    def reduce(self, plan: FeaturePlan, at: datetime) -> Reductions:
        """The reductions at one of the cycles' times from one ``reduce_at`` for them all; any
        other time from ``reduce``.

        The last (the reported cycle) is asked alone unless it is ``settled``: VictoriaMetrics
        moves an instant query within its ``-search.latencyOffset`` of now, which a range
        query's last point need not match.
        """
        when = grid_time(at, plan.step)
        last = self.times[-1] if self.times else None
        past = last is not None and self.settled is not None and last <= self.settled
        ends = self.times if past else self.times[:-1]
        whens = sorted({grid_time(t, plan.step) for t in ends})
        reduce_at = getattr(self.source, "reduce_at", None)
        if when not in whens or reduce_at is None or not _spaced(whens):
            return self.source.reduce(plan, at)
        if plan not in self._reduced:
            self._reduced[plan] = {
                t: table
                for run in _runs(whens)
                for t, table in zip(run, reduce_at(plan, run), strict=True)
            }
        return self._reduced[plan][when]

    def cordoned(self, at: datetime) -> frozenset[str]:
        """The source's cordoned nodes (one cheap query per cycle)."""
        return self.source.cordoned(at)

    def _inside(self, start: datetime, end: datetime, step: timedelta) -> bool:
        """``[start, end]`` lies in the span, on its step grid."""
        if step <= timedelta(0) or not _spaced(self.times):
            return False
        lo, hi = self.start, self.times[-1]
        return lo <= start < end <= hi and (start - lo) % step == timedelta(0)

    def _read(self, step: timedelta, gpu_metrics: Sequence[str] | None) -> FleetFrames | None:
        """The whole span, in parts of fewer than :data:`MAX_POINTS` points (VictoriaMetrics may
        move a longer range query onto its cache's grid); None when the source cannot (each
        window then asks)."""
        lo, hi = self.start, self.times[-1]
        part = (MAX_POINTS - 1) * step
        starts = [lo + i * part for i in range(-(-(hi - lo + step) // part))]
        try:
            parts = [
                self.source.fetch(a, min(a + part - step, hi), step, gpu_metrics=gpu_metrics)
                for a in starts
            ]
        except MetricsSourceError as exc:
            logger.warning("reading the scan's cycles at once failed, one at a time: %s", exc)
            return None
        if len(parts) == 1:
            return parts[0]
        return concat_fleet_frames(parts, lo, hi, step)


def _spaced(times: Sequence[datetime]) -> bool:
    """At least two times, each :data:`MIN_INTERVAL` or more after the one before."""
    return len(times) >= 2 and all(b - a >= MIN_INTERVAL for a, b in pairwise(times))


def _runs(times: Sequence[datetime]) -> list[list[datetime]]:
    """Sorted ``times`` cut into evenly spaced runs, oldest first, each as long as it goes: a
    scan's held-risk checkpoints (15 minutes apart), then its warm-up cycles (one interval)."""
    runs: list[list[datetime]] = []
    for t in times:
        run = runs[-1] if runs else None
        if run is not None and (len(run) == 1 or t - run[-1] == run[1] - run[0]):
            run.append(t)
        else:
            runs.append([t])
    return runs


def _cut(
    span: FleetFrames, metrics: frozenset[str], start: datetime, end: datetime, step: timedelta
) -> FleetFrames | None:
    """The rows of ``[start, end]`` (a range query's points: both ends included) of each frame;
    None when the window lacks a GPU metric the span has (``metrics``: the span's)."""
    lo, hi = pd.Timestamp(start), pd.Timestamp(end)

    def rows(df: pd.DataFrame) -> pd.DataFrame:
        if df.empty:
            return df
        ts = df["ts"]
        out = df[(ts >= lo) & (ts <= hi)]
        out.index = pd.RangeIndex(len(out))  # a new frame: renumbered in place, not copied again
        return out

    gpu = rows(span.gpu)
    if set(gpu["metric"].unique()) != metrics:
        return None
    return FleetFrames(
        gpu=gpu,
        node=rows(span.node),
        component=rows(span.component),
        up=rows(span.up),
        start=start,
        end=end,
        step=step,
    )
