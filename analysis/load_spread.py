"""How a GPU's temperature offset from its peers grows with its load, learnt by a fit.

Each GPU's offset from its peers grows with the load at its own rate (its own thermal
resistance), and its own baseline is one level for all loads: a temperature comparison at a load
outside the range of the GPU's fit rows is judged with its spread widened by the fleet's spread
of per-GPU offset slopes times the distance (``FeatureScorer._scale_for``). :func:`load_spread`
learns both from the fit's rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.stats import MAD_TO_SD

#: Temperature comparisons whose offset from peers depends on the load (each GPU's own thermal
#: resistance): at a load far from the GPU's usual one, their spread widens (``load_spread_``).
LOAD_DEPENDENT: tuple[str, ...] = (
    "temp_vs_node",
    "temp_vs_rack",
    "temp_vs_fleet",
    "temp_at_power",
    "mem_temp_vs_node",
    "mem_temp_at_power",
)
#: Watts between a GPU's idle and busy fit rows for its offset's slope to be measured.
LOAD_STEP_WATTS = 100.0
#: Fewest GPUs with a measured slope for the fleet's spread of slopes; fewer: the default.
MIN_SLOPE_GPUS = 8
#: Degrees per watt: the spread of per-GPU offset slopes assumed when the fit cannot measure it.
DEFAULT_LOAD_SPREAD = 0.01


def load_spread(
    rows: pd.DataFrame, keys: pd.Index, columns: Sequence[str]
) -> tuple[pd.DataFrame, pd.Series]:
    """Return each GPU's range of usual power and, per load-dependent feature, the slopes' spread.

    A GPU's slope is the change of its offset between its busy and idle fit rows per watt (it
    needs rows on both sides of its midpoint, LOAD_STEP_WATTS apart); the spread is a robust
    standard deviation over the GPUs that have one (MIN_SLOPE_GPUS or more), else
    DEFAULT_LOAD_SPREAD.
    """
    power = rows["power_level"].astype(float)
    by_gpu = power.groupby(np.asarray(keys))
    usual = pd.DataFrame({"lo": by_gpu.quantile(0.05), "hi": by_gpu.quantile(0.95)})
    wanted = [c for c in LOAD_DEPENDENT if c in columns]
    if not wanted:
        return usual, pd.Series(dtype=float)
    frame = rows[wanted].astype(float).assign(_p=power.to_numpy(), _k=np.asarray(keys))
    by_key = frame.groupby("_k")["_p"]
    frame["_busy"] = frame["_p"] >= (by_key.transform("min") + by_key.transform("max")) / 2
    halves = frame.groupby(["_k", "_busy"])
    counts = halves.size().unstack(fill_value=0).reindex(columns=[False, True], fill_value=0)
    both = counts.index[(counts >= 3).all(axis=1)]
    slopes = pd.DataFrame(columns=wanted, dtype=float)
    if len(both):
        med = halves.median()
        busy = med.xs(True, level="_busy").reindex(both)
        idle = med.xs(False, level="_busy").reindex(both)
        watts = busy["_p"] - idle["_p"]
        slopes = (busy[wanted] - idle[wanted]).div(watts, axis=0)[watts >= LOAD_STEP_WATTS]
    spreads = {}
    for column in wanted:
        arr = slopes[column].to_numpy(dtype=np.float64)
        arr = arr[np.isfinite(arr)]
        if len(arr) >= MIN_SLOPE_GPUS:
            spreads[column] = float(MAD_TO_SD * np.median(np.abs(arr - np.median(arr))))
        else:
            spreads[column] = DEFAULT_LOAD_SPREAD
    return usual, pd.Series(spreads, dtype=float)
