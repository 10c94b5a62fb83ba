"""Evaluation arithmetic: backtest scoring of incident logs, anomaly-detection F1s, Hit@P%.

Pure functions over arrays, dataclasses and datetimes; no clock, no I/O. Two families:

* **Backtest arithmetic** (:func:`score_detector`, :func:`compare_detectors`): given ground-truth
  faults and a detector's incident log, compute recall, precision, lead time, false incidents per
  1,000 GPU-days, root-cause accuracy and explanation top-1/top-3 accuracy.
* **Labelled-series arithmetic** (:func:`point_metrics`, :func:`point_adjust`,
  :func:`event_metrics`, :func:`roc_auc`, :func:`quantile_threshold`, :func:`hit_at_p`): the
  numbers ``gpu-risk evaluate`` reports on SMD-style data.

Matching rules of the backtest (also in the README and ``docs/evaluation-smd.md``):

* An incident *touches* a fault when it shares a GPU with ``fault.affected``, or its root cause is
  the fault's ``target`` or one of its affected GPUs.
* A fault is *warned* by the first touching incident opened in ``[onset - slack, failure)``; its
  lead time is ``failure - opened_at`` in minutes. An incident opened at or after the failure is
  no warning (the fault is *missed*). A fault with ``failure=None`` is warned by any touching
  incident opened at or after ``onset - slack``; its lead time is undefined (``None``).
* An incident is *true* when it touches some fault and opened in
  ``[onset - slack, failure + grace)`` of that fault (grace: a page right after the failure is
  late but not false); every other incident is *false* (e.g. an incident on a healthy GPU).
* Root-cause accuracy is measured on *shared-component* faults (kind pdu/cooling/switch/rack, or
  target in ``shared_targets``) that were warned: the warning incident's root cause id must equal
  the fault's target.
* Explanation top-1/top-3: the warning incident's first / first three factor names must contain
  (case-insensitive substring) one of the tokens :data:`EXPECTED_FACTORS` lists for the fault's
  kind. Faults whose kind has no entry are left out of that denominator. A warning without factors
  counts as wrong, but a detector none of whose incidents carries factors (e.g. static rules)
  gets ``None`` (undefined), not 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.types import Fault, format_time

# --------------------------------------------------------------------------------------------
# Backtest arithmetic
# --------------------------------------------------------------------------------------------

#: Fault kind -> tokens of the factor names that count as the right explanation. A factor name
#: matches when it contains one of the tokens (case-insensitive). DCGM / ipmi / component metric
#: names as the simulator and real exporters emit them, plus short human names.
EXPECTED_FACTORS: Mapping[str, tuple[str, ...]] = {
    "fan": ("ipmi_fan_speed", "fan"),
    "thermal_interface": ("DCGM_FI_DEV_GPU_TEMP", "gpu_temp", "thermal_interface"),
    "thermal": ("DCGM_FI_DEV_GPU_TEMP", "gpu_temp", "THERMAL_VIOLATION"),
    "hbm": (
        "ECC_SBE",
        "ECC_DBE",
        "REMAPPED_ROWS",
        "ROW_REMAP",
        "XID",
        "ecc",
        "hbm",
    ),
    "nvlink": ("NVLINK", "XID"),
    "pcie": ("PCIE_REPLAY", "pcie", "XID"),
    "pdu": ("pdu", "voltage", "volts", "POWER_VIOLATION", "psu"),
    "psu": ("pdu", "voltage", "volts", "POWER_VIOLATION", "psu"),
    # ipmi_temperature_celsius is the node's inlet sensor in the explanation's template
    "cooling": ("crac", "cdu", "supply_air", "supply_temp", "inlet", "ipmi_temperature", "cooling"),
    "switch": ("switch", "port_error", "leaf", "network"),
}

#: Fault kinds whose target is a shared upstream component (root-cause accuracy applies).
SHARED_FAULT_KINDS: frozenset[str] = frozenset({"pdu", "psu", "cooling", "switch", "rack"})


@dataclass(frozen=True)
class IncidentRecord:
    """One incident in a detector's log: when it opened, what it blamed, which GPUs, top factors.

    ``gpus`` are ``<node>/<gpu>`` keys; ``factors`` are factor names in explanation order.
    """

    id: str
    opened_at: datetime
    root_cause_id: str
    root_cause_kind: str
    gpus: tuple[str, ...] = ()
    factors: tuple[str, ...] = ()
    closed_at: datetime | None = None


@dataclass(frozen=True)
class FaultOutcome:
    """How one detector did on one fault."""

    fault_id: str
    kind: str
    warned: bool
    warned_at: datetime | None = None
    lead_minutes: float | None = None
    incident_id: str | None = None
    root_cause_correct: bool | None = None
    top1: bool | None = None
    top3: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the per-fault JSON cell of the backtest table."""
        return {
            "warned": self.warned,
            "warned_at": format_time(self.warned_at) if self.warned_at else None,
            "lead_minutes": _round(self.lead_minutes),
            "incident": self.incident_id,
            "root_cause_correct": self.root_cause_correct,
            "top1": self.top1,
            "top3": self.top3,
        }


