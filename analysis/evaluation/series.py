"""Labelled-series arithmetic: the anomaly-detection scores ``gpu-risk evaluate`` reports.

Pure functions over 0/1 label arrays and anomaly scores (SMD-style data, one row per time step):
point-wise, event-level and point-adjusted precision/recall/F1 (:func:`point_metrics`,
:func:`event_metrics`, :func:`point_adjusted_metrics`), :func:`roc_auc`, a threshold chosen from
training scores only (:func:`quantile_threshold`) and root-cause :func:`hit_at_p`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int_]


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1 of one protocol."""

    precision: float
    recall: float
    f1: float


def segments(labels: npt.ArrayLike) -> tuple[tuple[int, int], ...]:
    """Return the contiguous runs of nonzero labels as ``(start, end)`` with END exclusive.

    Parameters
    ----------
    labels : array_like
        0/1 (or boolean) sequence.

    Returns
    -------
    tuple[tuple[int, int], ...]
        The runs, in order.
    """
    y = np.asarray(labels).astype(bool).astype(np.int8)
    if y.size == 0:
        return ()
    diff = np.diff(np.concatenate(([0], y, [0])))
    starts = np.flatnonzero(diff == 1)
    ends = np.flatnonzero(diff == -1)
    return tuple((int(s), int(e)) for s, e in zip(starts, ends, strict=True))


def _from_rates(p: float, r: float) -> PRF:
    """Return precision, recall and their F1 (0 when both are 0)."""
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return PRF(float(p), float(r), float(f))


def _prf(tp: float, fp: float, fn: float) -> PRF:
    """Return P/R/F1 from counts, 0 where a denominator is 0 (sklearn's zero_division=0)."""
    p = tp / (tp + fp) if tp + fp > 0 else 0.0
    r = tp / (tp + fn) if tp + fn > 0 else 0.0
    return _from_rates(p, r)


def _check_pair(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> tuple[IntArray, IntArray]:
    """Return both label arrays as 0/1 ints, checking they have the same length."""
    t = np.asarray(y_true).astype(bool).astype(int)
    p = np.asarray(y_pred).astype(bool).astype(int)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"labels and predictions must be 1-D of equal length: {t.shape} {p.shape}")
    return t, p


def point_metrics(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> PRF:
    """Return point-wise precision, recall and F1 (every time step counted on its own).

    Parameters
    ----------
    y_true, y_pred : array_like
        0/1 labels and predictions of equal length.

    Returns
    -------
    PRF
        Point-wise scores (0 where undefined).
    """
    t, p = _check_pair(y_true, y_pred)
    tp = float(np.sum(t & p))
    return _prf(tp, float(np.sum(p & ~t.astype(bool))), float(np.sum(t & ~p.astype(bool))))


def point_adjust(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> IntArray:
    """Apply the "point adjust" protocol to predictions.

    If any point of a true anomaly segment is predicted, every point of that segment counts as
    predicted; predictions outside true segments are unchanged. This inflates scores (a single
    hit in a long segment counts as the whole segment), so results using it are labelled
    "point-adjusted".

    Parameters
    ----------
    y_true, y_pred : array_like
        0/1 labels and predictions of equal length.

    Returns
    -------
    numpy.ndarray
        The adjusted 0/1 predictions.
    """
    t, p = _check_pair(y_true, y_pred)
    out = p.copy()
    for start, end in segments(t):
        if out[start:end].any():
            out[start:end] = 1
    return out


def point_adjusted_metrics(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> PRF:
    """Return precision, recall and F1 after :func:`point_adjust` (the inflated protocol).

    Parameters
    ----------
    y_true, y_pred : array_like
        0/1 labels and predictions of equal length.

    Returns
    -------
    PRF
        Point-adjusted scores.
    """
    return point_metrics(y_true, point_adjust(y_true, y_pred))


def event_metrics(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> PRF:
    """Return event-level precision, recall and F1.

    Recall is the fraction of true segments with at least one predicted point; precision is the
    fraction of predicted segments (contiguous runs of predicted 1) that overlap a true segment.

    Parameters
    ----------
    y_true, y_pred : array_like
        0/1 labels and predictions of equal length.

    Returns
    -------
    PRF
        Event-level scores (0 where undefined).
    """
    t, p = _check_pair(y_true, y_pred)
    true_segs = segments(t)
    pred_segs = segments(p)
    hit = sum(1 for s, e in true_segs if p[s:e].any())
    good = sum(1 for s, e in pred_segs if t[s:e].any())
    prec = good / len(pred_segs) if pred_segs else 0.0
    rec = hit / len(true_segs) if true_segs else 0.0
    return _from_rates(prec, rec)


def roc_auc(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Return the ROC-AUC of anomaly scores (higher = more abnormal), NaN with one class only.

    Parameters
    ----------
    y_true : array_like
        0/1 labels.
    scores : array_like
        Anomaly scores of the same length.

    Returns
    -------
    float
        sklearn's ``roc_auc_score``, or NaN when the labels hold a single class.
    """
    from sklearn.metrics import roc_auc_score

    t = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=float)
    if t.shape != s.shape:
        raise ValueError(f"labels and scores differ in shape: {t.shape} {s.shape}")
    if np.unique(t).size < 2:
        return math.nan
    return float(roc_auc_score(t, s))


def quantile_threshold(train_scores: npt.ArrayLike, quantile: float = 0.99) -> float:
    """Return a threshold chosen from training scores only (never from test labels).

    Parameters
    ----------
    train_scores : array_like
        Anomaly scores of the (anomaly-free) training rows.
    quantile : float
        Fraction of training rows that should stay below the threshold, in (0, 1).

    Returns
    -------
    float
        The ``quantile`` of the training scores; a test row is flagged when its score is above.

    Raises
    ------
    ValueError
        When the quantile is outside (0, 1) or there are no scores.
    """
    s = np.asarray(train_scores, dtype=float)
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    if s.size == 0:
        raise ValueError("no training scores to choose a threshold from")
    return float(np.quantile(s, quantile))


def hit_at_p(
    rankings: Sequence[Sequence[int]],
    truths: Sequence[Collection[int]],
    p: float,
) -> float:
    """Return the mean root-cause Hit@P% over segments (OmniAnomaly / InterFusion).

    For a segment with true cause dims ``D``, Hit@P% = ``|top-k ∩ D| / |D|`` with
    ``k = floor(P/100 * |D|)`` taken from the ranking (Hit@100%: ``k = |D|``; Hit@150%:
    ``k = floor(1.5 |D|)``).

    Parameters
    ----------
    rankings : Sequence[Sequence[int]]
        Per segment, dims ordered from most to least blamed (same numbering as ``truths``).
    truths : Sequence[Collection[int]]
        Per segment, the labelled cause dims.
    p : float
        The percentage, e.g. 100 or 150.

    Returns
    -------
    float
        The mean over segments, NaN when there are none.
    """
    if len(rankings) != len(truths):
        raise ValueError(f"{len(rankings)} rankings for {len(truths)} labelled segments")
    hits: list[float] = []
    for ranking, truth in zip(rankings, truths, strict=True):
        d = set(truth)
        if not d:
            continue
        k = math.floor(p / 100.0 * len(d) + 1e-9)
        hits.append(len(set(list(ranking)[:k]) & d) / len(d))
    return float(np.mean(hits)) if hits else math.nan
