"""How many degrees a GPU runs hotter per watt, learnt once per fit. Pure.

The peer context compares temperature *at equal power*: ``temp - k * power``. ``k`` used to be
estimated in every window from the whole fleet's (power, temperature) pairs, which mixes GPU
models (an air-cooled 350-W card idles hotter than a 700-W module) and therefore moves with the
fleet's workload mix: on a fleet of three models, the estimate drifted by 0.03 K/W within an hour
as jobs came and went, and an idle GPU at 84 W steady at 32 °C read 2.7 °C "hotter at its power"
than its own median, about 10 of its own standard deviations (four false pages in a night on
development fleet 139).

A cooler's thermal resistance is a property of the hardware, not of the window: here it is the
pooled *within-GPU* slope of temperature on power over the fit's history, per GPU model (each
GPU's own mean removed, so differences between GPUs and between models do not enter), and it
stays fixed until the next fit.

Temperature also *lags* power: a die and its heat sink warm with a time constant of a minute or
two (:func:`fit_thermal_lag`). Compared at the instantaneous power, GPUs whose job has just
started draw full power at an idle temperature for a few minutes and read several degrees
"cooler at their power" than they are; a GPU that has been busy for hours reads as hot against
them (development fleet 109: a node paged at +9 sd while 32 GPUs of four other nodes started a
job). So temperature is compared at the power the GPU has *been* drawing: its power through the
same first-order lag (:func:`lagged_power`), with the time constant the fit learnt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from analysis.feature_plan import POWER, TEMP
from analysis.types import FleetFrames

__all__ = [
    "FLEET",
    "LAG",
    "LEAD_IN",
    "fit_temp_per_watt",
    "fit_thermal_lag",
    "lag_nodes",
    "lag_of",
    "lagged_power",
    "lead_in",
    "slope_times",
    "temp_per_watt_of",
]

#: The key of the slope pooled over every model (for a GPU whose model had too little swing).
FLEET = ""
#: A model's slope is learnt only from this many GPUs whose power swung by at least
#: ``MIN_SWING_WATTS`` in the history (a fleet that never changed load says nothing about it).
MIN_SWING_GPUS = 2
MIN_SWING_WATTS = 100.0
#: Most timestamps a fit reads for the slope (evenly spaced): a slope needs no 24 h at 15 s.
MAX_TIMESTAMPS = 288
#: The key under which the learnt thermal lag (seconds) travels with the degrees per watt (no GPU
#: model is named so): one mapping of the fit's thermal constants, stored with the model.
LAG = "~lag_s"
#: Time constants (s) the fit chooses the lag from; 0 = temperature follows power at once.
LAG_CANDIDATES: tuple[float, ...] = (0.0, 30.0, 60.0, 90.0, 120.0, 180.0)
#: The lag's weights are cut after this many time constants (e^-4: under 2 % of the weight).
LAG_SPAN = 4.0
#: The samples before a window its lagged power needs: a cycle reads its peer metrics this much
#: earlier (``FleetFrames.lead``), so a window's rows equal the same rows cut from a fit's history.
LEAD_IN = timedelta(seconds=LAG_SPAN * max(LAG_CANDIDATES))
#: The lag is chosen on the fit window of at most this many nodes (evenly spaced over their
#: names): it needs consecutive samples around the jobs' starts and ends, which may be few.
LAG_NODES = 32


def fit_temp_per_watt(
    frames: FleetFrames,
    model_of_node: Mapping[str, str],
    *,
    since: datetime | None = None,
    temp: str = TEMP,
    power: str = POWER,
) -> dict[str, float]:
    """Return the within-GPU slope of ``temp`` on ``power`` per GPU model, clipped to [0, 1].

    Parameters
    ----------
    frames : FleetFrames
        The fit's history (its ``gpu`` frame is read: at most :data:`MAX_TIMESTAMPS` of its
        timestamps after ``since``, evenly spaced).
    model_of_node : Mapping[str, str]
        Node -> GPU model (a node without one: its GPUs enter the fleet's slope only).
    since : datetime | None
        Read only samples after this (the fit window's start); None: all of them.
    temp, power : str
        The metric names.

    Returns
    -------
    dict[str, float]
        Model name -> K per W for each model with enough swing, and :data:`FLEET` -> the slope
        pooled over every GPU when the fleet has enough swing, else the slope across its GPUs
        (all samples, each GPU's mean kept); empty without samples.
    """
    g = _samples(frames.gpu, (temp, power), since)
    if g.empty:
        return {}
    picks = slope_times(frames.start, frames.end, frames.step, since)
    on_grid = g["ts"].isin(pd.DatetimeIndex(picks)).to_numpy() if picks else None
    if on_grid is not None and on_grid.any():
        g = g[on_grid]
    else:  # samples off the history's grid (hand-made frames): the same stride over their own
        stamps = pd.Index(g["ts"].unique()).sort_values()
        g = g[g["ts"].isin(stamps[::-1][:: _stride(len(stamps))]).to_numpy()]
    wide = replace(frames, gpu=g).gpu_wide([temp, power])
    rows = wide.dropna()
    if rows.empty:
        return {}
    keys = rows.index.get_level_values("key")
    p = rows[power].to_numpy(dtype=np.float64)
    t = rows[temp].to_numpy(dtype=np.float64)
    by_key = pd.DataFrame({"p": p, "t": t, "key": keys}).groupby("key", sort=False)
    dp = p - by_key["p"].transform("mean").to_numpy()
    dt = t - by_key["t"].transform("mean").to_numpy()
    swing = (by_key["p"].max() - by_key["p"].min()) >= MIN_SWING_WATTS
    swung = swing.reindex(keys).to_numpy(dtype=bool)
    nodes = pd.Series(keys, dtype=object).str.rpartition("/")[0]
    model = nodes.map(dict(model_of_node)).fillna(FLEET).astype(str).to_numpy()
    out: dict[str, float] = {}
    for name in [*sorted(set(model) - {FLEET}), FLEET]:
        mine = np.ones(len(model), dtype=bool) if name == FLEET else model == name
        if len(set(keys[mine & swung])) < MIN_SWING_GPUS:
            continue
        var = float(np.sum(dp[mine] ** 2))
        if var > 0.0:
            out[name] = float(np.clip(np.sum(dp[mine] * dt[mine]) / var, 0.0, 1.0))
    if FLEET not in out and float(np.var(p)) > 1e-9:
        # No GPU changed load enough: the slope across the fleet's GPUs (what each window used
        # to estimate), but over the whole history, so it holds still until the next fit.
        out[FLEET] = float(np.clip(np.cov(p, t, bias=True)[0, 1] / float(np.var(p)), 0.0, 1.0))
    return out


def slope_times(
    start: datetime, end: datetime, step: timedelta, since: datetime | None = None
) -> list[datetime]:
    """The timestamps :func:`fit_temp_per_watt` reads: points of the history's sample grid
    (``start + j * step``, as a range query returns them) after ``since`` (None: from ``start``),
    every k-th back from the last at or before ``end``, with the smallest k that leaves at most
    :data:`MAX_TIMESTAMPS`. Regular, so a TSDB serves them with one range query at ``k * step``
    (``bot.fit.read_history``); oldest first; empty when ``step`` is not positive."""
    if step <= timedelta(0) or end < start:
        return []
    last = (end - start) // step
    first = 0 if since is None or since < start else (since - start) // step + 1
    if first > last:
        return []
    k = _stride(last - first + 1)
    return [start + j * step for j in range(last, first - 1, -k)][::-1]


def _stride(points: int) -> int:
    """The smallest k for which every k-th of ``points`` timestamps is at most MAX_TIMESTAMPS."""
    return max(1, -(-points // MAX_TIMESTAMPS))


def _samples(gpu: pd.DataFrame, metrics: tuple[str, str], since: datetime | None) -> pd.DataFrame:
    """The tidy GPU rows of ``metrics`` after ``since`` (None: all of them)."""
    if gpu.empty:
        return gpu
    pick = gpu["metric"].isin(list(metrics)).to_numpy()
    if since is not None:
        pick &= (gpu["ts"] > pd.Timestamp(since)).to_numpy()
    return gpu[pick]


def temp_per_watt_of(learnt: Mapping[str, float], models: pd.Series, fallback: float) -> np.ndarray:
    """Each row's slope: its model's, else the fleet's, else ``fallback`` (window's estimate)."""
    fleet = learnt.get(FLEET, fallback)
    codes, names = pd.factorize(models.fillna(FLEET).astype(str), sort=False)
    per_name = np.array([learnt.get(str(m), fleet) for m in names] + [fleet], dtype=np.float64)
    return per_name[codes]  # a code of -1 (none here: NaN was filled) would take the fleet's


def lead_in(step: timedelta) -> timedelta:
    """:data:`LEAD_IN` rounded up to whole ``step``: a read from that much earlier keeps the
    window's sample grid (a range query's points are its start plus whole steps)."""
    if step <= timedelta(0):
        return LEAD_IN
    return -(-LEAD_IN // step) * step


def lag_of(thermal: Mapping[str, float] | None) -> float:
    """The thermal lag (s) in a fit's thermal constants (0 when none was learnt)."""
    return float((thermal or {}).get(LAG, 0.0))


def lagged_power(
    power: np.ndarray, code: np.ndarray, ts_ns: np.ndarray, tau_s: float
) -> np.ndarray:
    """Each row's power through a first-order lag of time constant ``tau_s``.

    Rows sorted by ``code`` (the GPU) then ``ts_ns`` (ns). Each row is the mean of its GPU's
    samples of the last ``LAG_SPAN * tau_s`` seconds, weighted by ``exp(-age / tau_s)``: a
    sampled first-order lag, cut where its weights are negligible, so a row depends only on the
    samples of that span (a window with :data:`LEAD_IN` before it gives the same bits as a whole
    history). Missing samples are skipped; a row without power stays NaN. ``tau_s`` 0: ``power``.
    """
    p = np.asarray(power, dtype=np.float64)
    if tau_s <= 0 or len(p) == 0:
        return p
    code, ts_ns = np.asarray(code, dtype=np.int64), np.asarray(ts_ns, dtype=np.int64)
    if np.any((np.diff(code) < 0) | ((np.diff(code) == 0) & (np.diff(ts_ns) < 0))):
        raise ValueError("lagged_power needs rows sorted by GPU, then time")
    span_ns = LAG_SPAN * tau_s * 1e9
    fin = np.isfinite(p)
    pz = np.where(fin, p, 0.0)
    num, den = pz.copy(), fin.astype(np.float64)
    k = 1
    while k < len(p):
        age = (ts_ns[k:] - ts_ns[:-k]).astype(np.float64)
        use = (code[k:] == code[:-k]) & (age < span_ns)
        if not use.any():  # rows k apart are all of other GPUs or older than the span
            break
        # rows of another GPU (or without power) do not count; their age is not even looked at
        use &= fin[:-k]
        w = np.where(use, np.exp(-np.where(use, age, 0.0) / (tau_s * 1e9)), 0.0)
        num[k:] += w * pz[:-k]
        den[k:] += w
        k += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(fin, num / den, np.nan)


def lag_nodes(nodes: Iterable[str]) -> list[str]:
    """The nodes :func:`fit_thermal_lag` reads of those with samples: at most
    :data:`LAG_NODES`, evenly spaced over their sorted names (a TSDB reads just these raw)."""
    names = sorted(set(nodes))
    if len(names) <= LAG_NODES:
        return names
    return [names[i] for i in np.linspace(0, len(names) - 1, LAG_NODES).round().astype(int)]


def fit_thermal_lag(
    frames: FleetFrames,
    *,
    since: datetime | None = None,
    temp: str = TEMP,
    power: str = POWER,
) -> float:
    """Return the time constant (s) with which temperature follows power in the fit's history.

    Of :data:`LAG_CANDIDATES`, the one whose lagged power explains the most of each GPU's
    temperature swings (pooled within-GPU least squares, each GPU's mean removed) over the
    history of at most :data:`LAG_NODES` nodes. Rows are scored only once the longest lag's span
    lies in their GPU's consecutive samples, the same rows for every candidate.
    0 when fewer than ``MIN_SWING_GPUS`` GPUs swung by ``MIN_SWING_WATTS`` (nothing to learn
    from): temperature is then compared at the instantaneous power, as without a lag.
    """
    g = _samples(frames.gpu, (temp, power), since)
    if g.empty:
        return 0.0
    nodes = pd.Index(g["node"].unique())
    if len(nodes) > LAG_NODES:
        g = g[g["node"].isin(lag_nodes(nodes)).to_numpy()]
    wide = replace(frames, gpu=g).gpu_wide([temp, power])
    if wide.empty:
        return 0.0
    level = wide.index.names.index("key")
    code = np.asarray(wide.index.codes[level], dtype=np.int64)
    ts_ns = np.asarray(wide.index.get_level_values("ts").asi8, dtype=np.int64)
    p = wide[power].to_numpy(dtype=np.float64)
    t = wide[temp].to_numpy(dtype=np.float64)
    # a row counts once the longest span lies inside its run of consecutive samples
    span = LEAD_IN.total_seconds() * 1e9
    gap = np.r_[True, (code[1:] != code[:-1]) | (np.diff(ts_ns) > span)]
    run_start = ts_ns[np.flatnonzero(gap)][np.cumsum(gap) - 1]
    mature = (ts_ns - run_start >= span) & np.isfinite(t) & np.isfinite(p)
    keys = code[mature]
    by_gpu = pd.Series(p[mature]).groupby(keys)
    swing = by_gpu.max() - by_gpu.min()
    if int((swing >= MIN_SWING_WATTS).sum()) < MIN_SWING_GPUS:
        return 0.0
    dt = t[mature] - pd.Series(t[mature]).groupby(keys).transform("mean").to_numpy()
    best, best_resid = 0.0, np.inf
    for tau in LAG_CANDIDATES:
        lp = lagged_power(p, code, ts_ns, tau)[mature]
        dp = lp - pd.Series(lp).groupby(keys).transform("mean").to_numpy()
        var = float(np.sum(dp**2))
        if var <= 0.0:
            continue
        resid = float(np.sum(dt**2)) - float(np.sum(dp * dt)) ** 2 / var
        if resid < best_resid:
            best, best_resid = tau, resid
    return best
