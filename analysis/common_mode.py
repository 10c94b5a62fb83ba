"""The fleet's common shift of a GPU's own-history features, taken out before they are judged.

A GPU's temperature at its power (``temp_at_power``, ``mem_temp_at_power``) and its trend are
judged against the GPU's own history: that is what sees a failing thermal interface on a GPU
that idles alone, with no peer at comparable load. But the hall warming by a few degrees (an
ambient change, a chiller's set point) moves that feature on every GPU at once, and an hour of
it raised several GPUs' risk to 0.6-0.67 on development fleet 103 (healthy), two of them for
long enough to page.
Its comparisons with peers (``temp_vs_node``, ``temp_vs_rack``, ``temp_vs_fleet``) did not
move: the cause is shared, not the GPU's.

So, per cycle, each such feature is taken relative to the fleet's lower quartile of it at that
cycle (:func:`remove_common_mode`), in the fit's rows and in each cycle's alike: the GPU's own
baseline then absorbs the quartile's usual level, and a shift the whole fleet shares drops out.
The spread it is judged with stays the one of its deviations as they were, the fleet's usual
swings included (``FeatureScorer.fit``): the shift's removal narrowed it by half, and a job
starting on an idle fleet's GPU (its temperature at power some degrees off its idle self) read
+10 sd and paged on development fleet 134.
The lower quartile, not the median: a shared component's fault (a rack's cooling unit, a PDU
feeding half the racks) that heats fewer than three quarters of the fleet's GPUs shows in full;
the component's own metrics and the comparisons between racks carry it beyond that. A fleet with fewer than
:data:`MIN_GPUS` GPUs reporting the feature keeps it as it is.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pandas as pd

__all__ = [
    "COMMON_MODE",
    "MIN_GPUS",
    "QUANTILE",
    "SHIFT_PREFIX",
    "common_shift",
    "remove_common_mode",
    "shift_of",
    "with_common_shift",
]

#: The features judged against the GPU's own history alone (no peer in them).
COMMON_MODE: tuple[str, ...] = ("temp_at_power", "mem_temp_at_power", "temp_at_power_slope")
#: The fleet's shift is read at this quantile of the GPUs' values at one cycle.
QUANTILE = 0.25
#: Fewest GPUs with a value at a cycle for its shift to be taken out.
MIN_GPUS = 8
#: An assessed cycle's table carries its shift in these columns (the same value on every row),
#: so rows taken from it are judged as they were within their whole cycle.
SHIFT_PREFIX = "fleet_shift."


def common_shift(x: pd.DataFrame, by: Hashable | None = None) -> pd.DataFrame:
    """Each row's fleet shift of each :data:`COMMON_MODE` column of ``x``: its cycle's
    :data:`QUANTILE` over the GPUs (0 where the cycle has fewer than :data:`MIN_GPUS` values).

    ``x``: one row per GPU (index: GPU key) for one cycle, or, with ``by`` (the name of the
    index level that holds each row's cycle, e.g. ``"at"``), the rows of many cycles, each
    cycle's shift its own. Columns: the :data:`COMMON_MODE` columns ``x`` has.
    """
    cols = [c for c in COMMON_MODE if c in x.columns]
    part = x[cols].astype(float)
    if by is None:
        shift = part.quantile(QUANTILE).where(part.count() >= MIN_GPUS, 0.0).fillna(0.0)
        return pd.DataFrame(
            np.broadcast_to(shift.to_numpy(), part.shape), index=x.index, columns=cols
        )
    groups = part.groupby(level=by, sort=False)
    per = groups.quantile(QUANTILE).where(groups.count() >= MIN_GPUS, 0.0).fillna(0.0)
    return pd.DataFrame(
        per.reindex(x.index.get_level_values(by)).to_numpy(), index=x.index, columns=cols
    )


def with_common_shift(x: pd.DataFrame, by: Hashable | None = None) -> pd.DataFrame:
    """``x`` with its :func:`common_shift` in :data:`SHIFT_PREFIX` columns (a copy)."""
    shift = common_shift(x, by)
    out = x.copy()
    for c in shift.columns:
        out[SHIFT_PREFIX + c] = shift[c].to_numpy()
    return out


def shift_of(x: pd.DataFrame) -> pd.DataFrame:
    """The fleet shift of ``x``'s rows: the one they carry (:func:`with_common_shift`: rows of an
    assessed cycle, any subset of them), else computed from ``x`` as one whole cycle."""
    cols = [c for c in COMMON_MODE if c in x.columns]
    stored = [SHIFT_PREFIX + c for c in cols]
    if cols and all(s in x.columns for s in stored):
        return x[stored].set_axis(cols, axis=1).astype(float)
    return common_shift(x)


def remove_common_mode(
    x: pd.DataFrame, by: Hashable | None = None, shift: pd.DataFrame | None = None
) -> pd.DataFrame:
    """``x`` with each :data:`COMMON_MODE` column minus its fleet shift (:func:`common_shift`,
    or ``shift`` when given). Returns a copy when there is one to take out, else ``x``."""
    if shift is None:
        shift = common_shift(x, by)
    cols = [c for c in COMMON_MODE if c in x.columns and c in shift.columns]
    if not cols or x.empty:
        return x
    out = x.copy()
    out[cols] = x[cols].astype(float) - shift[cols].to_numpy()
    return out
