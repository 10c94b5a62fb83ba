"""Load regimes of the temperature comparisons: an idle row is judged against idle rows' spread.

An idle GPU's temperature at equal power, and against its idle peers, is steady to a few tenths
of a degree; a busy GPU's moves by degrees as its jobs start, stop and change. One spread learnt
from the fit's rows of both (``FeatureScorer.scale_``: the central 99 % range, set by the busy
rows) made an idle GPU's thermal interface failing, 3 °C over ten hours, look like noise (the
development fleets: idle-row spread of ``temp_vs_node`` 0.2-0.4 °C, the one spread 1.1-1.4 °C).
Which regime is the steady one is the fleet's: on the simulator's plain, mostly busy fleet it is
the busy rows (idle rows there hold a job's end).

:func:`fit_regimes` learns, per feature it is given (the scorer's :data:`REGIME_FEATURES`), the
spread of the fit's idle rows and of its busy rows, the fleet's and each GPU's own; :func:`regime_scale` puts them in place of
the one spread for a row whose regime is known. A row is busy from its GPU model's midpoint
between the fit rows' 5th and 95th percentiles of window power (``power_level``) on; a model
whose rows span less than :data:`MIN_SPAN_WATTS` has one regime: its rows keep the one spread.
Only the comparisons with peers at the same timestamps (:data:`REGIME_FEATURES`) have regimes.
Pure: numpy and pandas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.stats import own_spread, robust_spread

#: The comparisons with peers at the same timestamps, which a node-wide or hall-wide change
#: (a fan profile, the inlet air, a driver) moves for every peer alike. Temperature at equal
#: power against the GPU's own history (``temp_at_power``) moves with them: it keeps the one
#: spread (an idle-rows spread read a fan-profile change as +8 sd on development fleet 132).
REGIME_FEATURES: tuple[str, ...] = (
    "temp_vs_node",
    "temp_vs_rack",
    "temp_vs_fleet",
    "mem_temp_vs_node",
)
#: A model's fit rows must span this many watts of window power to have two regimes.
MIN_SPAN_WATTS = 100.0
#: Fewest fit rows of a regime for the fleet's spread of it; fewer: the one spread stands.
MIN_REGIME_ROWS = 50
#: Fewest fit rows of a GPU in a regime for its own spread there; fewer: its spread over all.
MIN_OWN_REGIME_ROWS = 8


@dataclass(frozen=True)
class RegimeScales:
    """What :func:`fit_regimes` learnt.

    ``busy_watts``: per GPU key, the window power from which its rows are busy (inf: its
    model has one regime, its rows keep the one spread); ``fleet``: index ``[False, True]``
    (busy), a column per feature, the fleet's spread in that regime (NaN: too few rows);
    ``own``: index (busy, GPU key), each GPU's own spread there (NaN: too few rows).
    """

    busy_watts: pd.Series
    fleet: pd.DataFrame
    own: pd.DataFrame


def busy_watts(
    power: npt.ArrayLike, models: Sequence[str], fleet_models: Mapping[str, str]
) -> pd.Series:
    """Per GPU key of ``fleet_models`` (key -> GPU model), the window power from which a row is
    busy: its model's midpoint between the 5th and 95th percentiles of ``power`` (the fit rows',
    ``models`` their GPUs' models), inf where they span less than :data:`MIN_SPAN_WATTS`. A model
    without fit rows takes the midpoint of all rows."""
    p = pd.Series(np.asarray(power, dtype=np.float64), index=pd.Index(models, dtype=object))
    p = p[np.isfinite(p.to_numpy())]

    def midpoint(values: pd.Series) -> float:
        if values.empty:
            return float("inf")
        lo, hi = np.quantile(values.to_numpy(), [0.05, 0.95])
        return float((lo + hi) / 2) if hi - lo >= MIN_SPAN_WATTS else float("inf")

    every = midpoint(p)
    by_model = {str(m): midpoint(v) for m, v in p.groupby(level=0)}
    return pd.Series(
        {key: by_model.get(model, every) for key, model in fleet_models.items()}, dtype=float
    )


def fit_regimes(
    resid: pd.DataFrame,
    power: npt.ArrayLike,
    keys: pd.Index,
    fleet_models: Mapping[str, str],
    floors: pd.Series,
) -> RegimeScales:
    """Learn each regime's spread of ``resid``'s columns.

    ``resid``: the fit rows' deviations from the GPUs' baselines and the fleet's centre (one row
    per fit row, a column per feature); ``power``: the rows' ``power_level``; ``keys``: their
    GPU keys; ``fleet_models``: GPU key -> model for every GPU the model serves; ``floors``: the
    smallest spread of each column (``analysis.calibration.scale_floor``). The fleet's spread of
    a regime is the one spread's rule on its rows (the larger of the MAD and the central 99 %
    range / 5.15); a GPU's own is the 90th percentile of its absolute deviations / 1.645, as
    ``FeatureScorer.own_scale_``.
    """
    code, uniques = pd.factorize(np.asarray(keys, dtype=object))
    models = np.array([fleet_models.get(str(k), "") for k in uniques], dtype=object)[code]
    watts = busy_watts(power, list(models), fleet_models)
    p = np.asarray(power, dtype=np.float64)
    mine = watts.reindex(keys).to_numpy(dtype=np.float64)
    busy = p >= mine
    known = np.isfinite(p) & np.isfinite(mine)  # a model of one regime keeps the one spread
    fleet = {}
    for regime in (False, True):
        rows = resid[known & (busy == regime)]
        if len(rows) < MIN_REGIME_ROWS:
            fleet[regime] = pd.Series(np.nan, index=resid.columns)
            continue
        fleet[regime] = np.maximum(robust_spread(rows).fillna(0.0), floors.reindex(rows.columns))
    mine_abs = resid[known].abs()
    by = [busy[known], np.asarray(keys)[known]]
    counts = mine_abs.groupby(by).count()
    own = own_spread(mine_abs, by).where(counts >= MIN_OWN_REGIME_ROWS)
    own.index = own.index.set_names(["busy", "gpu_key"])
    return RegimeScales(watts, pd.DataFrame(fleet).T, own)


def regime_scale(
    scales: RegimeScales,
    fleet: npt.NDArray[np.float64],
    *,
    own: npt.NDArray[np.float64],
    keys: pd.Index,
    power: npt.ArrayLike,
    columns: Sequence[str],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``fleet`` and ``own`` (rows x ``columns``: the one fleet spread, each GPU's over all its
    rows) with each row's regime spreads in place where its regime is known (its power and its
    GPU's ``busy_watts``) and the spread was learnt; the caller takes the larger of the two."""
    fleet, own = fleet.copy(), own.copy()
    p = np.asarray(power, dtype=np.float64)
    watts = scales.busy_watts.reindex(keys).to_numpy(dtype=np.float64)
    busy = p >= watts
    # a GPU the fit did not serve, or of a model with one regime: the one spread
    known = np.isfinite(p) & np.isfinite(watts)
    wanted = [c for c in columns if c in scales.fleet.columns]
    position = {c: j for j, c in enumerate(columns)}
    # each GPU's own spread in each regime: two flat lookups by key, not one by (busy, key)
    mine = np.where(
        busy[:, None],
        _own_of(scales.own, True, keys, wanted),
        _own_of(scales.own, False, keys, wanted),
    )
    per_regime = scales.fleet.reindex(index=[False, True], columns=wanted).to_numpy(np.float64)
    for i, column in enumerate(wanted):
        j = position[column]
        f = np.where(busy, per_regime[1, i], per_regime[0, i])
        use = known & np.isfinite(f)
        fleet[use, j] = f[use]
        use = known & np.isfinite(mine[:, i])
        own[use, j] = mine[use, i]
    return fleet, own


def _own_of(
    own: pd.DataFrame, busy: bool, keys: pd.Index, columns: Sequence[str]
) -> npt.NDArray[np.float64]:
    """The own spreads of ``keys`` (rows) in one regime, NaN where none was learnt."""
    level = own.index.get_level_values("busy")
    rows = own[level == busy].droplevel("busy")
    return rows.reindex(index=keys, columns=list(columns)).to_numpy(dtype=np.float64)
