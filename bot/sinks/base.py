"""Where notifications go: the ``Sink`` interface, the decoded ``Notification`` and ``dispatch``.

An outbox row (``storage.repository.OutboxItem``) says *what happened* (``kind``: post, update,
improve, resolve, data_source) and carries a JSON payload. ``dispatch`` is the one place that
reads ``kind``: it decodes the row once into a neutral ``Notification`` (or ``DataSourceNote``)
and calls the sink's method for that action. A sink only decides *how to show it* (Slack Block
Kit, terminal text, an Alertmanager alert, a webhook body).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol, runtime_checkable

from analysis.lifecycle import Action
from analysis.types import Incident, parse_time
from storage.repository import DATA_SOURCE_KIND, MessageRef, OutboxItem

INCIDENT_KINDS: tuple[str, ...] = (
    Action.POST.value,
    Action.UPDATE.value,
    Action.IMPROVE.value,
    Action.RESOLVE.value,
)
"""Outbox kinds about one incident (a ``Notification``); the other kind is ``data_source``."""

KINDS: tuple[str, ...] = (*INCIDENT_KINDS, DATA_SOURCE_KIND)
"""Every outbox kind ``dispatch`` knows."""


class UnknownKindError(ValueError):
    """An outbox row of a kind no sink method handles (e.g. written by a newer release)."""


@dataclass(frozen=True, kw_only=True)
class Envelope:
    """What every outbox row carries, whatever its kind: which row, its key, how often tried."""

    outbox_id: int
    idempotency_key: str
    """Stable across retries of the same row: the sink's dedup key (metadata, header, label)."""
    attempts: int
    """How often the row was claimed; > 1 means an earlier attempt may have got through."""
    created_at: datetime
    """When the row was enqueued (aware UTC): search for an earlier attempt from here."""
    message_ref: MessageRef | None = None
    """The message recorded on the row itself (set once it was sent; usually None)."""
    cluster: str = ""
    """The cluster it is about (``""``: the one cluster of a bot without a clusters file)."""

    @property
    def is_retry(self) -> bool:
        """Return True when an earlier attempt may have been shown: reconcile before sending."""
        return self.attempts > 1


@dataclass(frozen=True, kw_only=True)
class Notification(Envelope):
    """One incident's lifecycle step (post, update, improve or resolve), decoded from its row."""

    record_id: int | None
    """The stored incident's id (``IncidentRecord.id``; buttons and ``message_ref`` use it)."""
    incident: Incident
    """The incident as it is now (the snapshot stored with the decision)."""
    previous: Incident
    """The incident as last notified: ``incident`` with the severity it was shown with."""
    dedup_key: str
    """What identifies the same incident across cycles (``kind:id`` of the root cause)."""
    reason: str = ""
    """Why the lifecycle decided this step (shown with a resolve)."""
    at: datetime | None = None
    """When the step was decided (aware UTC), if the row says."""
    recurs: Recurrence | None = None
    """A post only: the same root cause's incident resolved within ``RECURRENCE_WINDOW``."""
    merged_into: str = ""
    """A resolve only: the title of the broader incident that took this one's GPUs."""


@dataclass(frozen=True)
class Recurrence:
    """The incident of the same root cause resolved shortly before a new one was posted."""

    incident_id: int
    first_seen: datetime
    resolved_at: datetime


@dataclass(frozen=True, kw_only=True)
class DataSourceNote(Envelope):
    """The metrics source went bad or came back (one row per transition)."""

    state: str
    """``degraded`` or ``ok`` (what the source is now)."""
    change: str | None = None
    """``degraded`` or ``recovered`` (the transition), if the row says."""
    since: datetime | None = None
    """When the state began (aware UTC), if the row says."""
    error: str | None = None
    """The last scan's error, when degraded."""


