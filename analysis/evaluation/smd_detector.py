"""The product's tail guard on anonymous metrics: the detector and ranking ``evaluate`` reports.

SMD's 38 metrics have no names, so the hardware graph and the peer context do not apply; what
does is the product's per-feature tail guard (:class:`analysis.calibration.FeatureTails`) on a
robust z-score against the training median/MAD (:class:`analysis.attribution.RobustZAttributor`).

* **Score** of a minute: the mean of its ``top_k`` largest per-feature surprises ``-log10 p_j``,
  averaged over a trailing window of ``window`` minutes (the window ends at the minute, so the
  score never looks ahead).
* **Ranking** of a segment's dimensions: each dimension's largest ``-log10 p_j`` over the segment.

Why this setting (chosen on SMD group 1 only, see ``docs/evaluation-smd.md``): SMD anomalies
usually move several correlated metrics at once (a median of 8 labelled cause dims per segment),
so asking for three surprising features instead of one ignores the lone-feature blips that
dominate a single-feature max; a 5-minute window removes point noise without smearing short
segments; and ``-log10 p`` per dimension puts a dimension that never moves in training and a
noisy one on the same footing, which a mean ``|z|`` does not.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import numpy.typing as npt

from analysis.attribution import RobustZAttributor
from analysis.calibration import FeatureTails

FloatArray = npt.NDArray[np.float64]


def trailing_mean(values: npt.ArrayLike, window: int) -> FloatArray:
    """Return the mean of each value and the ``window - 1`` before it (fewer at the start).

    Parameters
    ----------
    values : array_like
        1-D series in time order.
    window : int
        Window length in rows (1 = the values unchanged).

    Returns
    -------
    numpy.ndarray
        The trailing means, same length as ``values``.
    """
    s = np.asarray(values, dtype=np.float64)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if window == 1 or s.size == 0:
        return s.copy()
    c = np.concatenate(([0.0], np.cumsum(s)))
    idx = np.arange(s.size)
    lo = np.maximum(0, idx - window + 1)
    return np.asarray((c[idx + 1] - c[lo]) / (idx + 1 - lo), dtype=np.float64)


class TailSurpriseDetector:
    """Per-feature tail surprise against training rows: a minute's score and a segment's ranking.

    Parameters
    ----------
    top_k : int
        How many of the largest per-feature ``-log10 p`` are averaged into a minute's score.
    window : int
        Trailing window (rows) the minute scores are averaged over.
    floor : float
        Robust-z scale floor, as a fraction of each dimension's training range.
    """

    def __init__(self, top_k: int = 3, window: int = 5, floor: float = 0.01) -> None:
        """Keep the settings; nothing is fitted yet."""
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.top_k = top_k
        self.window = window
        self.floor = floor

    def fit(self, train: npt.ArrayLike) -> Self:
        """Learn each dimension's median, robust scale and ``|z|`` tail from training rows."""
        x = np.asarray(train, dtype=np.float64)
        self.z_ = RobustZAttributor(floor=self.floor).fit(x)
        self.tails_ = FeatureTails().fit(self._z(x))
        return self

    def _z(self, x: FloatArray) -> FloatArray:
        """Return the signed robust z-score of each row and dimension."""
        if x.ndim != 2 or x.shape[1] != self.z_.median_.shape[0]:
            raise ValueError(f"expected (rows, {self.z_.median_.shape[0]}) values, got {x.shape}")
        return np.asarray((x - self.z_.median_) / self.z_.scale_, dtype=np.float64)

    def surprise(self, rows: npt.ArrayLike) -> FloatArray:
        """Return ``-log10 p`` per row and dimension (the guard's per-feature tail surprise)."""
        x = np.asarray(rows, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        return np.asarray(self.tails_.neg_log_p(self._z(x)), dtype=np.float64)

    def point_scores(self, rows: npt.ArrayLike) -> FloatArray:
        """Return each row's mean of its ``top_k`` largest surprises (no time window)."""
        nlp = self.surprise(rows)
        k = min(self.top_k, nlp.shape[1])
        return np.asarray(np.sort(nlp, axis=1)[:, -k:].mean(axis=1), dtype=np.float64)

    def decision_function(self, rows: npt.ArrayLike) -> FloatArray:
        """Return the anomaly score of each row (higher = more abnormal), rows in time order."""
        return trailing_mean(self.point_scores(rows), self.window)

    def rank(self, segment: npt.ArrayLike) -> tuple[int, ...]:
        """Return the 1-based dims from most to least surprising over the segment (ties: lower)."""
        peak = self.surprise(segment).max(axis=0)
        return tuple(int(i) + 1 for i in np.argsort(-peak, kind="stable"))
