"""A cycle's raw window read once, then only its new minutes: the running bot's rolling read.

Every cycle reads the peer metrics raw over its whole window and thermal lead-in (42 minutes at
the defaults), and the next cycle, a scan interval later, reads 41 of those minutes again. At
100,000 GPUs that re-read is most of a cycle's raw samples. :class:`RollingWindow` keeps the
last window a pipeline read and asks the source only for the part from :data:`REREAD` before
its end on; the rows before that come from the window kept. The result is the frame a full read
returns (tested against Prometheus and VictoriaMetrics, ``tests/test_rolling_reads.py``):

- a range query's point at ``t`` is the last sample at or before ``t`` within the lookback, and
  does not depend on the query's other points, so the kept rows are those a new query would
  return, as long as both windows sit on the same step grid (a window that does not, a new
  step, other metrics, or a window that does not overlap the kept one is read whole);
- samples can still arrive for times just before a query (a slow scrape is appended when it
  ends; remote write and a TSDB's ``-search.latencyOffset`` hold recent points back for
  seconds to minutes): the last :data:`REREAD` of the kept window is read again, not kept;
- the parts are joined as a TSDB source joins its own answers (``concat_fleet_frames``: sorted by
  labels, then time), so the rows come in the order of a full read. Only a source that says so
  (``rolling_reads``: ``PrometheusSource``) is read this way; an in-memory one (the simulator,
  a replay's cached chunks) has no transfer to save and orders its rows its own way.

A cycle's reader asks for its frames split at the window's start (``lead_until``: the GPU rows
before it as the frames' ``lead``, :func:`analysis.frames.split_lead`), and the split frames are
what is kept, with the node, component and ``up`` rows before the split beside them: the cycle
and the next read share those frames, instead of the split copies living beside a whole window
(at 100,000 GPUs each is most of a gigabyte).

A partial read that fails (or that the source refuses as empty: the last minutes without DCGM
data) drops what was kept and reads the whole window, so a cycle sees exactly what it saw
before, error or not. The window's reader (``Pipeline.read_window``) and a fit's spans of cycle
windows (``bot.fit.SpanReads``) go through it; an incident's evidence and a one-shot scan (whose
``SpanSource`` cuts its windows from one read already) read as before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import pandas as pd

from analysis.frames import split_lead, to_utc
from analysis.types import FleetFrames
from storage.promql_frames import concat_fleet_frames
from storage.source import MetricsSource, MetricsSourceError

__all__ = ["REREAD", "RollingWindow"]

logger = logging.getLogger(__name__)

#: What a kept window was read for: the source (its id), the step and the GPU metrics.
_Key = tuple[int, timedelta, tuple[str, ...] | None]


@dataclass(frozen=True)
class _Kept:
    """The last window read (``[start, end]``), as parts whose rows together are its frames."""

    key: _Key
    start: datetime
    end: datetime
    parts: tuple[FleetFrames, ...]


#: How much of the kept window's end is read again: points a TSDB may still have filled in since
#: (VictoriaMetrics holds back its last 30 s by default, a remote-write pipeline a little more).
REREAD = timedelta(minutes=5)


@dataclass
class RollingWindow:
    """The last raw window read, and the reads that extend it to the next one.

    For sources whose frames come sorted by labels, then time (``concat_frames``; a source
    says so with ``rolling_reads``). ``reread``: how much of the kept window's end is read
    again (:data:`REREAD`).
    """

    reread: timedelta = REREAD
    _kept: _Kept | None = field(default=None, init=False, repr=False)
    """The last window read, with what it was read for: swapped whole, so two threads reading
    at once each get their own window right (one of them reads it whole)."""

    def fetch(
        self,
        source: MetricsSource,
        start: datetime,
        end: datetime,
        step: timedelta,
        *,
        gpu_metrics: Sequence[str] | None = None,
        lead_until: datetime | None = None,
    ) -> FleetFrames:
        """The whole fleet's frames for ``[start, end]`` at ``step``: what
        ``source.fetch(start, end, step, gpu_metrics=gpu_metrics)`` returns, read in part when
        the window kept from the last call covers its beginning on the same grid.

        ``lead_until``: return them as ``split_lead(frames, lead_until)`` does (the frames from
        ``lead_until`` on, the GPU rows before it their ``lead``), and keep those."""
        key: _Key = (id(source), step, None if gpu_metrics is None else tuple(gpu_metrics))
        last, self._kept = self._kept, None  # dropped whatever happens below
        kept = last if last is not None and last.key == key else None
        lo = self._resume_at(kept, start, end, step)
        frames = None
        if kept is not None and lo is not None:
            try:
                fresh = source.fetch(lo, end, step, gpu_metrics=gpu_metrics)
            except MetricsSourceError as exc:
                logger.debug("the window's new part could not be read (%s): reading it whole", exc)
            else:
                before = [_before(part, start, lo) for part in kept.parts]
                del kept, last  # its rows before the new part are copied: let it go first
                frames = concat_fleet_frames([*before, fresh], start, fresh.end, step)
                del before
        if frames is None:
            frames = source.fetch(start, end, step, gpu_metrics=gpu_metrics)
        if lead_until is None or to_utc(frames.start) >= to_utc(lead_until):
            self._kept = _Kept(key, frames.start, frames.end, (frames,))
            return frames
        split = split_lead(frames, lead_until)
        assert split.lead is not None  # split_lead splits a window that starts before it
        pre = _before(frames, frames.start, lead_until, gpu=split.lead)
        first = frames.start
        del frames  # the split frames and the rows before them are the window now
        self._kept = _Kept(key, first, split.end, (pre, split))  # in time order: joined by runs
        return split

    def forget(self) -> None:
        """Let the kept window go (its reader is done: the next read is whole)."""
        self._kept = None

    def _resume_at(
        self,
        kept: _Kept | None,
        start: datetime,
        end: datetime,
        step: timedelta,
    ) -> datetime | None:
        """Where the new part of ``[start, end]`` begins: the first point of its grid from
        ``reread`` before the kept window's end on; None when it must be read whole (nothing
        kept, another grid, a window that starts before the kept one or ends before its end)."""
        if kept is None or step <= timedelta(0):
            return None
        first, last = to_utc(kept.start), to_utc(kept.end)
        begin, stop = to_utc(start), to_utc(end)
        if begin < first or stop < last or (begin - first) % step != timedelta(0):
            return None
        cut = last - self.reread
        lo = begin + max(0, -(-(cut - begin) // step)) * step  # the grid's first point >= cut
        if lo <= begin or lo > stop:
            return None
        return lo.to_pydatetime()


def _before(
    kept: FleetFrames, start: datetime, lo: datetime, *, gpu: pd.DataFrame | None = None
) -> FleetFrames:
    """The rows of ``[start, lo)`` of a kept part (each frame; not its ``lead``, which is kept
    as a part of its own), as the window from ``start``; ``gpu``: those GPU rows, already cut."""
    first, cut = to_utc(start), to_utc(lo)

    def rows(df: pd.DataFrame) -> pd.DataFrame:
        if df.empty:
            return df
        ts = df["ts"]
        return df[((ts >= first) & (ts < cut)).to_numpy()]

    return replace(
        kept,
        gpu=rows(kept.gpu) if gpu is None else gpu,
        node=rows(kept.node),
        component=rows(kept.component),
        up=rows(kept.up),
        start=start,
    )
