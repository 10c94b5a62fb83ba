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
    """The one setting used for every machine (chosen a priori, never per machine).

    ``detector`` is ``tail`` (:class:`analysis.evaluation.smd_detector.TailSurpriseDetector`, which
    uses ``top_k`` and ``window`` and is fitted on every training row, in time order) or a name
    of :func:`analysis.detectors.make_detector` (fitted on a seeded ``max_train_rows``
    subsample). ``ranking`` is ``robust_z`` (mean ``|z|`` over the segment) or ``tail`` (each
    dimension's largest ``-log10 p`` over the segment).
    """

    detector: str = "iforest"
    quantile: float = 0.99
    max_train_rows: int = 20_000
    random_state: int = 0
    attribution_floor: float = 0.01
    window: int = 1
    top_k: int = 3
    ranking: str = "robust_z"


#: The setting ``gpu-risk evaluate`` reports, fixed on SMD group 1 before group 2 was run
#: (issue 11 part 9; figures that led to it in ``docs/evaluation-smd.md``): the tail guard's
#: top-3 per-feature surprise over a 5-minute trailing window, flagged above the 0.995 quantile
#: of the training rows' scores; causes ranked by per-dimension peak surprise.
FIXED_SETTING = EvaluationSettings(
    detector="tail", quantile=0.995, window=5, top_k=3, ranking="tail"
)
#: The plain Isolation Forest it is compared with: raw metrics, the same threshold rule (0.995
#: quantile of training scores), no window, the previous robust-z ranking.
BASELINE_SETTING = EvaluationSettings(detector="iforest", quantile=0.995)

#: SMD machine groups: develop and tune on group 1, report group 2 (fixed before any experiment).
DEV_PREFIX = "machine-1-"
REPORT_PREFIX = "machine-2-"


def machine_set(name: str) -> str:
    """Return ``dev`` (SMD group 1), ``report`` (group 2) or ``other`` for a machine name."""
    if name.startswith(DEV_PREFIX):
        return "dev"
    if name.startswith(REPORT_PREFIX):
        return "report"
    return "other"


def bootstrap_mean_ci(
    values: Sequence[float | None],
    resamples: int = 2_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float | None, float | None]:
    """Return the percentile bootstrap interval of the mean over machines (None when undefined).

    Parameters
    ----------
    values : Sequence[float | None]
        One value per machine; None/NaN are left out.
    resamples : int
        Bootstrap resamples (machines drawn with replacement).
    confidence : float
        Coverage of the interval.
    seed : int
        Seed of the resampling.

    Returns
    -------
    tuple
        (low, high), rounded for JSON; (None, None) with no finite value.
    """
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return None, None
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, arr.size, size=(resamples, arr.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    return json_round(float(np.quantile(means, tail))), json_round(
        float(np.quantile(means, 1.0 - tail))
    )


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
    from analysis.evaluation.smd_detector import TailSurpriseDetector

    cfg = settings or EvaluationSettings()
    x_train = np.asarray(train, dtype=np.float64)
    x_test = np.asarray(test, dtype=np.float64)
    y = np.asarray(labels).astype(int)
    tail: TailSurpriseDetector | None = None
    if cfg.detector == "tail":
        # Every training row, in time order: the trailing window needs the sequence.
        rows = np.arange(x_train.shape[0])
        tail = TailSurpriseDetector(cfg.top_k, cfg.window, cfg.attribution_floor).fit(x_train)
        train_scores = tail.decision_function(x_train)
        test_scores = tail.decision_function(x_test)
    else:
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
        ranker: RobustZAttributor | TailSurpriseDetector
        if cfg.ranking == "tail":
            ranker = tail or TailSurpriseDetector(floor=cfg.attribution_floor).fit(x_train)
        elif cfg.ranking == "robust_z":
            ranker = RobustZAttributor(floor=cfg.attribution_floor).fit(x_train)
        else:
            raise ValueError(f"unknown ranking {cfg.ranking!r}: choose robust_z or tail")
        ranks = [ranker.rank(x_test[s.start : s.end]) for s in interpretation]
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


def interval_table(machines: Mapping[str, Mapping[str, Any]]) -> dict[str, list[float | None]]:
    """Return a bootstrap 95 % interval over machines of the mean of each :data:`MEAN_KEYS`."""
    return {
        key: list(bootstrap_mean_ci([m.get(key) for m in machines.values()])) for key in MEAN_KEYS
    }
