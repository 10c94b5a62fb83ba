"""Pure decisions on an incident's life: post, update, improve, resolve, suppress or nothing.

One place decides what a cycle means for each incident (``decide``) and for a whole cycle
(``decide_cycle``: every current incident and every stored open one); ``storage.repository``
persists the decisions (and their outbox rows) and ``bot/`` sends them. No clock, no I/O: every
input is passed in.

The table (``current`` = this cycle's incident for the dedup key, ``stored`` = the open row):

==========================  =====================================  ===========
current / stored            condition                              action
==========================  =====================================  ===========
None / none or resolved     -                                      NOOP
None / open or ack          data_ok is False                       NOOP
None / open or ack          data_ok                                RESOLVE
None / open or ack          data_ok, merged into a broader one     RESOLVE (merged)
incident / none, resolved   silenced                               SUPPRESS
incident / none, resolved   not silenced                           POST
incident / open or ack      silenced                               SUPPRESS
incident / never posted     not silenced (silence lifted)          POST
incident / acknowledged     severity above the last notified one   UPDATE
incident / acknowledged     otherwise                              NOOP
incident / open             severity rose                          UPDATE
incident / open             severity fell                          IMPROVE
incident / open             same severity, score up > epsilon      UPDATE
incident / open             same severity, score down > epsilon    IMPROVE
incident / open             same severity, |score change| <= eps   NOOP
==========================  =====================================  ===========

Comparisons are against what was last *notified* (``StoredState.notified_severity`` and
``notified_score``), not against the previous cycle, so a slow creep still produces one update
once it adds up to more than epsilon, and a flapping score never spams.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Literal

from analysis.types import Incident, Severity

logger = logging.getLogger(__name__)

IncidentStatus = Literal["open", "acknowledged", "resolved"]
INCIDENT_STATUSES: tuple[str, ...] = ("open", "acknowledged", "resolved")

DEFAULT_SCORE_EPSILON = 0.1
"""Score changes (calibrated risk in [0, 1]) at or below this are not worth a message."""
#: A new incident whose root cause had an incident resolved this recently is shown as firing
#: again (a reply in both threads links them), so on-call sees a flapping fault as one story.
RECURRENCE_WINDOW = timedelta(hours=24)

_SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}


class Action(StrEnum):
    """What a cycle means for one incident."""

    POST = "post"
    """A new incident (or one whose first post was suppressed): post the alert."""
    UPDATE = "update"
    """Same incident, worse: edit the original message and reply in its thread."""
    IMPROVE = "improve"
    """Same incident, better but not gone: edit the original and reply in its thread."""
    RESOLVE = "resolve"
    """Gone from a cycle with good data: edit the original to resolved and reply in thread."""
    SUPPRESS = "suppress"
    """Silenced: recorded in the store, nothing sent."""
    NOOP = "noop"
    """Nothing worth a message (unchanged, acknowledged without escalation, or missing data)."""


NOTIFYING_ACTIONS: frozenset[Action] = frozenset(
    {Action.POST, Action.UPDATE, Action.IMPROVE, Action.RESOLVE}
)


def severity_rank(severity: str) -> int:
    """Return the order of a severity: info (0) < warning (1) < critical (2)."""
    try:
        return _SEVERITY_RANK[severity]
    except KeyError:
        raise ValueError(
            f"unknown severity {severity!r}: expected one of info, warning, critical"
        ) from None


def max_severity(a: Severity, b: Severity) -> Severity:
    """Return the higher of two severities."""
    return a if severity_rank(a) >= severity_rank(b) else b


@dataclass(frozen=True)
class StoredState:
    """What the store knows about the open incident with a dedup key.

    ``notified_severity``/``notified_score`` are the values of the last message sent (None when
    nothing was ever posted, e.g. the incident was silenced from the start).
    """

    status: IncidentStatus
    severity: Severity
    score: float
    notified_severity: Severity | None = None
    notified_score: float | None = None
    incident: Incident | None = None

    @property
    def posted(self) -> bool:
        """Return True when an alert for this incident was committed for sending."""
        return self.notified_severity is not None

    @property
    def is_open(self) -> bool:
        """Return True for open and acknowledged incidents."""
        return self.status != "resolved"


@dataclass(frozen=True)
class Decision:
    """The outcome for one dedup key in one cycle.

    ``incident`` is this cycle's incident, or the stored snapshot for RESOLVE/NOOP-on-missing.
    ``notify`` says whether a message goes out (an outbox row is written).
    ``incident_id`` and ``outbox_id`` are filled in by the store after persisting.
    """

    action: Action
    dedup_key: str
    reason: str
    notify: bool
    incident: Incident | None = None
    previous_severity: Severity | None = None
    incident_id: int | None = None
    outbox_id: int | None = None
    merged_into: str | None = None


def decide(
    current: Incident | None,
    stored: StoredState | None,
    *,
    data_ok: bool,
    silenced: bool = False,
    score_epsilon: float = DEFAULT_SCORE_EPSILON,
    dedup_key: str | None = None,
    merged_into: str | None = None,
) -> Decision:
    """Decide what this cycle means for one incident (see the module table).

    Parameters
    ----------
    current
        This cycle's incident for the dedup key, or None when the scorer no longer reports it.
    stored
        The store's open (or acknowledged) incident for the key; None or a resolved state when
        there is none.
    data_ok
        False when the cycle's data were missing or degraded: then nothing is resolved.
    silenced
        True when an active silence matches the incident (see ``silence_matches``).
    score_epsilon
        Score changes at or below this, at equal severity, are NOOP.
    dedup_key
        Needed only when both ``current`` and ``stored.incident`` are None.
    merged_into
        The title of the broader incident that took this one's GPUs this cycle (the tracker's
        ``merged``): its resolution says "merged into" that one, not a bare "resolved".
    """
    if score_epsilon < 0:
        raise ValueError(f"score_epsilon must be >= 0 (got {score_epsilon})")
    key = _key(current, stored, dedup_key)
    live = stored if stored is not None and stored.is_open else None
    previous = live.notified_severity if live else None

    if current is None:
        if live is None:
            return Decision(Action.NOOP, key, "nothing open and nothing found", notify=False)
        if not data_ok:
            return Decision(
                Action.NOOP,
                key,
                "absent from a cycle with missing data: never resolve on missing data",
                notify=False,
                incident=live.incident,
                previous_severity=previous,
            )
        why = f"merged into {merged_into}" if merged_into else "absent from a cycle with good data"
        return Decision(
            Action.RESOLVE,
            key,
            why + ("" if live.posted else " (never posted: resolved silently)"),
            notify=live.posted,
            incident=live.incident,
            previous_severity=previous,
            merged_into=merged_into,
        )

    severity_rank(current.severity)  # validate early, with a clear message
    if silenced:
        return Decision(
            Action.SUPPRESS, key, "silenced: recorded, not posted", notify=False, incident=current
        )
    if live is None:
        return Decision(Action.POST, key, "new incident", notify=True, incident=current)
    if not live.posted or live.notified_severity is None:
        return Decision(
            Action.POST,
            key,
            "open but never posted (silence lifted): post now",
            notify=True,
            incident=current,
        )

    rise = severity_rank(current.severity) - severity_rank(live.notified_severity)
    last_score = live.notified_score if live.notified_score is not None else live.score
    delta = float(current.score) - float(last_score)

    if live.status == "acknowledged":
        if rise > 0:
            return Decision(
                Action.UPDATE,
                key,
                f"acknowledged, but severity rose {live.notified_severity} -> {current.severity}",
                notify=True,
                incident=current,
                previous_severity=previous,
            )
        return Decision(
            Action.NOOP,
            key,
            "acknowledged and severity did not rise",
            notify=False,
            incident=current,
            previous_severity=previous,
        )

    if rise > 0:
        action, reason = Action.UPDATE, f"severity rose {previous} -> {current.severity}"
    elif rise < 0:
        action, reason = Action.IMPROVE, f"severity fell {previous} -> {current.severity}"
    elif delta > score_epsilon:
        action, reason = Action.UPDATE, f"risk rose {last_score:.2f} -> {current.score:.2f}"
    elif delta < -score_epsilon:
        action, reason = Action.IMPROVE, f"risk fell {last_score:.2f} -> {current.score:.2f}"
    else:
        return Decision(
            Action.NOOP,
            key,
            f"unchanged (risk change {delta:+.3f} within {score_epsilon})",
            notify=False,
            incident=current,
            previous_severity=previous,
        )
    return Decision(action, key, reason, notify=True, incident=current, previous_severity=previous)


def decide_cycle(
    current: Sequence[Incident],
    stored: Mapping[str, StoredState],
    *,
    data_ok: bool,
    silences: Sequence[str] = (),
    unobserved: Collection[str] = (),
    score_epsilon: float = DEFAULT_SCORE_EPSILON,
    merged: Mapping[str, str] | None = None,
) -> list[Decision]:
    """Decide what one cycle means for every incident: current ones and stored open ones.

    Each current incident is decided against the stored state of its dedup key; then each
    stored open incident the cycle no longer reports is decided as absent (resolved only on
    good data, see ``decide``).

    Parameters
    ----------
    current
        This cycle's incidents. Duplicate dedup keys keep the worst: the most severe, then the
        riskiest.
    stored
        The store's open (and acknowledged) incidents by dedup key.
    data_ok
        False when the cycle's data were missing or degraded: then nothing is resolved.
    silences
        Targets of the silences in force this cycle (see ``silence_matches``).
    unobserved
        Nodes, GPU keys or component ids without data this cycle (partial outage, a GPU fallen
        off the bus): a stored incident involving one of them is not resolved either.
    score_epsilon
        Score changes at or below this, at equal severity, are NOOP.
    merged
        Dedup key -> title of the broader incident that took its GPUs this cycle (the tracker's
        ``merged``): such an incident resolves as merged into that one.

    Returns
    -------
    list[Decision]
        One decision per current dedup key, in order of first appearance in ``current``, then
        one per stored key absent from ``current``, in ``stored``'s order.
    """
    worst = _worst_per_key(current)
    decisions = [
        decide(
            incident,
            stored.get(key),
            data_ok=data_ok,
            silenced=any(silence_matches(incident, target) for target in silences),
            score_epsilon=score_epsilon,
        )
        for key, incident in worst.items()
    ]
    for key, state in stored.items():
        if key in worst:
            continue
        seen = state.incident is None or not any(
            involves(state.incident, entity) for entity in unobserved
        )
        decisions.append(
            decide(
                None,
                state,
                data_ok=data_ok and seen,
                score_epsilon=score_epsilon,
                dedup_key=key,
                merged_into=(merged or {}).get(key),
            )
        )
    return decisions


def involves(incident: Incident, entity: str) -> bool:
    """Return True when ``entity`` names the incident or something in it.

    An entity matches the dedup key (``pdu:pdu-a1``), the root cause id (``pdu-a1``,
    ``gpu-node-007/3``), any affected GPU's key (``gpu-node-007/3``) or any affected GPU's node
    (``gpu-node-007``).
    """
    entity = entity.strip()
    if not entity:
        return False
    if entity in (incident.dedup_key, incident.root_cause.id):
        return True
    if incident.root_cause.kind == "gpu" and incident.root_cause.id.rpartition("/")[0] == entity:
        return True
    return any(entity in (g.key, g.node) for g in incident.gpus)


def silence_matches(incident: Incident, target: str) -> bool:
    """Return True when a silence ``target`` covers the incident (see ``involves``).

    A node-level silence therefore covers every GPU incident on that node, and a component
    incident that affects a GPU of that node.
    """
    return involves(incident, target)


def _worst_per_key(incidents: Sequence[Incident]) -> dict[str, Incident]:
    """Keep one incident per dedup key: the most severe, then the riskiest."""
    out: dict[str, Incident] = {}
    for inc in incidents:
        prev = out.get(inc.dedup_key)
        if prev is None or (severity_rank(inc.severity), inc.score) > (
            severity_rank(prev.severity),
            prev.score,
        ):
            if prev is not None:
                logger.warning("two incidents share dedup key %s: keeping the worse", inc.dedup_key)
            out[inc.dedup_key] = inc
    return out


def _key(current: Incident | None, stored: StoredState | None, dedup_key: str | None) -> str:
    """Return the dedup key from whichever input carries it."""
    if current is not None:
        if dedup_key is not None and dedup_key != current.dedup_key:
            raise ValueError(
                f"dedup_key {dedup_key!r} does not match the incident's {current.dedup_key!r}"
            )
        return current.dedup_key
    if stored is not None and stored.incident is not None:
        return stored.incident.dedup_key
    if dedup_key is not None:
        return dedup_key
    raise ValueError("decide() needs a current incident, a stored snapshot or a dedup_key")