@dataclass(frozen=True)
class DetectorScore:
    """One detector's row of the backtest table (``None`` = undefined, e.g. nothing to measure)."""

    detector: str
    n_faults: int
    n_warned: int
    recall: float | None
    n_incidents: int
    n_true_incidents: int
    precision: float | None
    lead_minutes: tuple[float, ...]
    median_lead_minutes: float | None
    n_false_incidents: int
    false_incidents_per_1k_gpu_days: float | None
    n_shared_faults: int
    root_cause_accuracy: float | None
    n_explained_faults: int
    explanation_top1: float | None
    explanation_top3: float | None
    outcomes: tuple[FaultOutcome, ...] = field(default=(), repr=False)

    def as_dict(self) -> dict[str, Any]:
        """Return the detector's JSON object in issue 7's ``detectors`` shape."""
        leads = np.asarray(self.lead_minutes, dtype=float)
        dist = (
            {f"p{q}": _round(float(np.percentile(leads, q))) for q in (10, 25, 50, 75, 90)}
            if leads.size
            else {}
        )
        return {
            "recall": _round(self.recall),
            "precision": _round(self.precision),
            "median_lead_minutes": _round(self.median_lead_minutes),
            "lead_minutes": [_round(v) for v in self.lead_minutes],
            "lead_minutes_distribution": dist,
            "false_incidents_per_1k_gpu_days": _round(self.false_incidents_per_1k_gpu_days),
            "root_cause_accuracy": _round(self.root_cause_accuracy),
            "explanation_top1": _round(self.explanation_top1),
            "explanation_top3": _round(self.explanation_top3),
            "faults": self.n_faults,
            "warned": self.n_warned,
            "incidents": self.n_incidents,
            "true_incidents": self.n_true_incidents,
            "false_incidents": self.n_false_incidents,
            "shared_faults_warned": self.n_shared_faults,
            "explained_faults": self.n_explained_faults,
        }


@dataclass(frozen=True)
class BacktestReport:
    """Every detector's score and the per-fault table, in one object."""

    detectors: Mapping[str, DetectorScore]
    faults: tuple[Fault, ...]
    gpu_days: float

    def as_dict(self) -> dict[str, Any]:
        """Return issue 7's JSON: ``{"detectors": {...}, "faults": [{"id", "<detector>": ...}]}``."""
        rows: list[dict[str, Any]] = []
        by_detector = {
            name: {o.fault_id: o for o in score.outcomes} for name, score in self.detectors.items()
        }
        for fault in self.faults:
            row: dict[str, Any] = {
                "id": fault.id,
                "kind": fault.kind,
                "target": fault.target,
                "onset": format_time(fault.onset),
                "failure": format_time(fault.failure) if fault.failure else None,
            }
            for name, outcomes in by_detector.items():
                row[name] = outcomes[fault.id].as_dict()
            rows.append(row)
        return {
            "gpu_days": _round(self.gpu_days),
            "detectors": {name: s.as_dict() for name, s in self.detectors.items()},
            "faults": rows,
        }


def touches(incident: IncidentRecord, fault: Fault) -> bool:
    """Return whether an incident concerns a fault's GPUs or its target.

    Parameters
    ----------
    incident : IncidentRecord
        The incident.
    fault : Fault
        The ground-truth fault.

    Returns
    -------
    bool
        True when the incident shares a GPU with ``fault.affected``, or its root cause id is the
        fault's target or one of its affected GPUs.
    """
    affected = set(fault.affected)
    if affected.intersection(incident.gpus):
        return True
    return incident.root_cause_id == fault.target or incident.root_cause_id in affected


