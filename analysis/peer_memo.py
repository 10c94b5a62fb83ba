"""The last cycle's peer rows, kept for the samples the next cycle shares with it. Pure.

A running bot's cycles are a minute apart and their windows 30 minutes long (with the thermal
lag's lead-in before them): each cycle compares, at each timestamp, every GPU with its peers
(:func:`analysis.context.peer_rows`), and all but the newest timestamps were compared the cycle
before, on the same samples. At 100,000 GPUs those comparisons were 9 of a cycle's 66 seconds.

:class:`PeerRowsMemo` keeps the last cycle's pivot of the peer metrics and its rows, and compares
the data, not the times: the rows of a timestamp are taken again only when every sample the
new pivot holds up to that timestamp is the same, bit for bit, as the last pivot's (same GPUs,
same timestamps, same values), and the thermal lag's lead-in before it is in both. Everything
else (a late sample re-read, a GPU that appeared, a new fit's degrees per watt, another graph)
is computed again. A row depends only on the samples of its own timestamp and the lag's span
before it, so the rows it gives are the bits a whole computation gives (a test compares them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.thermal import LEAD_IN

#: ``compute(wide, after)``: :func:`analysis.context.peer_rows` of ``wide``'s rows after ``after``.
Compute = Callable[[pd.DataFrame, pd.Timestamp], pd.DataFrame]


@dataclass
class _Kept:
    """One call's pivot and rows, and what else its rows depend on."""

    graph: object
    context: tuple[Any, ...]
    wide: pd.DataFrame
    ts: np.ndarray  # each row's timestamp (ns) of ``wide``
    after: pd.Timestamp
    rows: np.ndarray  # the rows of ``wide`` after ``after``, in ``wide``'s order
    columns: pd.Index


@dataclass
class PeerRowsMemo:
    """Peer rows of successive windows, computed for their new timestamps only.

    ``reused`` and ``computed`` count rows (what the last calls took again and worked out).
    One memo per sequence of cycles (a pipeline's scorer); it holds one pivot and its rows.
    """

    reused: int = 0
    computed: int = 0
    _kept: _Kept | None = field(default=None, repr=False)

    def rows(
        self,
        wide: pd.DataFrame,
        after: pd.Timestamp,
        compute: Compute,
        *,
        graph: object,
        temp_per_watt: Mapping[str, float],
    ) -> pd.DataFrame:
        """``compute(wide, after)``: the peer rows of ``wide``'s rows after ``after``, those of
        the timestamps the last call had on the same samples taken from it.

        ``graph`` and ``temp_per_watt`` are what the rows depend on besides the samples (the
        peers' placement and the degrees per watt): another graph object (a pipeline keeps one
        per fleet) or other degrees per watt compute everything again. ``wide``:
        ``gpu_wide(PEER_METRICS)``, sorted by (key, ts), holding the lag's lead-in
        (:data:`analysis.thermal.LEAD_IN`) before ``after`` (else nothing is taken again).
        """
        context = tuple(sorted(temp_per_watt.items()))
        ts = _ts_of(wide)
        later = ts > after.value
        kept = self._kept if self._kept is not None and self._kept.graph is graph else None
        start = _first_changed(kept, context, wide, ts, after)
        out = None
        if start is not None:
            out = self._joined(wide, ts, later, after, start=start, compute=compute)
        if out is None:
            out = compute(wide, after)
            self.computed += len(out)
        # the rows are shared with the caller (neither modifies them in place)
        rows = out.to_numpy(dtype=np.float64)
        self._kept = _Kept(graph, context, wide, ts, after, rows, out.columns)
        return out

    def _joined(
        self,
        wide: pd.DataFrame,
        ts: np.ndarray,
        later: np.ndarray,
        after: pd.Timestamp,
        *,
        start: int,
        compute: Compute,
    ) -> pd.DataFrame | None:
        """Rows before ``start`` (ns) taken from the kept call, the rest computed from the lag's
        lead-in before ``start`` on; None (compute them all) when the counts do not match."""
        kept = self._kept
        assert kept is not None
        window_ts = ts[later]
        kept_ts = kept.ts[kept.ts > kept.after.value]  # the kept rows' timestamps, in order
        taken = kept.rows[(kept_ts > after.value) & (kept_ts < start)]
        again = window_ts < start
        if start <= after.value or len(taken) != int(again.sum()):
            return None
        columns, fresh = kept.columns, np.empty((0, len(kept.columns)))
        if not again.all():
            lead = ts >= start - int(LEAD_IN.total_seconds() * 1e9)
            part = compute(wide[lead], pd.Timestamp(start - 1, tz="UTC"))
            columns, fresh = part.columns, part.to_numpy(dtype=np.float64)
        if not columns.equals(kept.columns) or len(fresh) != int((~again).sum()):
            return None
        rows = np.empty((len(window_ts), len(columns)))
        rows[again], rows[~again] = taken, fresh
        self.reused += len(taken)
        self.computed += len(fresh)
        return pd.DataFrame(rows, index=wide.index[later], columns=columns)


def _ts_of(wide: pd.DataFrame) -> np.ndarray:
    """Each row's timestamp (ns since the epoch) of a (key, ts) pivot."""
    level = wide.index.names.index("ts")
    stamps = pd.DatetimeIndex(wide.index.levels[level])
    return np.asarray(stamps.asi8)[np.asarray(wide.index.codes[level])]


def _first_changed(
    kept: _Kept | None,
    context: tuple[Any, ...],
    wide: pd.DataFrame,
    ts: np.ndarray,
    after: pd.Timestamp,
) -> int | None:
    """The first timestamp (ns) whose rows must be computed: the earliest where ``wide``'s
    samples differ from the kept pivot's, or which it does not hold; None: all of them (no
    call kept, another context, other GPUs, a window that starts before the kept one's)."""
    if kept is None or kept.context != context or after < kept.after:
        return None
    if not wide.columns.equals(kept.wide.columns):
        return None
    key = wide.index.names.index("key")
    if not wide.index.levels[key].equals(kept.wide.index.levels[key]):
        return None
    old_ts = kept.ts
    if not len(ts) or not len(old_ts) or ts.min() < old_ts.min():
        return None
    # the lag of a row reads the samples of LEAD_IN before it: a kept row read a sample this
    # pivot does not hold (before its first timestamp) unless its lead-in starts after that
    dropped = old_ts[old_ts < ts.min()]
    wanted = ts[ts > after.value]
    lead_in = int(LEAD_IN.total_seconds() * 1e9)
    if len(dropped) and len(wanted) and wanted.min() - lead_in < dropped.max():
        return None
    shared_new = ts <= old_ts.max()
    shared_old = old_ts >= ts.min()
    if int(shared_new.sum()) != int(shared_old.sum()):
        return None
    new_codes = np.asarray(wide.index.codes[key])[shared_new]
    old_codes = np.asarray(kept.wide.index.codes[key])[shared_old]
    if not (
        np.array_equal(new_codes, old_codes) and np.array_equal(ts[shared_new], old_ts[shared_old])
    ):
        return None
    a = wide.to_numpy(dtype=np.float64)[shared_new].view(np.int64)
    b = kept.wide.to_numpy(dtype=np.float64)[shared_old].view(np.int64)
    differs = (a != b).any(axis=1)
    later = ts[~shared_new]
    first_new = int(later.min()) if len(later) else int(np.iinfo(np.int64).max)
    if differs.any():
        return min(int(ts[shared_new][differs].min()), first_new)
    return first_new
