"""Backtest scoring: a detector's incident log against ground-truth faults.

Given ground-truth faults and a detector's incident log, :func:`score_detector` computes recall,
precision, lead time, false incidents per 1,000 GPU-days, root-cause accuracy and explanation
top-1/top-3 accuracy; :func:`compare_detectors` does it for several detectors at once. Pure
functions over dataclasses and datetimes; no clock, no I/O.

Matching rules (also in ``docs/evaluation.md``; the strict/loose rules themselves are in
:mod:`analysis.evaluation.matching`):

* **Loose** (today's overlap rule): an incident *touches* a fault when it shares a GPU with
  ``fault.affected``, or its root cause is the fault's ``target`` or one of its affected GPUs.
  A fault is *warned* by the first touching incident opened in ``[onset - slack, failure)``; its
  lead time is ``failure - opened_at`` in minutes. An incident opened at or after the failure is
  no warning (the fault is *missed*). A fault with ``failure=None`` is warned by any touching
  incident opened at or after ``onset - slack``; its lead time is undefined (``None``).
* **Strict**: the same window, but only incidents whose root cause *names the target* count
  (:func:`analysis.evaluation.matching.names_target`): a rack or component incident over a
  node's fault is a loose warning, not a strict one.
* An incident is *true* when it touches some fault and opened in
  ``[onset - slack, failure + grace)`` of that fault (grace: a page right after the failure is
  late but not false); every other incident is *false* (e.g. an incident on a healthy GPU).
* *Shared-component* faults are those whose target is a component of the topology
  (``shared_targets``), whatever their kind; without a topology, the kinds of
  :data:`SHARED_FAULT_KINDS`. Root-cause accuracy: the (loose) warning incident's root cause id
  equals the target. *One incident*: exactly one incident touches the fault in
  ``[onset - slack, failure + grace)`` and it names the component.
* *GPUs paged*: distinct GPUs of the incidents touching the fault in that window, against the
  fault's affected GPUs. *Escalated*: a node fault warned through a rack or component incident.
* *False all-clear*: a warning incident closed before the fault's repair (``repairs``, or
  ``failure + repair_after``): the bot said "resolved" about hardware that was still failing.
* Explanation top-1/top-3: the warning incident's first / first three factor names must contain
  (case-insensitive substring) one of the tokens :data:`EXPECTED_FACTORS` lists for the fault's
  kind (``top1_strict``: of the strict warning). Faults whose kind has no entry are left out of
  that denominator. A warning without factors counts as wrong, but a detector none of whose
  incidents carries factors (e.g. static rules) gets ``None`` (undefined), not 0.
* Benign events: incidents that answer no fault but touch a benign event in
  ``[start, end + grace)`` are pages during it, counted per event kind.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from analysis.evaluation.matching import (
    UPSTREAM_KINDS,
    benign_pages,
    false_all_clear,
    fault_level,
    names_target,
    opened_in,
    touches,
)
from analysis.evaluation.numeric import ratio
from analysis.evaluation.records import (
    BacktestReport,
    BenignKindScore,
    DetectorScore,
    FaultOutcome,
    IncidentRecord,
    precursor_minutes,
    visible_minutes,
)
from analysis.types import BenignEvent, Fault

__all__ = [
    "EXPECTED_FACTORS",
    "SHARED_FAULT_KINDS",
    "BacktestReport",
    "BenignKindScore",
    "DetectorScore",
    "FaultOutcome",
    "IncidentRecord",
    "compare_detectors",
    "factor_matches",
    "gpu_days_of",
    "score_detector",
    "touches",
]

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


def _explained(kind: str, factors: Sequence[str], expected: Mapping[str, Sequence[str]]) -> bool:
    """Return whether one of ``factors`` is an expected cause of a fault of ``kind``."""
    return any(factor_matches(kind, name, expected) for name in factors)


def _first(records: Sequence[IncidentRecord]) -> IncidentRecord | None:
    """Return the first record, None when there is none."""
    return records[0] if records else None


def _lead(fault: Fault, incident: IncidentRecord | None) -> float | None:
    """Return ``failure - opened_at`` in minutes (None without failure or incident)."""
    if fault.failure is None or incident is None:
        return None
    return (fault.failure - incident.opened_at).total_seconds() / 60.0


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
    benign: Sequence[BenignEvent] = (),
    repairs: Mapping[str, datetime] | None = None,
    repair_after: timedelta = timedelta(0),
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
        Fault kinds whose target is a shared component (a fallback for callers without a
        topology; a target in ``shared_targets`` is shared whatever its kind).
    shared_targets : Collection[str]
        The topology's component ids (:func:`analysis.evaluation.matching.component_ids`):
        decides shared-component faults and the strict rule's component level.
    benign : Sequence[BenignEvent]
        Ground-truth benign events: pages during them are counted per kind.
    repairs : Mapping[str, datetime], optional
        Fault id -> when the hardware was healthy again (for false all-clears).
    repair_after : timedelta
        Without a ``repairs`` entry, the repair is taken as ``failure + repair_after`` (a lower
        bound; the default 0 only catches incidents resolved before the failure).

    Returns
    -------
    DetectorScore
        Loose and strict recall and lead times, precision, false incidents per 1,000 GPU-days,
        root-cause and explanation accuracies, one-incident rate of shared-component faults,
        escalated node faults, false all-clears, benign pages, one :class:`FaultOutcome` per
        fault.

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
    shared = frozenset(shared_targets)
    fixed = repairs or {}
    for fault in faults:
        level = fault_level(fault, shared)
        lo = fault.onset - slack
        late = fault.failure + grace if fault.failure is not None else None
        hits = [r for r in log if touches(r, fault)]
        in_window = [r for r in hits if opened_in(r, lo, late)]
        true_ids.update(r.id for r in in_window)
        warnings = [r for r in hits if opened_in(r, lo, fault.failure)]
        strict = [r for r in warnings if names_target(r, fault, level)]
        first, first_strict = _first(warnings), _first(strict)
        is_shared = level == "component" or fault.kind in shared_kinds
        explained = explains and fault.kind in expected_factors
        repair = fixed.get(fault.id) or (
            fault.failure + repair_after if fault.failure is not None else None
        )
        outcomes.append(
            FaultOutcome(
                fault.id,
                fault.kind,
                warned=first is not None,
                warned_at=first.opened_at if first else None,
                lead_minutes=_lead(fault, first),
                incident_id=first.id if first else None,
                root_cause_correct=(first.root_cause_id == fault.target)
                if first and is_shared
                else None,
                top1=_explained(fault.kind, first.factors[:1], expected_factors)
                if first and explained
                else None,
                top3=_explained(fault.kind, first.factors[:3], expected_factors)
                if first and explained
                else None,
                level=level,
                precursor_minutes=precursor_minutes(fault),
                visible_minutes=visible_minutes(fault),
                warned_strict=first_strict is not None,
                lead_minutes_strict=_lead(fault, first_strict),
                incident_strict=first_strict.id if first_strict else None,
                top1_strict=_explained(fault.kind, first_strict.factors[:1], expected_factors)
                if first_strict and explained
                else None,
                factors_strict=first_strict.factors[:3] if first_strict else (),
                gpus_affected=len(set(fault.affected)),
                gpus_paged=len({g for r in in_window for g in r.gpus}),
                one_incident=(len(in_window) == 1 and names_target(in_window[0], fault, level))
                if is_shared
                else None,
                escalated=any(
                    r.root_cause_kind in UPSTREAM_KINDS or r.root_cause_id in shared
                    for r in warnings
                )
                if level == "node"
                else None,
                false_all_clear=false_all_clear(warnings, fault, repair),
            )
        )
    return _summarise(
        detector,
        outcomes,
        log=log,
        true_ids=true_ids,
        gpu_days=gpu_days,
        benign=benign,
        grace=grace,
    )


def _summarise(
    detector: str,
    outcomes: Sequence[FaultOutcome],
    *,
    log: Sequence[IncidentRecord],
    true_ids: set[str],
    gpu_days: float,
    benign: Sequence[BenignEvent],
    grace: timedelta,
) -> DetectorScore:
    """Fold per-fault outcomes and the log into one detector's row."""
    warned = [o for o in outcomes if o.warned]
    strict = [o for o in outcomes if o.warned_strict]
    leads = tuple(o.lead_minutes for o in warned if o.lead_minutes is not None)
    leads_strict = tuple(o.lead_minutes_strict for o in strict if o.lead_minutes_strict is not None)
    rc_cases = [o.root_cause_correct for o in warned if o.root_cause_correct is not None]
    t1 = [o.top1 for o in warned if o.top1 is not None]
    t3 = [o.top3 for o in warned if o.top3 is not None]
    t1s = [o.top1_strict for o in strict if o.top1_strict is not None]
    ones = [o.one_incident for o in outcomes if o.one_incident is not None]
    nodes = [o for o in outcomes if o.level == "node"]
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
        n_warned_strict=len(strict),
        recall_strict=ratio(len(strict), len(outcomes)),
        lead_minutes_strict=leads_strict,
        median_lead_minutes_strict=float(np.median(leads_strict)) if leads_strict else None,
        n_component_faults=len(ones),
        n_one_incident=sum(ones),
        one_incident_rate=ratio(sum(ones), len(ones)),
        n_node_faults=len(nodes),
        n_escalated=sum(bool(o.escalated) for o in nodes),
        n_false_all_clear=sum(o.false_all_clear for o in outcomes),
        gpus_affected=sum(o.gpus_affected for o in outcomes),
        gpus_paged=sum(o.gpus_paged for o in outcomes),
        n_explained_strict=len(t1s),
        explanation_top1_strict=ratio(sum(t1s), len(t1s)),
        benign=benign_pages(benign, log, true_ids, grace=grace),
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