def factor_matches(kind: str, name: str, expected: Mapping[str, Sequence[str]]) -> bool:
    """Return whether factor ``name`` is an expected cause of a fault of ``kind``.

    Parameters
    ----------
    kind : str
        The fault kind (e.g. ``fan``).
    name : str
        A factor name from an explanation.
    expected : Mapping[str, Sequence[str]]
        Fault kind -> tokens, see :data:`EXPECTED_FACTORS`.

    Returns
    -------
    bool
        True when ``name`` contains one of the kind's tokens, case-insensitively.
    """
    low = name.lower()
    return any(token.lower() in low for token in expected.get(kind, ()))


def score_detector(
    faults: Sequence[Fault],
    incidents: Iterable[IncidentRecord],
    gpu_days: float,
    *,
    detector: str = "",
    slack: timedelta = timedelta(minutes=30),
    grace: timedelta = timedelta(hours=1),
    expected_factors: Mapping[str, Sequence[str]] = EXPECTED_FACTORS,
    shared_kinds: Collection[str] = SHARED_FAULT_KINDS,
    shared_targets: Collection[str] = (),
) -> DetectorScore:
    """Score one detector's incident log against ground-truth faults.

    Parameters
    ----------
    faults : Sequence[Fault]
        Ground truth (simulator ``faults.json`` or a user's incident history).
    incidents : Iterable[IncidentRecord]
        The detector's incidents over the replayed period.
    gpu_days : float
        Number of GPUs times the replayed days (denominator of the false-incident rate).
    detector : str
        Name carried into the result.
    slack : timedelta
        How long before a fault's onset an incident may open and still count for it.
    grace : timedelta
        How long after a failure a touching incident still counts as true (never as a warning).
    expected_factors : Mapping[str, Sequence[str]]
        Fault kind -> factor-name tokens for explanation accuracy.
    shared_kinds : Collection[str]
        Fault kinds whose target is a shared component.
    shared_targets : Collection[str]
        Extra targets to treat as shared components (e.g. the topology's component ids).

    Returns
    -------
    DetectorScore
        Recall, precision, lead times, false incidents per 1,000 GPU-days, root-cause and
        explanation accuracies, and one :class:`FaultOutcome` per fault.

    Raises
    ------
    ValueError
        When ``gpu_days`` is negative.
    """
    if gpu_days < 0:
        raise ValueError(f"gpu_days must be >= 0, got {gpu_days}")
    log = sorted(incidents, key=lambda r: (r.opened_at, r.id))
    explains = any(r.factors for r in log)  # a detector that never explains: accuracy undefined
    outcomes: list[FaultOutcome] = []
    true_ids: set[str] = set()
    shared = set(shared_targets)
    for fault in faults:
        lo = fault.onset - slack
        hits = [r for r in log if touches(r, fault)]
        for r in hits:
            if r.opened_at >= lo and (fault.failure is None or r.opened_at < fault.failure + grace):
                true_ids.add(r.id)
        warnings = [
            r
            for r in hits
            if r.opened_at >= lo and (fault.failure is None or r.opened_at < fault.failure)
        ]
        if not warnings:
            outcomes.append(FaultOutcome(fault.id, fault.kind, warned=False))
            continue
        first = warnings[0]
        lead = (
            (fault.failure - first.opened_at).total_seconds() / 60.0
            if fault.failure is not None
            else None
        )
        is_shared = fault.kind in shared_kinds or fault.target in shared
        rc = first.root_cause_id == fault.target if is_shared else None
        top1: bool | None = None
        top3: bool | None = None
        if explains and fault.kind in expected_factors:
            top1 = any(factor_matches(fault.kind, n, expected_factors) for n in first.factors[:1])
            top3 = any(factor_matches(fault.kind, n, expected_factors) for n in first.factors[:3])
        outcomes.append(
            FaultOutcome(
                fault.id,
                fault.kind,
                warned=True,
                warned_at=first.opened_at,
                lead_minutes=lead,
                incident_id=first.id,
                root_cause_correct=rc,
                top1=top1,
                top3=top3,
            )
        )
    warned = [o for o in outcomes if o.warned]
    leads = tuple(o.lead_minutes for o in warned if o.lead_minutes is not None)
    rc_cases = [o.root_cause_correct for o in warned if o.root_cause_correct is not None]
    t1 = [o.top1 for o in warned if o.top1 is not None]
    t3 = [o.top3 for o in warned if o.top3 is not None]
    n_false = len(log) - len(true_ids)
    return DetectorScore(
        detector=detector,
        n_faults=len(outcomes),
        n_warned=len(warned),
        recall=_ratio(len(warned), len(outcomes)),
        n_incidents=len(log),
        n_true_incidents=len(true_ids),
        precision=_ratio(len(true_ids), len(log)),
        lead_minutes=leads,
        median_lead_minutes=float(np.median(leads)) if leads else None,
        n_false_incidents=n_false,
        false_incidents_per_1k_gpu_days=(n_false / gpu_days * 1000.0) if gpu_days > 0 else None,
        n_shared_faults=len(rc_cases),
        root_cause_accuracy=_ratio(sum(rc_cases), len(rc_cases)),
        n_explained_faults=len(t1),
        explanation_top1=_ratio(sum(t1), len(t1)),
        explanation_top3=_ratio(sum(t3), len(t3)),
        outcomes=tuple(outcomes),
    )


