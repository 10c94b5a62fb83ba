"""Backtest scoring: a detector's incident log against ground-truth faults.

Given ground-truth faults and a detector's incident log, :func:`score_detector` computes recall,
precision, lead time, false incidents per 1,000 GPU-days, root-cause accuracy and explanation
top-1/top-3 accuracy; :func:`compare_detectors` does it for several detectors at once. Pure
functions over dataclasses and datetimes; no clock, no I/O.

Matching rules (also in the README and ``docs/evaluation-smd.md``):

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

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from analysis.evaluation.numeric import json_round, ratio
from analysis.types import Fault, format_time

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
            "lead_minutes": json_round(self.lead_minutes),
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
            {f"p{q}": json_round(float(np.percentile(leads, q))) for q in (10, 25, 50, 75, 90)}
            if leads.size
            else {}
        )
        return {
            "recall": json_round(self.recall),
            "precision": json_round(self.precision),
            "median_lead_minutes": json_round(self.median_lead_minutes),
            "lead_minutes": [json_round(v) for v in self.lead_minutes],
            "lead_minutes_distribution": dist,
            "false_incidents_per_1k_gpu_days": json_round(self.false_incidents_per_1k_gpu_days),
            "root_cause_accuracy": json_round(self.root_cause_accuracy),
            "explanation_top1": json_round(self.explanation_top1),
            "explanation_top3": json_round(self.explanation_top3),
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
            "gpu_days": json_round(self.gpu_days),
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


def _opened_in(incident: IncidentRecord, lo: datetime, hi: datetime | None) -> bool:
    """Return whether the incident opened in ``[lo, hi)`` (``hi=None``: no upper bound)."""
    return incident.opened_at >= lo and (hi is None or incident.opened_at < hi)


def _explained(kind: str, factors: Sequence[str], expected: Mapping[str, Sequence[str]]) -> bool:
    """Return whether one of ``factors`` is an expected cause of a fault of ``kind``."""
    return any(factor_matches(kind, name, expected) for name in factors)


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
        late = fault.failure + grace if fault.failure is not None else None
        true_ids.update(r.id for r in hits if _opened_in(r, lo, late))
        warnings = [r for r in hits if _opened_in(r, lo, fault.failure)]
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
            top1 = _explained(fault.kind, first.factors[:1], expected_factors)
            top3 = _explained(fault.kind, first.factors[:3], expected_factors)
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
        recall=ratio(len(warned), len(outcomes)),
        n_incidents=len(log),
        n_true_incidents=len(true_ids),
        precision=ratio(len(true_ids), len(log)),
        lead_minutes=leads,
        median_lead_minutes=float(np.median(leads)) if leads else None,
        n_false_incidents=n_false,
        false_incidents_per_1k_gpu_days=(n_false / gpu_days * 1000.0) if gpu_days > 0 else None,
        n_shared_faults=len(rc_cases),
        root_cause_accuracy=ratio(sum(rc_cases), len(rc_cases)),
        n_explained_faults=len(t1),
        explanation_top1=ratio(sum(t1), len(t1)),
        explanation_top3=ratio(sum(t3), len(t3)),
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