@runtime_checkable
class Sink(Protocol):
    """A destination for notifications: one method per lifecycle action.

    To add one (an Alertmanager, a webhook, a pager), write a class with these six methods and
    hand it to ``bot.delivery.deliver`` (or wrap several in ``bot.sinks.FanOut``). The contract:

    - **Called once per outbox row**, by ``dispatch`` from the delivery loop, with the row decoded
      into a ``Notification`` (incidents) or ``DataSourceNote``. Never read ``OutboxItem``.
    - **Return** the ``MessageRef`` of the message a ``post`` created (it is stored as the
      incident's message and later steps can find it through the repository) or the message an
      update/improve/resolve edited; return None when your destination has no addressable
      messages (Alertmanager, webhooks). ``deliver`` stores it with the sent row (a post's, or
      the first one an incident gets in a channel, also as the incident's message).
    - **Raise on failure**, don't swallow: the row is marked failed and tried again after a
      delay (nothing is lost while you are down). Delivery is therefore at-least-once: make a
      repeated call harmless. ``note.idempotency_key`` is stable across retries (send it as a
      dedup key: message metadata, an ``Idempotency-Key`` header, a label), and when
      ``note.is_retry`` an earlier attempt may have got through before a crash: look for it
      first (Slack: ``find_posted``; console: its log) and return that instead of sending again.
    - An update/improve/resolve can arrive for an incident whose post never reached you (e.g.
      the sink was added later): show it as a new message rather than fail forever.
    - Rows of one incident arrive in order, one at a time; different incidents may be sent
      from several threads at once (scan and dispatch jobs): keep no per-call state on ``self``.
    - Set timeouts on network calls: a hung send holds the row until its lease expires.

    For Alertmanager, for instance: post/update/improve push the alert (labels from
    ``note.dedup_key``, severity from ``note.incident``), resolve pushes it with ``endsAt`` at
    ``note.at``, and every method returns None.
    """

    def post(self, note: Notification) -> MessageRef | None:
        """A new incident: show the alert; return the message it became (or None)."""
        ...

    def update(self, note: Notification) -> MessageRef | None:
        """The incident got worse (``note.previous`` to ``note.incident``): say so."""
        ...

    def improve(self, note: Notification) -> MessageRef | None:
        """The incident got better but is still open: say so."""
        ...

    def resolve(self, note: Notification) -> MessageRef | None:
        """The incident is gone (``note.reason``, decided at ``note.at``): say so."""
        ...

    def data_source(self, note: DataSourceNote) -> MessageRef | None:
        """The metrics source degraded or recovered (``note.state``): say so."""
        ...

    def post_text(self, text: str) -> None:
        """Show a free-standing text message (the daily digest; not from the outbox)."""
        ...


def decode(item: OutboxItem) -> Notification | DataSourceNote:
    """Decode an outbox row once into what a sink reads; raise UnknownKindError for new kinds."""
    payload = item.payload
    if item.kind == DATA_SOURCE_KIND:
        return DataSourceNote(
            outbox_id=item.id,
            idempotency_key=item.idempotency_key,
            attempts=item.attempts,
            created_at=item.created_at,
            message_ref=item.message_ref,
            cluster=str(payload.get("cluster") or ""),
            state=str(payload.get("state") or "degraded"),
            change=_text(payload.get("change")),
            since=_time(payload.get("since")),
            error=_text(payload.get("error")),
        )
    if item.kind not in INCIDENT_KINDS:
        raise UnknownKindError(
            f"unknown outbox kind {item.kind!r} (row {item.id}); known: {', '.join(KINDS)}"
        )
    incident = Incident.from_dict(payload["incident"])
    previous = replace(incident, severity=payload.get("previous_severity") or incident.severity)
    return Notification(
        outbox_id=item.id,
        idempotency_key=item.idempotency_key,
        attempts=item.attempts,
        created_at=item.created_at,
        message_ref=item.message_ref,
        cluster=str(payload.get("cluster") or ""),
        record_id=item.incident_id,
        incident=incident,
        previous=previous,
        dedup_key=str(payload.get("dedup_key") or incident.dedup_key),
        reason=str(payload.get("reason") or ""),
        at=_time(payload.get("at")),
        recurs=_recurrence(payload.get("recurs")),
        merged_into=str(payload.get("merged_into") or ""),
    )


def dispatch(sink: Sink, item: OutboxItem) -> MessageRef | None:
    """Send one outbox row to the sink method of its kind; return the message it names."""
    note = decode(item)
    if isinstance(note, DataSourceNote):
        return sink.data_source(note)
    if item.kind == Action.POST:
        return sink.post(note)
    if item.kind == Action.UPDATE:
        return sink.update(note)
    if item.kind == Action.IMPROVE:
        return sink.improve(note)
    if item.kind == Action.RESOLVE:
        return sink.resolve(note)
    raise UnknownKindError(f"unknown outbox kind {item.kind!r} (row {item.id})")  # pragma: no cover


def _recurrence(raw: object) -> Recurrence | None:
    """The payload's ``recurs`` field, or None when absent or incomplete."""
    if not isinstance(raw, dict):
        return None
    first, resolved = _time(raw.get("first_seen")), _time(raw.get("resolved_at"))
    if raw.get("incident_id") is None or first is None or resolved is None:
        return None
    return Recurrence(int(raw["incident_id"]), first, resolved)


def _time(raw: object) -> datetime | None:
    """An RFC 3339 payload field as an aware datetime, or None when absent."""
    return parse_time(str(raw)) if raw else None


def _text(raw: object) -> str | None:
    """A payload field as text, or None when absent."""
    return None if raw is None else str(raw)
