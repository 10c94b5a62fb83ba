"""The Slack sink: alerts posted with their images, edited in place, replies in their thread.

An update, improve or resolve edits the incident's stored Slack message and replies in its
thread; when the incident has no Slack message (its post never made it), the alert is posted
anew. A retried post (``is_retry``: the process may have died after Slack accepted it) first
looks for its earlier attempt by idempotency key (``SlackNotifier.find_posted``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.blocks.alert import data_source_text, fired_again_text, recurrence_text
from bot.blocks.models import AlertState
from bot.sinks.base import DataSourceNote, Notification
from bot.slack.notifier import SlackNotifier
from bot.slack.service import SlackService
from storage.repository import MessageRef

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlackSink:
    """Send notifications to Slack through the service's notifier, repository and images.

    ``notifier`` replaces the service's for one cluster of a bot watching several (its channels
    and its name in the messages; ``SlackNotifier.for_cluster``).
    """

    service: SlackService
    notifier: SlackNotifier | None = None

    @property
    def _notifier(self) -> SlackNotifier:
        """The notifier this sink sends through."""
        return self.notifier if self.notifier is not None else self.service.notifier

    # ------------------------------------------------------------------ Sink

    def post(self, note: Notification) -> MessageRef | None:
        """Post the alert (unless a retry finds it posted already) and upload its images; when
        its root cause fired shortly before, link the two threads."""
        ref = self._post(note)
        if note.recurs is not None and not note.is_retry:  # a retry never notes twice
            was = note.recurs
            notifier = self._notifier
            notifier.reply(ref, recurrence_text(was.incident_id, was.first_seen, was.resolved_at))
            old = self.service.repo.message_ref(was.incident_id)
            if old is not None:
                notifier.reply(old, fired_again_text(note.incident, note.record_id))
        return ref

    def update(self, note: Notification) -> MessageRef | None:
        """Edit the alert to its worse state and say what changed in its thread."""
        ref = self._message(note)
        if ref is None:
            return self._post(note, anew=True)
        self._notifier.update(
            ref, note.incident, note.previous, state=self._state(note), record_id=note.record_id
        )
        return ref

    def improve(self, note: Notification) -> MessageRef | None:
        """Edit the alert to its better state and say so in its thread."""
        ref = self._message(note)
        if ref is None:
            return self._post(note, anew=True)
        self._notifier.improve(
            ref, note.incident, note.previous, state=self._state(note), record_id=note.record_id
        )
        return ref

    def resolve(self, note: Notification) -> MessageRef | None:
        """Edit the alert to resolved (no buttons) and say why in its thread."""
        ref = self._message(note)
        if ref is None:
            return self._post(note, anew=True)
        self._notifier.resolve(
            ref,
            note.incident,
            at=note.at,
            state=self._state(note),
            reason=note.reason,
            merged_into=note.merged_into,
        )
        return ref

    def data_source(self, note: DataSourceNote) -> MessageRef | None:
        """Say in the default channel that the metrics source degraded or recovered."""
        notifier = self._notifier
        notifier.post_text(data_source_text(note.state, note.cluster or notifier.cluster))
        return None

    def post_text(self, text: str) -> None:
        """Post a plain message in the default channel (the daily digest)."""
        self._notifier.post_text(text)

    # ------------------------------------------------------------------ helpers

    def _message(self, note: Notification) -> MessageRef | None:
        """The incident's Slack message, or None (no stored incident, or never posted)."""
        return self.service.repo.message_ref(note.record_id) if note.record_id is not None else None

    def _state(self, note: Notification) -> AlertState | None:
        """People's actions on the incident (ack, silence, verdict), to redraw the alert with."""
        rec = self.service.repo.incident(note.record_id) if note.record_id is not None else None
        return self.service.state_of(rec) if rec is not None else None

    def _post(self, note: Notification, *, anew: bool = False) -> MessageRef:
        """Post the alert with its images; a retry adopts an earlier attempt found in Slack."""
        notifier, record_id = self._notifier, note.record_id
        if note.is_retry:  # a previous attempt may have reached Slack before a crash
            found = notifier.find_posted(
                notifier.channel_for(note.incident), note.idempotency_key, note.created_at
            )
            if found is not None:
                logger.info("outbox row %s was already posted as %s", note.outbox_id, found.ts)
                return found
        images = self.service.images
        pictures = images(record_id) if images is not None and record_id is not None else {}
        if anew:
            logger.warning("no Slack message for incident %s: posting it anew", record_id)
        return notifier.post(
            note.incident, pictures, record_id=record_id, idempotency_key=note.idempotency_key
        )
