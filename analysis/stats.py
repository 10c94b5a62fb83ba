"""Per-GPU statistics over tidy series: NaN-aware least-squares slopes, Anscombe counts, the MAD's
normal scale. Pure."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

#: Median absolute deviation -> standard deviation of a normal distribution (the MAD's
#: normal-consistent scale), used wherever a robust spread stands in for one.
MAD_TO_SD = 1.4826
#: The central 99 % range of a normal distribution in standard deviations (2 x 2.575).
CENTRAL_99_TO_SD = 5.15
#: A GPU's own spread is the 90th percentile of its absolute deviations over this (the 90th
#: percentile of a normal's absolute value, in standard deviations).
OWN_QUANTILE, OWN_Q_TO_SD = 0.9, 1.645


def robust_spread(values: pd.DataFrame, center: pd.Series | float = 0.0) -> pd.Series:
    """Each column's spread: the larger of its MAD about ``center`` and its central 99 % range,
    both in standard deviations of a normal. The range keeps a multi-modal feature (jobs start
    and stop) from looking wild: a feature that is noisy in healthy history counts for less."""
    mad = (values - center).abs().median() * MAD_TO_SD
    wide = (values.quantile(0.995) - values.quantile(0.005)) / CENTRAL_99_TO_SD
    return np.maximum(mad, wide)


def own_spread(abs_dev: pd.DataFrame, by: object) -> pd.DataFrame:
    """Each group's (``by``: a ``groupby`` key) own spread of its absolute deviations: their
    90th percentile in standard deviations of a normal."""
    return abs_dev.groupby(by).quantile(OWN_QUANTILE) / OWN_Q_TO_SD


def group_slope(
    values: pd.DataFrame,
    t: np.ndarray,
    keys: pd.Index,
    index: pd.Index,
    regime: npt.ArrayLike | None = None,
) -> pd.DataFrame:
    """Least-squares slope (per minute) of every column against ``t``, per GPU, NaN-aware.

    ``regime``: an optional label per row (busy or idle, say). The slope is then pooled within
    each GPU's regimes (regime fixed effects), so a level that differs between a GPU's busy and
    idle samples is not read as a trend when a job starts or ends inside the window; a trend
    within the regimes still is.
    """
    # the keys (and regimes) as integer codes, hashed once: a group holds the same rows in the
    # same order as grouped by the labels, so its means are the same numbers
    gpu, labels = pd.factorize(keys, use_na_sentinel=False)
    groups = gpu
    if regime is not None:
        within, kinds = pd.factorize(np.asarray(regime))
        groups = gpu * max(len(kinds), 1) + within
    # column by column (a frame of one column: the same grouped means, so the same bits as all
    # columns at once): each temporary is a number per row, millions in a fit's window
    slopes = []
    for column in values.columns:
        v = values[[column]]
        tt = pd.DataFrame(np.where(v.notna(), t[:, None], np.nan), index=v.index, columns=[column])
        dt = tt - tt.groupby(groups, sort=False).transform("mean")
        del tt
        dv = v - v.groupby(groups, sort=False).transform("mean")
        cov = (dt * dv).groupby(gpu, sort=False).mean()
        del dv
        var_t = (dt * dt).groupby(gpu, sort=False).mean()
        slopes.append(cov / var_t.where(var_t > 1e-9))
    slope = pd.concat(slopes, axis=1) if slopes else pd.DataFrame(columns=values.columns)
    slope.index = labels[slope.index.to_numpy()]
    return slope.reindex(index)


def anscombe(counts: pd.Series | npt.NDArray[np.float64] | float) -> pd.Series:
    """Return ``2 sqrt(count + 3/8)``: Poisson counts on a scale where their spread is about 1.

    A counter's log rate squeezes a climb from a few events to thousands into a few units, so a
    healthy wiggle of two or three events looks as big as a failing link; on this scale a healthy
    Poisson counter moves by about one unit whatever its usual rate, and a climb stands out.
    """
    return pd.Series(2.0 * np.sqrt(np.clip(counts, 0.0, None) + 0.375))
