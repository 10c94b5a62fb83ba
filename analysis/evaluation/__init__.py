"""Evaluation arithmetic: backtest scoring of incident logs, anomaly-detection F1s, Hit@P%.

Pure functions over arrays, dataclasses and datetimes; no clock, no I/O. Two families:

* **Backtest arithmetic** (:mod:`analysis.evaluation.backtest`): given ground-truth faults and
  a detector's incident log, compute strict and loose recall, precision, lead time, false
  incidents per 1,000 GPU-days, root-cause accuracy and explanation top-1/top-3 accuracy (the
  matching rules are in :mod:`analysis.evaluation.matching`); :mod:`analysis.evaluation.matrix`
  aggregates many scenarios with bootstrap intervals (:mod:`analysis.evaluation.bootstrap`).
* **Labelled-series arithmetic** (:mod:`analysis.evaluation.series`): point-wise, event-level and
  point-adjusted F1, ROC-AUC, thresholds and Hit@P% on SMD-style data; run end to end on one
  labelled machine by :mod:`analysis.evaluation.smd` (what ``gpu-risk evaluate`` reports).

Every name is re-exported here, so ``from analysis.evaluation import ...`` keeps working.
"""

from analysis.evaluation.backtest import (
    EXPECTED_FACTORS,
    SHARED_FAULT_KINDS,
    BacktestReport,
    BenignKindScore,
    DetectorScore,
    FaultOutcome,
    IncidentRecord,
    compare_detectors,
    factor_matches,
    gpu_days_of,
    score_detector,
    touches,
)
from analysis.evaluation.bootstrap import Interval, bootstrap_ratio
from analysis.evaluation.matching import (
    component_ids,
    fault_level,
    names_target,
)
from analysis.evaluation.numeric import nanmean
from analysis.evaluation.series import (
    PRF,
    IntArray,
    event_metrics,
    hit_at_p,
    point_adjust,
    point_adjusted_metrics,
    point_metrics,
    quantile_threshold,
    roc_auc,
    segments,
)
from analysis.evaluation.smd import (
    MEAN_KEYS,
    EvaluationSettings,
    InterpretationSegment,
    evaluate_series,
    mean_table,
    parse_interpretation,
    subsample_rows,
)

__all__ = [
    "EXPECTED_FACTORS",
    "MEAN_KEYS",
    "PRF",
    "SHARED_FAULT_KINDS",
    "BacktestReport",
    "BenignKindScore",
    "DetectorScore",
    "EvaluationSettings",
    "FaultOutcome",
    "IncidentRecord",
    "IntArray",
    "InterpretationSegment",
    "Interval",
    "bootstrap_ratio",
    "compare_detectors",
    "component_ids",
    "evaluate_series",
    "event_metrics",
    "factor_matches",
    "fault_level",
    "gpu_days_of",
    "hit_at_p",
    "mean_table",
    "names_target",
    "nanmean",
    "parse_interpretation",
    "point_adjust",
    "point_adjusted_metrics",
    "point_metrics",
    "quantile_threshold",
    "roc_auc",
    "score_detector",
    "segments",
    "subsample_rows",
    "touches",
]
