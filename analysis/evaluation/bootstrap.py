"""Bootstrap intervals over scenarios: resample whole scenarios, recompute the pooled statistic.

A scenario (one seed of the randomized matrix) is the unit of resampling: faults of one
scenario share a fleet, a workload and a model fit, so they are not independent. Every rate is a
*ratio of sums* over the resampled scenarios (e.g. faults warned / faults), every lead time a
median of the pooled values; the interval is the percentile interval of
:data:`~analysis.evaluation.protocol.BOOTSTRAP_RESAMPLES` resamples at
:data:`~analysis.evaluation.protocol.CONFIDENCE`. Pure and seeded: same inputs, same interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analysis.evaluation.numeric import json_round
from analysis.evaluation.protocol import BOOTSTRAP_RESAMPLES, CONFIDENCE


@dataclass(frozen=True)
class Interval:
    """A pooled statistic and its bootstrap interval (``None`` = nothing to measure).

    ``num`` / ``den`` are the pooled sums a ratio was taken of (``den`` = how many cases);
    for a median, ``den`` is the number of pooled values.
    """

    value: float | None
    low: float | None
    high: float | None
    num: float = 0.0
    den: float = 0.0

    def as_dict(self) -> dict[str, float | None]:
        """Return the JSON cell."""
        return {
            "value": json_round(self.value),
            "low": json_round(self.low),
            "high": json_round(self.high),
            "num": json_round(self.num),
            "den": json_round(self.den),
        }

    def text(self, fmt: str = "{:.0%}") -> str:
        """Return ``value [low, high]`` formatted, ``–`` when undefined."""
        if self.value is None:
            return "–"
        if self.low is None or self.high is None:
            return fmt.format(self.value)
        return f"{fmt.format(self.value)} [{fmt.format(self.low)}, {fmt.format(self.high)}]"


def _draws(n: int, resamples: int, seed: int) -> npt.NDArray[np.intp]:
    """Return a (resamples, n) array of scenario indices drawn with replacement."""
    rng = np.random.default_rng([seed, 0xB007])
    return rng.integers(0, n, size=(resamples, n))


def _bounds(stats: npt.NDArray[np.float64], confidence: float) -> tuple[float | None, float | None]:
    """Return the percentile interval of the finite resampled statistics."""
    ok = stats[np.isfinite(stats)]
    if not ok.size:
        return None, None
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(ok, [tail, 100.0 - tail])
    return float(lo), float(hi)


def bootstrap_ratio(
    num: Sequence[float],
    den: Sequence[float],
    *,
    scale: float = 1.0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """Return ``scale * sum(num) / sum(den)`` with a bootstrap interval over scenarios.

    Parameters
    ----------
    num, den : Sequence[float]
        Per scenario, the numerator and denominator counts (e.g. faults warned, faults).
    scale : float
        Multiplier of the ratio (1000 for "per 1,000 GPU-days" with GPU-days as ``den``).
    resamples : int
        Bootstrap resamples.
    confidence : float
        Coverage of the interval, in (0, 1).
    seed : int
        Seed of the resampling.

    Returns
    -------
    Interval
        The pooled ratio and its percentile interval; ``None`` everywhere when ``sum(den)`` is 0.
        Resamples whose denominator is 0 are dropped.

    Raises
    ------
    ValueError
        When ``num`` and ``den`` differ in length.
    """
    n_arr = np.asarray(num, dtype=float)
    d_arr = np.asarray(den, dtype=float)
    if n_arr.shape != d_arr.shape:
        raise ValueError(f"{n_arr.size} numerators for {d_arr.size} denominators")
    total_n, total_d = float(n_arr.sum()), float(d_arr.sum())
    if total_d <= 0:
        return Interval(None, None, None, total_n, total_d)
    idx = _draws(n_arr.size, resamples, seed)
    nums, dens = n_arr[idx].sum(axis=1), d_arr[idx].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        stats = np.where(dens > 0, scale * nums / dens, np.nan)
    lo, hi = _bounds(stats, confidence)
    return Interval(scale * total_n / total_d, lo, hi, total_n, total_d)


def bootstrap_median(
    values: Sequence[Sequence[float]],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """Return the median of the pooled values with a bootstrap interval over scenarios.

    Parameters
    ----------
    values : Sequence[Sequence[float]]
        Per scenario, its values (e.g. the lead times of its warned faults, minutes).
    resamples, confidence, seed
        As in :func:`bootstrap_ratio`.

    Returns
    -------
    Interval
        Median, percentile interval, and ``den`` = number of pooled values.
    """
    groups = [np.asarray(v, dtype=float) for v in values]
    pooled = np.concatenate(groups) if groups else np.zeros(0)
    if not pooled.size:
        return Interval(None, None, None, 0.0, 0.0)
    idx = _draws(len(groups), resamples, seed)
    stats = np.full(resamples, np.nan)
    for i, row in enumerate(idx):
        sample = np.concatenate([groups[j] for j in row])
        if sample.size:
            stats[i] = float(np.median(sample))
    lo, hi = _bounds(stats, confidence)
    return Interval(float(np.median(pooled)), lo, hi, float(pooled.sum()), float(pooled.size))
