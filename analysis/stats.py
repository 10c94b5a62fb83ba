"""Per-GPU statistics over tidy series: NaN-aware least-squares slopes and Anscombe counts. Pure."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd


def group_slope(
    values: pd.DataFrame, t: np.ndarray, keys: pd.Index, index: pd.Index
) -> pd.DataFrame:
    """Least-squares slope (per minute) of every column against ``t``, per GPU, NaN-aware."""
    valid = values.notna()
    tt = pd.DataFrame(
        np.where(valid, t[:, None], np.nan), index=values.index, columns=values.columns
    )
    grp_t = tt.groupby(keys, sort=False)
    mean_t = grp_t.mean()
    mean_v = values.groupby(keys, sort=False).mean()
    mean_tv = (tt * values).groupby(keys, sort=False).mean()
    mean_tt = (tt * tt).groupby(keys, sort=False).mean()
    var_t = mean_tt - mean_t * mean_t
    slope = (mean_tv - mean_t * mean_v) / var_t.where(var_t > 1e-9)
    return slope.reindex(index)


def anscombe(counts: pd.Series | npt.NDArray[np.float64] | float) -> pd.Series:
    """Return ``2 sqrt(count + 3/8)``: Poisson counts on a scale where their spread is about 1.

    A counter's log rate squeezes a climb from a few events to thousands into a few units, so a
    healthy wiggle of two or three events looks as big as a failing link; on this scale a healthy
    Poisson counter moves by about one unit whatever its usual rate, and a climb stands out.
    """
    return pd.Series(2.0 * np.sqrt(np.clip(counts, 0.0, None) + 0.375))
