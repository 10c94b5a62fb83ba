"""Window utilities on the tidy fleet frames: UTC timestamps, sorting and slicing by time. Pure."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import datetime

import numpy as np
import pandas as pd

from analysis.types import FleetFrames


def to_utc(ts: datetime | pd.Timestamp) -> pd.Timestamp:
    """Return an aware UTC pandas timestamp."""
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def slice_frame(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Return the rows with ``start < ts <= end`` (works on any tidy frame with a ts column);
    ``frame`` itself when that is every row (a cycle's window cut to itself: no copy)."""
    if frame.empty:
        return frame
    ts = frame["ts"]
    if ts.is_monotonic_increasing:
        lo = int(ts.searchsorted(start, side="right"))
        hi = int(ts.searchsorted(end, side="right"))
        return frame.iloc[lo:hi]
    return _rows(frame, ((ts > start) & (ts <= end)).to_numpy())


def _rows(frame: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """``frame[keep]``; ``frame`` itself when that is every row (no copy of a whole window)."""
    return frame if keep.all() else frame[keep]


def sort_by_time(df: pd.DataFrame) -> pd.DataFrame:
    """One tidy frame sorted by ts (stable) and numbered anew; ``df`` itself when it is sorted.

    ``ignore_index``: the sorted rows are numbered as they are taken. Sorting and then
    ``reset_index(drop=True)`` copied the sorted frame once more: at 100,000 GPUs a fit's span
    is 13 million rows, and that copy was half of each span's sort."""
    if df.empty or df["ts"].is_monotonic_increasing:
        return df
    return df.sort_values("ts", kind="stable", ignore_index=True)


def sort_frames(frames: FleetFrames) -> FleetFrames:
    """Return frames whose tidy tables are sorted by time, so windows slice by binary search."""
    return FleetFrames(
        gpu=sort_by_time(frames.gpu),
        node=sort_by_time(frames.node),
        component=sort_by_time(frames.component),
        up=sort_by_time(frames.up),
        start=frames.start,
        end=frames.end,
        step=frames.step,
        lead=None if frames.lead is None else sort_by_time(frames.lead),
        fit_reduced=frames.fit_reduced,
    )


def frames_from(frames: FleetFrames, start: datetime) -> FleetFrames:
    """``frames`` without their rows before ``start`` (kept: ``start`` itself, as a range query
    from ``start`` returns it); the rest of ``frames`` as it is."""
    lo = to_utc(start)

    def cut(df: pd.DataFrame) -> pd.DataFrame:
        return df if df.empty else _rows(df, (df["ts"] >= lo).to_numpy())

    return replace(
        frames,
        gpu=cut(frames.gpu),
        node=cut(frames.node),
        component=cut(frames.component),
        up=cut(frames.up),
        start=start,
    )


def split_lead(
    fetched: FleetFrames, start: datetime, metrics: Collection[str] | None = None
) -> FleetFrames:
    """Frames read from before ``start`` as a window from ``start`` on (:func:`frames_from`),
    their GPU rows before it (of ``metrics`` only; None: all) kept as the ``lead`` (the samples
    the thermal lag of the first rows reads). Frames that start at ``start`` or later: as they are."""
    lo = to_utc(start)
    if to_utc(fetched.start) >= lo:
        return fetched
    before = (fetched.gpu["ts"] < lo).to_numpy()
    if metrics is not None:
        before &= fetched.gpu["metric"].isin(list(metrics)).to_numpy()
    return replace(frames_from(fetched, start), lead=fetched.gpu[before])


def join_lead(frames: FleetFrames) -> FleetFrames:
    """``frames`` whose ``gpu`` frame starts with their ``lead`` (the samples before them)."""
    if frames.lead is None or frames.lead.empty:
        return frames
    return replace(frames, gpu=pd.concat([frames.lead, frames.gpu], ignore_index=True), lead=None)


def slice_frames(frames: FleetFrames, start: datetime, end: datetime) -> FleetFrames:
    """Return the frames restricted to ``start < ts <= end`` (start and end set to match)."""
    lo, hi = to_utc(start), to_utc(end)
    return FleetFrames(
        gpu=slice_frame(frames.gpu, lo, hi),
        node=slice_frame(frames.node, lo, hi),
        component=slice_frame(frames.component, lo, hi),
        up=slice_frame(frames.up, lo, hi),
        start=lo.to_pydatetime(),
        end=hi.to_pydatetime(),
        step=frames.step,
    )


def with_gpu_of(frames: FleetFrames, gpu: pd.DataFrame, nodes: Collection[str]) -> FleetFrames:
    """Return ``frames`` whose GPU rows of ``nodes`` are replaced by ``gpu`` (those nodes' rows)."""
    keep = frames.gpu[~frames.gpu["node"].isin(list(nodes))]
    parts = [p for p in (keep, gpu) if not p.empty]
    merged = pd.concat(parts, ignore_index=True) if len(parts) > 1 else (parts or [keep])[0]
    return replace(frames, gpu=merged)
