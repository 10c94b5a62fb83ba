"""The backtest's data objects: an incident log entry, one fault's outcome, a detector's row.

Frozen dataclasses with their JSON forms; the arithmetic that fills them lives in
:mod:`analysis.evaluation.backtest` and :mod:`analysis.evaluation.matching`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from analysis.evaluation.numeric import json_round
from analysis.types import Fault, format_time, parse_time


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
class BenignKindScore:
    """Pages during benign events of one kind: events, events with a page, pages."""

    kind: str
    events: int
    events_paged: int
    pages: int

    def as_dict(self) -> dict[str, int]:
        """Return the JSON cell."""
        return {"events": self.events, "events_paged": self.events_paged, "pages": self.pages}

    @classmethod
    def from_dict(cls, kind: str, cell: Mapping[str, Any]) -> BenignKindScore:
        """The score :meth:`as_dict` wrote."""
        return cls(kind, int(cell["events"]), int(cell["events_paged"]), int(cell["pages"]))


@dataclass(frozen=True)
class FaultOutcome:
    """How one detector did on one fault, by the loose rule (``warned``...) and the strict one.

    ``one_incident`` is defined for shared-component faults only, ``escalated`` (warned through
    a rack or component incident) for node faults only; ``None`` elsewhere.
    """

    fault_id: str
    kind: str
    warned: bool
    warned_at: datetime | None = None
    lead_minutes: float | None = None
    incident_id: str | None = None
    root_cause_correct: bool | None = None
    top1: bool | None = None
    top3: bool | None = None
    level: str = "other"
    precursor_minutes: float | None = None
    #: Minutes from the precursor's signal start (its onset where not known) to the failure.
    visible_minutes: float | None = None
    warned_strict: bool = False
    lead_minutes_strict: float | None = None
    incident_strict: str | None = None
    top1_strict: bool | None = None
    #: The strict warning's first explanation factors (what it blamed, whether right or wrong).
    factors_strict: tuple[str, ...] = ()
    gpus_affected: int = 0
    gpus_paged: int = 0
    one_incident: bool | None = None
    escalated: bool | None = None
    false_all_clear: bool = False

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
            "level": self.level,
            "warned_strict": self.warned_strict,
            "lead_minutes_strict": json_round(self.lead_minutes_strict),
            "incident_strict": self.incident_strict,
            "top1_strict": self.top1_strict,
            "factors_strict": list(self.factors_strict),
            "gpus_affected": self.gpus_affected,
            "gpus_paged": self.gpus_paged,
            "one_incident": self.one_incident,
            "escalated": self.escalated,
            "false_all_clear": self.false_all_clear,
        }

    @classmethod
    def from_dict(cls, fault: Fault, cell: Mapping[str, Any]) -> FaultOutcome:
        """The outcome :meth:`as_dict` wrote as ``cell`` for ``fault`` (its precursor is the
        fault's failure minus its onset, as the backtest sets it; the visible part from its
        signal start)."""
        warned_at = cell.get("warned_at")
        return cls(
            fault_id=fault.id,
            kind=fault.kind,
            warned=bool(cell["warned"]),
            warned_at=parse_time(warned_at) if warned_at else None,
            lead_minutes=cell.get("lead_minutes"),
            incident_id=cell.get("incident"),
            root_cause_correct=cell.get("root_cause_correct"),
            top1=cell.get("top1"),
            top3=cell.get("top3"),
            level=str(cell.get("level", "other")),
            precursor_minutes=precursor_minutes(fault),
            visible_minutes=visible_minutes(fault),
            warned_strict=bool(cell.get("warned_strict", False)),
            lead_minutes_strict=cell.get("lead_minutes_strict"),
            incident_strict=cell.get("incident_strict"),
            top1_strict=cell.get("top1_strict"),
            factors_strict=tuple(cell.get("factors_strict", ())),
            gpus_affected=int(cell.get("gpus_affected", 0)),
            gpus_paged=int(cell.get("gpus_paged", 0)),
            one_incident=cell.get("one_incident"),
            escalated=cell.get("escalated"),
            false_all_clear=bool(cell.get("false_all_clear", False)),
        )


def precursor_minutes(fault: Fault) -> float | None:
    """Return the minutes from ``fault``'s onset to its failure (``None``: no failure)."""
    return (fault.failure - fault.onset).total_seconds() / 60.0 if fault.failure else None


def visible_minutes(fault: Fault) -> float | None:
    """Return the minutes from ``fault``'s signal start (its onset if unknown) to its failure."""
    if fault.failure is None:
        return None
    return (fault.failure - (fault.signal_start or fault.onset)).total_seconds() / 60.0


def _distribution(values: tuple[float, ...]) -> dict[str, float | None]:
    """Return p10/p25/p50/p75/p90 of ``values`` (empty dict without values)."""
    arr = np.asarray(values, dtype=float)
    if not arr.size:
        return {}
    return {f"p{q}": json_round(float(np.percentile(arr, q))) for q in (10, 25, 50, 75, 90)}


