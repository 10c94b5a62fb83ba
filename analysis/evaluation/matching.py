"""Which incident answers which fault: the strict and the loose matching rules, and benign pages.

Pure functions over :class:`~analysis.evaluation.records.IncidentRecord`, faults and benign
events. The rules (also in ``docs/evaluation.md``):

* **Level of a fault** (:func:`fault_level`): ``component`` when its target is one of the
  topology's component (or rack) ids, whatever its ``kind`` says (kind is free text in a user's
  ticket export); ``gpu`` when the target is a ``<node>/<gpu>`` key; ``node`` when every affected
  GPU sits on the target node; ``other`` otherwise (e.g. ``fleet``).
* **Loose** (:func:`touches`, today's overlap rule): the incident shares a GPU with the fault's
  ``affected`` GPUs, or its root cause is the target or one of those GPUs.
* **Strict** (:func:`names_target`): the incident's root cause names the fault's target:
  the component itself for a component fault; the node or one of its GPUs for a node fault; the
  GPU itself for a GPU fault, or a *node-level* incident on that GPU's node that lists the GPU
  among its GPUs (the page sends the operator to the right machine and names the GPU; decided
  in issue 11). A rack or component incident over a node's or GPU's fault never counts strictly.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Literal

from analysis.evaluation.records import BenignKindScore, IncidentRecord
from analysis.types import BenignEvent, Fault, Topology

FaultLevel = Literal["component", "node", "gpu", "other"]

#: Root-cause kinds above a node: an incident of these kinds over a node fault "escalated".
UPSTREAM_KINDS: frozenset[str] = frozenset({"rack", "pdu", "cooling", "switch", "psu", "component"})


def component_ids(topology: Topology) -> frozenset[str]:
    """Return every shared-component id of a topology: declared components, racks' feeds, racks.

    Parameters
    ----------
    topology : Topology
        The fleet's layout.

    Returns
    -------
    frozenset[str]
        Component ids (PDUs, cooling units, switches, whether declared or only named by a rack)
        and rack ids: the targets of shared-component faults.
    """
    ids = set(topology.components)
    for rack in topology.racks:
        ids.add(rack.id)
        ids.update(rack.power, rack.cooling, rack.network)
    for override in topology.node_overrides.values():
        for role in (override.power, override.cooling, override.network):
            ids.update(role or ())
    return frozenset(ids)


def _node_of(key: str) -> str | None:
    """Return the node of a ``<node>/<gpu>`` key, None when ``key`` is not one."""
    node, sep, gpu = key.rpartition("/")
    return node if sep and node and gpu else None


def fault_level(fault: Fault, components: Collection[str] = ()) -> FaultLevel:
    """Return whether a fault strikes a shared component, a node, a GPU or something else.

    Parameters
    ----------
    fault : Fault
        The ground-truth fault.
    components : Collection[str]
        The topology's component ids (:func:`component_ids`).

    Returns
    -------
    str
        ``component``, ``gpu``, ``node`` or ``other`` (see the module docstring).
    """
    if fault.target in components:
        return "component"
    if _node_of(fault.target) is not None:
        return "gpu"
    if fault.affected and all(_node_of(g) == fault.target for g in fault.affected):
        return "node"
    return "other"


def touches(incident: IncidentRecord, fault: Fault) -> bool:
    """Return whether an incident concerns a fault's GPUs or its target (the loose rule).

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


def names_target(incident: IncidentRecord, fault: Fault, level: FaultLevel) -> bool:
    """Return whether an incident's root cause names the fault's target (the strict rule).

    Parameters
    ----------
    incident : IncidentRecord
        The incident.
    fault : Fault
        The ground-truth fault.
    level : str
        The fault's level (:func:`fault_level`).

    Returns
    -------
    bool
        Component fault: root cause is the component. Node fault: the node or one of its GPUs.
        GPU fault: the GPU, or its node when the incident lists the GPU. Other: the target.
    """
    rc = incident.root_cause_id
    if rc == fault.target:
        return True
    if level == "node":
        return _node_of(rc) == fault.target
    if level == "gpu":
        return rc == _node_of(fault.target) and fault.target in incident.gpus
    return False


def opened_in(incident: IncidentRecord, lo: datetime, hi: datetime | None) -> bool:
    """Return whether the incident opened in ``[lo, hi)`` (``hi=None``: no upper bound)."""
    return incident.opened_at >= lo and (hi is None or incident.opened_at < hi)


def false_all_clear(
    warnings: Sequence[IncidentRecord], fault: Fault, repair: datetime | None
) -> bool:
    """Return whether a warning about the fault was resolved while the fault was still there.

    Parameters
    ----------
    warnings : Sequence[IncidentRecord]
        Incidents about the fault opened before its failure.
    fault : Fault
        The ground-truth fault.
    repair : datetime, optional
        When the hardware was healthy again (default: the failure itself, a lower bound).

    Returns
    -------
    bool
        True when one of the warnings has ``closed_at`` before the repair (and after it opened):
        the bot told the operator "resolved" about hardware that was failing or had failed.
    """
    until = repair if repair is not None else fault.failure
    if until is None:
        return any(w.closed_at is not None for w in warnings)
    return any(w.closed_at is not None and w.closed_at < until for w in warnings)


def benign_pages(
    events: Iterable[BenignEvent],
    incidents: Sequence[IncidentRecord],
    true_ids: Collection[str],
    *,
    grace: timedelta = timedelta(hours=1),
) -> dict[str, BenignKindScore]:
    """Count the pages each kind of benign event caused (incidents that must not have opened).

    Parameters
    ----------
    events : Iterable[BenignEvent]
        Ground-truth benign events (job churn, reboots, driver updates, ...).
    incidents : Sequence[IncidentRecord]
        The detector's log.
    true_ids : Collection[str]
        Ids of incidents that answer a real fault (never charged to a benign event).
    grace : timedelta
        How long after the event's end a page it caused may still open (the tracker's delay).

    Returns
    -------
    dict[str, BenignKindScore]
        Per kind: events, events with at least one page, pages. An incident pages during an
        event when it opened in ``[start, end + grace)`` and shares a GPU with the event, or its
        root cause is the event's target or one of its GPUs; ``fleet``-wide events take any.
    """
    out: dict[str, BenignKindScore] = {}
    for ev in events:
        affected = set(ev.affected)
        pages = {
            r.id
            for r in incidents
            if r.id not in true_ids
            and opened_in(r, ev.start, ev.end + grace)
            and (
                ev.target == "fleet"
                or affected.intersection(r.gpus)
                or r.root_cause_id == ev.target
                or r.root_cause_id in affected
            )
        }
        prev = out.get(ev.kind, BenignKindScore(ev.kind, 0, 0, 0))
        out[ev.kind] = BenignKindScore(
            ev.kind, prev.events + 1, prev.events_paged + bool(pages), prev.pages + len(pages)
        )
    return dict(sorted(out.items()))
