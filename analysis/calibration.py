"""Calibration and the tail guard: raw detector scores -> risk in [0, 1] against healthy history.

Pure numpy. :class:`TailCalibrator` maps a detector's scores to ``-log10 p / decades`` where ``p``
is the chance of a healthy GPU-cycle at least as abnormal; :class:`FeatureTails` scores each
feature on its own, Bonferroni-adjusted, so one deviating feature among fifty is not diluted by a
forest. :func:`risk_direction` and :func:`scale_floor` say, per feature, which side is risky and
how small its spread may get.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Self

import numpy as np
import numpy.typing as npt

# Risk 1.0 = one healthy GPU-cycle in 10**7. A 256-GPU fleet scanned every minute sees 368,640
# GPU-cycles a day, so the default threshold 0.9 (about 1 in 5 million) leaves well under one
# healthy GPU-cycle above it per 1,000 GPU-days; five decades would leave dozens.
DEFAULT_DECADES = 7.0


class TailCalibrator:
    """Map raw detector scores to [0, 1] against the scores of the fitted history.

    ``risk = min(1, -log10(p) / decades)`` where ``p`` is the smoothed share of training scores
    at least as high (empirical below the ``tail_quantile``, exponential tail fitted above it).
    """

    def __init__(self, decades: float = DEFAULT_DECADES, tail_quantile: float = 0.95) -> None:
        """Keep the settings; nothing is fitted yet."""
        self.decades = decades
        self.tail_quantile = tail_quantile

    def fit(self, scores: npt.ArrayLike) -> Self:
        """Learn the distribution of healthy scores and return self."""
        s = np.sort(np.asarray(scores, dtype=np.float64))
        s = s[np.isfinite(s)]
        if s.size < 10:
            raise ValueError(f"need at least 10 finite training scores to calibrate, got {s.size}")
        self.sorted_ = s
        self.u_ = float(np.quantile(s, self.tail_quantile))
        exceed = s[s > self.u_] - self.u_
        spread = float(np.quantile(s, 0.99) - np.quantile(s, 0.5)) or 1e-6
        # Exponential scale: the flatter of the median-based and the trimmed-mean estimate, so
        # a short tail (a forest's bounded scores) is not taken as steeper than it is, and one
        # wild healthy row cannot flatten it either.
        if exceed.size:
            robust = float(np.median(exceed)) / math.log(2)
            trimmed = float(exceed[exceed <= np.quantile(exceed, 0.95)].mean())
        else:
            robust = trimmed = 0.0
        self.beta_ = max(robust, trimmed, spread / 20, 1e-9)
        self.p_u_ = max(float((s > self.u_).mean()), 1.0 / (s.size + 1))
        return self

    def tail_probability(self, scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Return ``p``: the share of healthy training scores at least as high as each score."""
        x = np.asarray(scores, dtype=np.float64)
        n = self.sorted_.size
        ge = n - np.searchsorted(self.sorted_, x, side="left")
        p_emp = (ge + 1.0) / (n + 1.0)
        p_tail = self.p_u_ * np.exp(-(x - self.u_) / self.beta_)
        p = np.where(x > self.u_, np.minimum(p_tail, 1.0), p_emp)
        return np.asarray(np.where(np.isfinite(x), p, 1.0), dtype=np.float64)

    def transform(self, scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Return calibrated risk in [0, 1] (higher = rarer in healthy history)."""
        p = np.clip(self.tail_probability(scores), 1e-300, 1.0)
        return np.asarray(np.clip(-np.log10(p) / self.decades, 0.0, 1.0), dtype=np.float64)


class FeatureTails:
    """Per-feature tail probabilities of ``|z|`` against the fitted history (an ECOD-like guard).

    A forest cannot split on a feature that never moved in healthy history, and one deviating
    feature among fifty is easily diluted; this guard scores each feature on its own. For every
    feature ``p_j`` is the share of healthy rows with at least that ``|z_j|`` (empirical below the
    95th percentile, exponential tail above it, with floors so a feature that never moved is not
    infinitely surprising), and a row's raw guard score is ``max_j -log10 p_j - log10 m``: the
    Bonferroni bound on the chance that any of the ``m`` tested features is that surprising in a
    healthy GPU-cycle, so fifty features do not give fifty chances to page.

    ``keep_sorted=False`` (the product's scorer) lets the fitted history go when it cannot
    change a score: below the 95th percentile ``p_j`` is at least the share of rows at or above
    it (about 5 %), and when that is more than ``1/m`` an empirical ``p`` never clears the
    Bonferroni bar, so :meth:`score` gives the same bits from the tails alone. The history is a
    float per training row and feature (0.5 GB at 100,000 GPUs); :meth:`neg_log_p` needs it.
    """

    def __init__(
        self,
        directions: Sequence[int] | None = None,
        *,
        tail_quantile: float = 0.95,
        min_beta: float = 0.5,
        min_beta_unobserved: float = 1.0,
        min_p_tail: float = 0.01,
        max_beta: float = 1.0,
        keep_sorted: bool = True,
    ) -> None:
        """Keep the settings (``directions``: +1/-1/0 per column, see :func:`risk_direction`)."""
        self.directions = None if directions is None else tuple(directions)
        self.keep_sorted = keep_sorted
        self.tail_quantile = tail_quantile
        self.min_beta = min_beta
        self.min_beta_unobserved = min_beta_unobserved
        self.max_beta = max_beta
        self.min_p_tail = min_p_tail

    def _oriented(self, z: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Return ``|z|``, or only the risky side of ``z`` for one-sided columns."""
        arr = np.asarray(z, dtype=np.float64)
        if self.directions is None:
            return np.abs(arr)
        d = np.asarray(self.directions, dtype=np.float64)
        out = np.where(d == 0, np.abs(arr), np.clip(arr * d, 0.0, None))
        return np.asarray(np.where(d == IGNORE, 0.0, out))

    def fit(self, z: npt.ArrayLike) -> Self:
        """Learn each column's distribution of (oriented) ``|z|`` and return self."""
        a = self._oriented(z)
        self.sorted_: npt.NDArray[np.float64] | None = np.sort(a, axis=0)
        self.n_ = a.shape[0]
        # column by column (each a one-column matrix: the same numpy paths, so the same bits as
        # the whole matrix at once): a whole-matrix temporary is 0.5 GB at 100,000 GPUs
        width = a.shape[1]
        u, mean_exceed = np.empty(width), np.empty(width)
        above, share = np.empty(width, dtype=np.int64), np.empty(width)
        for j in range(width):
            col = a[:, j : j + 1]
            u[j] = np.quantile(col, self.tail_quantile, axis=0)[0]
            over = col > u[j]
            exceed = np.where(over, col - u[j], np.nan)
            if np.isnan(exceed).all():
                exceed[:] = 0.0
            with np.errstate(invalid="ignore"):
                mean_exceed[j] = np.nanmedian(exceed, axis=0)[0] / math.log(2)
            above[j], share[j] = over.sum(axis=0)[0], over.mean(axis=0)[0]
        self.u_ = u
        # A feature with a well-observed tail may have a steep one; a feature that (almost)
        # never moved gets a flat one, so its first small move is not a page.
        observed = above >= 20
        floor = np.where(observed, self.min_beta, self.min_beta_unobserved)
        self.beta_ = np.clip(np.nan_to_num(mean_exceed), floor, self.max_beta)
        self.p_u_ = np.maximum(share, self.min_p_tail)
        if not self.keep_sorted and self._tails_decide(self.sorted_):
            self.sorted_ = None
        return self

    def _tails_decide(self, sorted_: npt.NDArray[np.float64]) -> bool:
        """Whether no value at or below a column's ``u_`` can clear the Bonferroni bar: its
        empirical ``p`` is at least that of ``u_`` itself (the share at or above it), and
        ``-log10`` of that is below ``log10 m``. Not for a history with NaN (sorted last)."""
        n = sorted_.shape[0]
        if n == 0 or np.isnan(sorted_[-1]).any():
            return False
        at_u = np.array([n - np.searchsorted(sorted_[:, j], u) for j, u in enumerate(self.u_)])
        p_at_u = np.clip((at_u + 1.0) / (n + 1.0), 1e-300, 1.0)
        return bool(np.all(-np.log10(p_at_u) - math.log10(self.n_tested) < 0.0))

    def neg_log_p(self, z: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Return ``-log10 p_j`` per row and feature."""
        if self.sorted_ is None:
            raise ValueError(
                "this guard kept only its tails (keep_sorted=False): it scores rows, but "
                "per-feature p needs the fitted history; fit it with keep_sorted=True"
            )
        a = self._oriented(z)
        n = self.sorted_.shape[0]
        out = np.empty_like(a)
        for j in range(a.shape[1]):
            ge = n - np.searchsorted(self.sorted_[:, j], a[:, j], side="left")
            p_emp = (ge + 1.0) / (n + 1.0)
            p_tail = self.p_u_[j] * np.exp(-(a[:, j] - self.u_[j]) / self.beta_[j])
            p = np.where(a[:, j] > self.u_[j], np.minimum(p_tail, 1.0), p_emp)
            out[:, j] = -np.log10(np.clip(p, 1e-300, 1.0))
        return out

    @property
    def n_tested(self) -> int:
        """Return how many features the guard tests (columns not left to a twin)."""
        if self.directions is None:
            return len(self.u_)
        return max(1, sum(1 for d in self.directions if d != IGNORE))

    def score(self, z: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Return each row's guard score: ``-log10`` of the Bonferroni-adjusted smallest ``p``."""
        if self.sorted_ is None:  # only a tail can clear the bar (``_tails_decide``)
            best = self._tail_neg_log_p(z).max(axis=1) - math.log10(self.n_tested)
        else:
            best = self.neg_log_p(z).max(axis=1) - math.log10(self.n_tested)
        return np.asarray(np.clip(best, 0.0, None), dtype=np.float64)

    def _tail_neg_log_p(self, z: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``-log10 p_j`` where ``z_j`` is in its tail, 0 elsewhere (a NaN: as a value above
        all of a history without NaN). The same bits as :meth:`neg_log_p` in the tails."""
        a = self._oriented(z)
        out = np.zeros_like(a)
        for j in range(a.shape[1]):
            p_tail = self.p_u_[j] * np.exp(-(a[:, j] - self.u_[j]) / self.beta_[j])
            tail = a[:, j] > self.u_[j]
            out[:, j] = np.where(
                tail, -np.log10(np.clip(np.minimum(p_tail, 1.0), 1e-300, 1.0)), 0.0
            )
            out[np.isnan(a[:, j]), j] = -np.log10(1.0 / (self.n_ + 1.0))
        return out


IGNORE = 2
# Which direction of a feature means risk: +1 high, -1 low (anything else: both).
_HIGH_IS_RISK = (
    "temp",
    "mem_temp",
    # a node or rack whose GPUs run cooler than the fleet's is idle or drained, not at risk
    "node_temp",
    "rack_temp",
    "inlet",
    "hwmon",
    "cooling.",
    "gap_frac",
    "last_seen",
    "up_down",
    "remap_",
    "xid_",
)
_LOW_IS_RISK = ("fan_", "volts_", "pdu.output_volts")


# Burst-sensitive counter rates that have a burst-robust ``_sustained`` twin: the forest sees
# them, the guard leaves them to the twin (one benign burst must not page).
_GUARD_SKIP = (
    "ecc_sbe_rate",
    "pcie_replay_rate",
    "nvlink_crc_rate",
    # Memory temperature against peers swings with each job's memory load; the forest weighs
    # it together with the GPU temperature instead.
    "mem_temp_vs_node",
    "mem_temp_at_power",
    # Time spent at the power limit or the thermal slowdown: threshold counters that sit at 0
    # until a job, a planned power cap or a hot hall pushes a GPU against the limit, and then
    # jump by tens of spreads (log1p of microseconds per hour). They are consequences: the forest
    # weighs them with what says why (PSU/PDU voltages; temperature at power against the GPU's
    # peers and its own history, which carry a failing fan or thermal interface). Left to the
    # guard, a healthy GPU at a hot spot throttling under a heavy job paged on its own.
    "power_viol_rate",
    "thermal_viol_rate",
    # A GPU's temperature at power drifting within the window: the whole node drifts with it for
    # tens of minutes after a job starts or ends (heat sinks and chassis air soak up and give
    # back heat), and in a mostly idle fleet its healthy spread is so small that every job read
    # +10 sd on the guard. A GPU warming on its own is temp_vs_node_slope (against its node,
    # which cancels the soak); the forest weighs this one with the rest.
    "temp_at_power_slope",
)


def risk_direction(column: str) -> int:
    """Return +1 when only high values of a feature mean risk, -1 when only low ones, 0 for both.

    ``IGNORE`` (2) marks a feature the per-feature guard leaves to a more robust twin.
    """
    if column in _GUARD_SKIP or (column.endswith(".rate") and "." in column[:-5]):
        return IGNORE
    if column.endswith(("_rate", "_sustained", ".sustained", "_events", "_excess", ".excess")):
        return 1
    if column.startswith(_LOW_IS_RISK):
        return -1
    if column.startswith(_HIGH_IS_RISK) and not column.endswith("_slope"):
        return 1
    if column == "temp_vs_node_slope":
        # A GPU warming away from its node's peers is the thermal-interface precursor; one
        # cooling towards them is a job ending on it.
        return 1
    return 0


def scale_floor(column: str, median: float) -> float:
    """Return the smallest spread a feature may have, so a quiet feature cannot explode."""
    if column.endswith(("_excess", ".excess")):
        # Poisson counts on the Anscombe scale spread by about one unit: never less.
        return 1.0
    if column.endswith(("_rate", ".rate", "_events", "_sustained", ".sustained")):
        return 0.3
    if column.startswith(("volts", "fan_spread", "fan_min_vs_fleet")):
        return 0.003
    if "temp" in column and column.endswith(("_vs_fleet", "_vs_rack")):
        # A rack's or a node's GPUs against the fleet (and a GPU against its rack or fleet) at
        # equal power: compared at the lagged power (analysis.thermal) these lose the job-start
        # transients that made up most of their healthy spread, down to 0.4 °C on a quiet
        # fleet, and a fan-profile change or a firmware's offset of a few degrees then read
        # +10 sd. A degree is the least such a comparison is trusted to (whole-degree sensors,
        # fan curves): a failing cooler moves it by several.
        return 1.0
    if "temp" in column or column.startswith("inlet") or column.endswith("_slope"):
        return 0.3 if not column.endswith("_slope") else 0.02
    if column in {"gap_frac", "gap_frac_vs_node", "up_down_frac"}:
        return 0.05
    if column in {"last_seen_min", "last_seen_vs_node"}:
        return 1.0
    return max(1e-3, 0.01 * abs(median))
