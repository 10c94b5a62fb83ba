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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

import numpy as np
import pandas as pd

from analysis.feature_plan import POWER, TEMP
from analysis.types import FleetFrames

__all__ = ["FLEET", "fit_temp_per_watt", "temp_per_watt_of"]

#: The key of the slope pooled over every model (for a GPU whose model had too little swing).
FLEET = ""
#: A model's slope is learnt only from this many GPUs whose power swung by at least
#: ``MIN_SWING_WATTS`` in the history (a fleet that never changed load says nothing about it).
MIN_SWING_GPUS = 2
MIN_SWING_WATTS = 100.0
#: Most timestamps a fit reads for the slope (evenly spaced): a slope needs no 24 h at 15 s.
MAX_TIMESTAMPS = 288


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
    g = frames.gpu
    if g.empty:
        return {}
    pick = g["metric"].isin([temp, power]).to_numpy()
    if since is not None:
        pick &= (g["ts"] > pd.Timestamp(since)).to_numpy()
    g = g[pick]
    stamps = pd.Index(g["ts"].unique()).sort_values()
    if len(stamps) > MAX_TIMESTAMPS:
        keep = stamps[np.linspace(0, len(stamps) - 1, MAX_TIMESTAMPS).round().astype(int)]
        g = g[g["ts"].isin(keep)]
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


def temp_per_watt_of(learnt: Mapping[str, float], models: pd.Series, fallback: float) -> np.ndarray:
    """Each row's slope: its model's, else the fleet's, else ``fallback`` (window's estimate)."""
    fleet = learnt.get(FLEET, fallback)
    codes, names = pd.factorize(models.fillna(FLEET).astype(str), sort=False)
    per_name = np.array([learnt.get(str(m), fleet) for m in names] + [fleet], dtype=np.float64)
    return per_name[codes]  # a code of -1 (none here: NaN was filled) would take the fleet's
