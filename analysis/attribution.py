"""Root-cause ranking of anonymous dimensions when no dependency graph exists (e.g. SMD).

Method (chosen a priori, not tuned on any evaluation file): each dimension's robust z-score
against its training distribution, ``|x - median_train| / scale``, averaged over the rows of the
anomaly segment; dimensions are ranked by that mean, largest first. ``scale`` is
``1.4826 * MAD_train`` (the MAD's normal-consistent scale) floored at ``floor * range_train``
(range = max - min of training, or 1 for a constant dimension) so that a dimension that was
constant in training does not get an infinite score for a rounding-level change. With SMD's
min-max scaled data this floor is 1 % of the metric's range.

There is no causal graph between SMD's 38 anonymous metrics, so DoWhy GCM attribution (which
needs one) does not apply; the robust z ranking is the graph-free baseline that the interpretation
labels (which dims operators named) can be compared against.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import numpy.typing as npt

from analysis.stats import MAD_TO_SD


class RobustZAttributor:
    """Rank dimensions by how far a segment deviates from the training median, in MAD units."""

    def __init__(self, floor: float = 0.01) -> None:
        """Keep the scale floor (fraction of each dimension's training range)."""
        if floor <= 0:
            raise ValueError(f"floor must be > 0, got {floor}")
        self.floor = floor

    def fit(self, X: npt.ArrayLike) -> Self:  # noqa: N803 (sklearn naming)
        """Learn each dimension's median and robust scale from training rows; return self."""
        x = np.asarray(X, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"training data must be a non-empty 2-D array, got shape {x.shape}")
        self.median_ = np.median(x, axis=0)
        mad = np.median(np.abs(x - self.median_), axis=0)
        span = x.max(axis=0) - x.min(axis=0)
        span = np.where(span > 0, span, 1.0)
        self.scale_ = np.maximum(MAD_TO_SD * mad, self.floor * span)
        return self

    def deviation(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:  # noqa: N803
        """Return each dimension's mean absolute robust z-score over the given rows."""
        x = np.asarray(X, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.shape[1] != self.median_.shape[0]:
            raise ValueError(f"expected {self.median_.shape[0]} dims, got {x.shape[1]}")
        z = np.abs(x - self.median_) / self.scale_
        return np.asarray(z.mean(axis=0), dtype=np.float64)

    def rank(self, X: npt.ArrayLike) -> tuple[int, ...]:  # noqa: N803
        """Return the 1-based dims ordered from most to least deviating (ties: lower dim first)."""
        dev = self.deviation(X)
        order = np.argsort(-dev, kind="stable")
        return tuple(int(i) + 1 for i in order)
