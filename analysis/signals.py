"""Structural signals: what the shape of the data says, before any value is looked at.

A GPU that falls off the bus shows up as missing data, not as values. These are pure functions
over ``FleetFrames``: gaps inside a series, scrape targets reporting ``up == 0``, GPUs seen earlier
in the window that have stopped reporting, and expected GPUs never seen at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from analysis.types import FleetFrames, GpuRef

GAP_COLUMNS: tuple[str, ...] = ("node", "gpu", "metric", "missing_steps", "longest_gap_steps")
DOWN_COLUMNS: tuple[str, ...] = ("node", "job", "down_steps", "down_at_end")


@dataclass(frozen=True)
class Signals:
    """Structural signals of one window.

    ``gaps``: one row per GPU series with missing steps between its first and last sample
    (columns ``GAP_COLUMNS``). ``down``: one row per scrape target with ``up == 0`` at some step
    (``DOWN_COLUMNS``; ``down_at_end`` True when still down at the window's last step).
    ``vanished``: GPUs seen earlier in the window with no sample in the last ``vanish_steps``
    steps. ``vanished_nodes``: nodes all of whose GPUs vanished. ``missing``: expected GPUs
    never seen in the window.
    """

    gaps: pd.DataFrame
    down: pd.DataFrame
    vanished: tuple[GpuRef, ...]
    vanished_nodes: tuple[str, ...]
    missing: tuple[GpuRef, ...]
    last_seen: dict[GpuRef, pd.Timestamp]

    def gap_steps(self, ref: GpuRef) -> int:
        """Return the number of missing steps over all series of one GPU."""
        rows = self.gaps[(self.gaps["node"] == ref.node) & (self.gaps["gpu"] == ref.gpu)]
        return int(rows["missing_steps"].sum())

    @property
    def down_nodes(self) -> tuple[str, ...]:
        """Return the nodes with a scrape target still down at the end of the window."""
        if self.down.empty:
            return ()
        return tuple(sorted(set(self.down.loc[self.down["down_at_end"], "node"])))


def structural_signals(
    frames: FleetFrames,
    expected_gpus: Iterable[GpuRef] | None = None,
    *,
    vanish_steps: int = 3,
) -> Signals:
    """Compute gaps, down targets, vanished and missing GPUs from one window's frames.

    Parameters
    ----------
    frames:
        The window's tidy frames.
    expected_gpus:
        GPUs that should be reporting (e.g. from the previous cycle); those absent from the
        whole window are listed in ``missing``.
    vanish_steps:
        A GPU with no sample of any metric in the last ``vanish_steps`` steps of the window,
        but samples before, has vanished.

    Returns
    -------
    Signals
    """
    step = pd.Timedelta(frames.step)
    end = pd.Timestamp(frames.end)
    end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
    gpu = frames.gpu
    gaps = _gaps(gpu, step)
    last_seen: dict[GpuRef, pd.Timestamp] = {}
    vanished: list[GpuRef] = []
    if not gpu.empty:
        last = gpu.groupby(["node", "gpu"], sort=True)["ts"].max()
        cutoff = end - step * vanish_steps
        for (node, g), ts in last.items():
            ref = GpuRef(str(node), str(g))
            last_seen[ref] = ts
            if ts <= cutoff:
                vanished.append(ref)
    vanished_nodes = _vanished_nodes(last_seen, set(vanished))
    seen = set(last_seen)
    missing = tuple(sorted(set(expected_gpus or ()) - seen))
    return Signals(
        gaps=gaps,
        down=_down(frames.up, end, step),
        vanished=tuple(sorted(vanished)),
        vanished_nodes=vanished_nodes,
        missing=missing,
        last_seen=last_seen,
    )


def _gaps(gpu: pd.DataFrame, step: pd.Timedelta) -> pd.DataFrame:
    """Missing steps between consecutive samples of each (node, gpu, metric) series."""
    if gpu.empty:
        return pd.DataFrame({c: pd.Series([], dtype="object") for c in GAP_COLUMNS})
    df = gpu[["node", "gpu", "metric", "ts"]].sort_values(["node", "gpu", "metric", "ts"])
    delta = df.groupby(["node", "gpu", "metric"], sort=False)["ts"].diff()
    missing = ((delta / step).round() - 1).fillna(0).clip(lower=0).astype(int)
    df = df.assign(missing=missing.to_numpy())
    agg = df.groupby(["node", "gpu", "metric"], sort=True)["missing"].agg(["sum", "max"])
    agg = agg[agg["sum"] > 0].reset_index()
    agg.columns = list(GAP_COLUMNS)
    return agg.reset_index(drop=True)


def _down(up: pd.DataFrame, end: pd.Timestamp, step: pd.Timedelta) -> pd.DataFrame:
    """Targets with ``up == 0`` somewhere in the window, and whether they are down at its end."""
    if up.empty:
        return pd.DataFrame({c: pd.Series([], dtype="object") for c in DOWN_COLUMNS})
    rows = []
    for (node, job), grp in up.groupby(["node", "job"], sort=True):
        down_steps = int((grp["value"] == 0).sum())
        if not down_steps:
            continue
        last = grp.sort_values("ts").iloc[-1]
        at_end = bool(last["value"] == 0 and last["ts"] > end - step * 3)
        rows.append((str(node), str(job), down_steps, at_end))
    return pd.DataFrame(rows, columns=list(DOWN_COLUMNS))


def _vanished_nodes(
    last_seen: dict[GpuRef, pd.Timestamp], vanished: set[GpuRef]
) -> tuple[str, ...]:
    """Nodes every one of whose GPUs vanished."""
    by_node: dict[str, list[GpuRef]] = {}
    for ref in last_seen:
        by_node.setdefault(ref.node, []).append(ref)
    return tuple(
        sorted(n for n, refs in by_node.items() if refs and all(r in vanished for r in refs))
    )