def compare_detectors(
    faults: Sequence[Fault],
    logs: Mapping[str, Iterable[IncidentRecord]],
    gpu_days: float,
    **options: Any,
) -> BacktestReport:
    """Score several detectors' logs against the same faults.

    Parameters
    ----------
    faults : Sequence[Fault]
        Ground truth.
    logs : Mapping[str, Iterable[IncidentRecord]]
        Detector name -> its incident log.
    gpu_days : float
        GPUs times replayed days.
    **options
        Passed to :func:`score_detector` (``slack``, ``grace``, ``expected_factors``, ...).

    Returns
    -------
    BacktestReport
        Per-detector rows and the per-fault table (``as_dict()`` gives issue 7's JSON).
    """
    scores = {
        name: score_detector(faults, log, gpu_days, detector=name, **options)
        for name, log in logs.items()
    }
    return BacktestReport(detectors=scores, faults=tuple(faults), gpu_days=float(gpu_days))


def gpu_days_of(n_gpus: int, start: datetime, end: datetime) -> float:
    """Return ``n_gpus`` times the days between ``start`` and ``end``.

    Parameters
    ----------
    n_gpus : int
        GPUs in the fleet.
    start, end : datetime
        The replayed period.

    Returns
    -------
    float
        GPU-days (0 when ``end <= start``).
    """
    days = max((end - start).total_seconds(), 0.0) / 86400.0
    return float(n_gpus) * days


# --------------------------------------------------------------------------------------------
# Labelled-series arithmetic
# --------------------------------------------------------------------------------------------

IntArray = npt.NDArray[np.int_]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1 of one protocol."""

    precision: float
    recall: float
    f1: float


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


def _prf(tp: float, fp: float, fn: float) -> PRF:
    """Return P/R/F1 from counts, 0 where a denominator is 0 (sklearn's zero_division=0)."""
    p = tp / (tp + fp) if tp + fp > 0 else 0.0
    r = tp / (tp + fn) if tp + fn > 0 else 0.0
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return PRF(float(p), float(r), float(f))


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
    f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
    return PRF(float(prec), float(rec), float(f1))


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


def nanmean(values: Iterable[float | None]) -> float:
    """Return the mean of the finite values, NaN when there is none."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else math.nan


def _ratio(num: float, den: float) -> float | None:
    """Return num/den, None when den is 0."""
    return float(num) / float(den) if den else None


def _round(value: float | None, digits: int = 4) -> float | None:
    """Round for JSON, keeping None (and turning NaN into None)."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


# --------------------------------------------------------------------------------------------
# One labelled machine, end to end (detector + threshold + metrics + attribution)
# --------------------------------------------------------------------------------------------

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
        "f1_point": _round(pw.f1),
        "precision_point": _round(pw.precision),
        "recall_point": _round(pw.recall),
        "f1_event": _round(ev.f1),
        "precision_event": _round(ev.precision),
        "recall_event": _round(ev.recall),
        "f1_point_adjusted": _round(pa.f1),
        "precision_point_adjusted": _round(pa.precision),
        "recall_point_adjusted": _round(pa.recall),
        "roc_auc": _round(roc_auc(y, test_scores)),
        "hit_at_100": _round(hit100),
        "hit_at_150": _round(hit150),
        "threshold": _round(threshold, 6),
        "flagged_rate": _round(float(pred.mean())),
        "anomaly_rate": _round(float(y.mean())),
        "test_rows": int(x_test.shape[0]),
        "train_rows_used": int(rows.size),
        "segments": len(interpretation),
    }


def mean_table(machines: Mapping[str, Mapping[str, Any]]) -> dict[str, float | None]:
    """Return the per-key mean over machines of :data:`MEAN_KEYS` (undefined values skipped)."""
    return {key: _round(nanmean(m.get(key) for m in machines.values())) for key in MEAN_KEYS}
