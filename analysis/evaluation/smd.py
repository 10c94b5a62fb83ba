"""One SMD-style labelled machine, end to end: detector, threshold, metrics and attribution.

:func:`parse_interpretation` reads the labelled cause dims of each anomaly segment,
:func:`evaluate_series` fits a detector on the training rows and reports every protocol of
:mod:`analysis.evaluation.series` on the test rows, and :func:`mean_table` averages machines.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.evaluation.numeric import json_round, nanmean
from analysis.evaluation.series import (
    event_metrics,
    hit_at_p,
    point_adjusted_metrics,
    point_metrics,
    quantile_threshold,
    roc_auc,
)


@dataclass(frozen=True)
class InterpretationSegment:
    """One labelled anomaly segment: test rows ``start..end-1`` and the 1-based cause dims."""

    start: int
    end: int
    dims: tuple[int, ...]


_INTERP_LINE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*:\s*(\d+(?:\s*,\s*\d+)*)\s*,?\s*$")


def parse_interpretation(text: str, n_rows: int | None = None) -> tuple[InterpretationSegment, ...]:
    """Parse SMD interpretation lines ``START-END:d1,d2,...``.

    Parameters
    ----------
    text : str
        One segment per line; rows ``START..END-1`` (0-based, END exclusive), dims 1-based.
        Blank lines are ignored.
    n_rows : int, optional
        Number of test rows, to check that segments lie inside the series.

    Returns
    -------
    tuple[InterpretationSegment, ...]
        The segments in file order.

    Raises
    ------
    ValueError
        Naming the line number and what is wrong with it.
    """
    out: list[InterpretationSegment] = []
    for no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _INTERP_LINE.match(line)
        if m is None:
            raise ValueError(
                f"line {no}: {line.strip()[:60]!r} is not 'START-END:d1,d2,...' "
                "(0-based rows, END exclusive, 1-based dims)"
            )
        start, end = int(m.group(1)), int(m.group(2))
        dims = tuple(int(d) for d in m.group(3).split(","))
        if end <= start:
            raise ValueError(f"line {no}: END {end} must be greater than START {start}")
        if n_rows is not None and end > n_rows:
            raise ValueError(f"line {no}: END {end} is past the {n_rows} test rows")
        if min(dims) < 1:
            raise ValueError(f"line {no}: dims are 1-based, got {min(dims)}")
        out.append(InterpretationSegment(start, end, dims))
    return tuple(out)


#: The keys averaged into ``mean`` by ``gpu-risk evaluate``.
MEAN_KEYS: tuple[str, ...] = (
    "f1_point",
    "f1_event",
    "f1_point_adjusted",
    "roc_auc",
    "hit_at_100",
    "hit_at_150",
)


@dataclass(frozen=True)
class EvaluationSettings:
    """The one setting used for every machine (chosen a priori, never per machine)."""

    detector: str = "iforest"
    quantile: float = 0.99
    max_train_rows: int = 20_000
    random_state: int = 0
    attribution_floor: float = 0.01


def subsample_rows(n_rows: int, max_rows: int, random_state: int = 0) -> npt.NDArray[np.intp]:
    """Return sorted row indices: all rows, or ``max_rows`` drawn without replacement (seeded).

    Parameters
    ----------
    n_rows : int
        Rows available.
    max_rows : int
        Upper bound on rows kept (<= 0 keeps all).
    random_state : int
        Seed of the draw.

    Returns
    -------
    numpy.ndarray
        Sorted indices into the rows.
    """
    if max_rows <= 0 or n_rows <= max_rows:
        return np.arange(n_rows)
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n_rows, size=max_rows, replace=False))


def evaluate_series(
    train: npt.ArrayLike,
    test: npt.ArrayLike,
    labels: npt.ArrayLike,
    interpretation: Sequence[InterpretationSegment] = (),
    settings: EvaluationSettings | None = None,
) -> dict[str, float | int | None]:
    """Fit a detector on ``train``, score ``test`` and report every protocol's numbers.

    The threshold is the ``settings.quantile`` of the training scores: test labels are used only
    to compute the metrics, never to choose anything.

    Parameters
    ----------
    train : array_like
        (T, D) anomaly-free rows.
    test : array_like
        (T', D) rows to score.
    labels : array_like
        (T',) 0/1 ground truth of the test rows.
    interpretation : Sequence[InterpretationSegment]
        Labelled segments with their cause dims (1-based), for Hit@100% / Hit@150%.
    settings : EvaluationSettings, optional
        Detector name, threshold quantile, training subsample size, seed, attribution floor.

    Returns
    -------
    dict
        ``f1_point``, ``f1_event``, ``f1_point_adjusted`` (with precision/recall of each),
        ``roc_auc``, ``hit_at_100``, ``hit_at_150``, ``threshold``, ``flagged_rate``,
        ``anomaly_rate``, ``test_rows``, ``train_rows_used``, ``segments``.
    """
    from analysis.attribution import RobustZAttributor
    from analysis.detectors import make_detector

    cfg = settings or EvaluationSettings()
    x_train = np.asarray(train, dtype=np.float64)
    x_test = np.asarray(test, dtype=np.float64)
    y = np.asarray(labels).astype(int)
    rows = subsample_rows(x_train.shape[0], cfg.max_train_rows, cfg.random_state)
    fit_rows = x_train[rows]
    det = make_detector(cfg.detector, random_state=cfg.random_state).fit(fit_rows)
    train_scores = det.decision_function(fit_rows)
    test_scores = det.decision_function(x_test)
    threshold = quantile_threshold(train_scores, cfg.quantile)
    pred = (test_scores > threshold).astype(int)
    pw = point_metrics(y, pred)
    ev = event_metrics(y, pred)
    pa = point_adjusted_metrics(y, pred)
    hit100 = hit150 = math.nan
    if interpretation:
        attributor = RobustZAttributor(floor=cfg.attribution_floor).fit(x_train)
        ranks = [attributor.rank(x_test[s.start : s.end]) for s in interpretation]
        truths = [s.dims for s in interpretation]
        hit100 = hit_at_p(ranks, truths, 100)
        hit150 = hit_at_p(ranks, truths, 150)
    return {
        "f1_point": json_round(pw.f1),
        "precision_point": json_round(pw.precision),
        "recall_point": json_round(pw.recall),
        "f1_event": json_round(ev.f1),
        "precision_event": json_round(ev.precision),
        "recall_event": json_round(ev.recall),
        "f1_point_adjusted": json_round(pa.f1),
        "precision_point_adjusted": json_round(pa.precision),
        "recall_point_adjusted": json_round(pa.recall),
        "roc_auc": json_round(roc_auc(y, test_scores)),
        "hit_at_100": json_round(hit100),
        "hit_at_150": json_round(hit150),
        "threshold": json_round(threshold, 6),
        "flagged_rate": json_round(float(pred.mean())),
        "anomaly_rate": json_round(float(y.mean())),
        "test_rows": int(x_test.shape[0]),
        "train_rows_used": int(rows.size),
        "segments": len(interpretation),
    }


def mean_table(machines: Mapping[str, Mapping[str, Any]]) -> dict[str, float | None]:
    """Return the per-key mean over machines of :data:`MEAN_KEYS` (undefined values skipped)."""
    return {key: json_round(nanmean(m.get(key) for m in machines.values())) for key in MEAN_KEYS}