@dataclass(frozen=True)
class DetectorScore:
    """One detector's row of the backtest table (``None`` = undefined, e.g. nothing to measure).

    The unsuffixed recall/lead fields use the loose rule; ``*_strict`` the strict one.
    """

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
    n_warned_strict: int = 0
    recall_strict: float | None = None
    lead_minutes_strict: tuple[float, ...] = ()
    median_lead_minutes_strict: float | None = None
    n_component_faults: int = 0
    n_one_incident: int = 0
    one_incident_rate: float | None = None
    n_node_faults: int = 0
    n_escalated: int = 0
    n_false_all_clear: int = 0
    gpus_affected: int = 0
    gpus_paged: int = 0
    n_explained_strict: int = 0
    explanation_top1_strict: float | None = None
    benign: Mapping[str, BenignKindScore] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return the detector's JSON object in issue 7's ``detectors`` shape, plus issue 11's."""
        return {
            "recall": json_round(self.recall),
            "precision": json_round(self.precision),
            "median_lead_minutes": json_round(self.median_lead_minutes),
            "lead_minutes": [json_round(v) for v in self.lead_minutes],
            "lead_minutes_distribution": _distribution(self.lead_minutes),
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
            "strict": {
                "recall": json_round(self.recall_strict),
                "warned": self.n_warned_strict,
                "median_lead_minutes": json_round(self.median_lead_minutes_strict),
                "lead_minutes": [json_round(v) for v in self.lead_minutes_strict],
                "lead_minutes_distribution": _distribution(self.lead_minutes_strict),
                "explanation_top1": json_round(self.explanation_top1_strict),
                "explained_faults": self.n_explained_strict,
            },
            "component_faults": self.n_component_faults,
            "one_incident_naming_component": self.n_one_incident,
            "one_incident_rate": json_round(self.one_incident_rate),
            "node_faults": self.n_node_faults,
            "node_faults_escalated": self.n_escalated,
            "false_all_clear": self.n_false_all_clear,
            "gpus_affected": self.gpus_affected,
            "gpus_paged": self.gpus_paged,
            "benign": {kind: b.as_dict() for kind, b in self.benign.items()},
        }

    @classmethod
    def from_dict(
        cls,
        name: str,
        d: Mapping[str, Any],
        rows: Sequence[Mapping[str, Any]],
        faults: Sequence[Fault],
    ) -> DetectorScore:
        """The score :meth:`as_dict` wrote as ``d``, its outcomes from the backtest table's
        ``rows`` (each fault's cell under ``name``; ``faults``: the rows' faults, in order)."""
        strict = d.get("strict", {})
        return cls(
            detector=name,
            n_faults=int(d["faults"]),
            n_warned=int(d["warned"]),
            recall=d.get("recall"),
            n_incidents=int(d["incidents"]),
            n_true_incidents=int(d["true_incidents"]),
            precision=d.get("precision"),
            lead_minutes=tuple(d.get("lead_minutes", ())),
            median_lead_minutes=d.get("median_lead_minutes"),
            n_false_incidents=int(d["false_incidents"]),
            false_incidents_per_1k_gpu_days=d.get("false_incidents_per_1k_gpu_days"),
            n_shared_faults=int(d.get("shared_faults_warned", 0)),
            root_cause_accuracy=d.get("root_cause_accuracy"),
            n_explained_faults=int(d.get("explained_faults", 0)),
            explanation_top1=d.get("explanation_top1"),
            explanation_top3=d.get("explanation_top3"),
            outcomes=tuple(
                FaultOutcome.from_dict(f, r[name])
                for r, f in zip(rows, faults, strict=True)
                if name in r
            ),
            n_warned_strict=int(strict.get("warned", 0)),
            recall_strict=strict.get("recall"),
            lead_minutes_strict=tuple(strict.get("lead_minutes", ())),
            median_lead_minutes_strict=strict.get("median_lead_minutes"),
            n_component_faults=int(d.get("component_faults", 0)),
            n_one_incident=int(d.get("one_incident_naming_component", 0)),
            one_incident_rate=d.get("one_incident_rate"),
            n_node_faults=int(d.get("node_faults", 0)),
            n_escalated=int(d.get("node_faults_escalated", 0)),
            n_false_all_clear=int(d.get("false_all_clear", 0)),
            gpus_affected=int(d.get("gpus_affected", 0)),
            gpus_paged=int(d.get("gpus_paged", 0)),
            n_explained_strict=int(strict.get("explained_faults", 0)),
            explanation_top1_strict=strict.get("explanation_top1"),
            benign={k: BenignKindScore.from_dict(k, v) for k, v in d.get("benign", {}).items()},
        )


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
            # the fault as faults.json has it, without its affected GPUs
            row = {k: v for k, v in fault.as_dict().items() if k != "affected"}
            for name, outcomes in by_detector.items():
                row[name] = outcomes[fault.id].as_dict()
            rows.append(row)
        return {
            "gpu_days": json_round(self.gpu_days),
            "detectors": {name: s.as_dict() for name, s in self.detectors.items()},
            "faults": rows,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BacktestReport:
        """The report :meth:`as_dict` wrote (a stored ``eval.json`` scenario's ``backtest``).

        The faults come back without their affected GPUs (the table does not keep them); every
        figure the scenario matrix pools is kept. Raises ``KeyError``/``ValueError``/``TypeError``
        on a table that is not one.
        """
        rows = list(d["faults"])
        faults = tuple(
            Fault(
                id=str(r["id"]),
                kind=str(r["kind"]),
                target=str(r["target"]),
                affected=(),
                onset=parse_time(r["onset"]),
                failure=parse_time(r["failure"]) if r.get("failure") else None,
                signal_start=parse_time(r["signal_start"]) if r.get("signal_start") else None,
            )
            for r in rows
        )
        detectors = {
            name: DetectorScore.from_dict(name, cell, rows, faults)
            for name, cell in d["detectors"].items()
        }
        return cls(detectors=detectors, faults=faults, gpu_days=float(d["gpu_days"]))
