"""Sending the outbox to Slack: claim pending notifications, send each, confirm or retry later.

With the outbox (storage.repository) nothing is lost while Slack is down: a send that fails
after the client's own retries is marked failed with a retry time and sent on a later round.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from analysis.types import Incident
from bot.blocks.alert import data_source_text
from bot.delivery import deliver
from bot.slack.service import SlackService
from storage.repository import DATA_SOURCE_KIND, MessageRef, OutboxItem

logger = logging.getLogger(__name__)


def deliver_pending(
    service: SlackService,
    *,
    at: datetime,
    worker_id: str = "slack",
    limit: int = 50,
    lease: timedelta = timedelta(minutes=2),
    retry_in: timedelta = timedelta(seconds=30),
) -> int:
    """Send every sendable outbox row once; return how many were sent (``bot.delivery``)."""
    return deliver(
        service.repo,
        lambda item: send_item(service, item),
        at=at,
        worker_id=worker_id,
        limit=limit,
        lease=lease,
        retry_in=retry_in,
    )


def send_item(service: SlackService, item: OutboxItem) -> MessageRef | None:
    """Send one outbox row: post, update (worse), improve (better), resolve, data source."""
    notifier, payload = service.notifier, item.payload
    if item.kind == DATA_SOURCE_KIND:
        state = payload.get("state", "degraded")
        notifier.post_text(data_source_text(state))
        return None
    incident = Incident.from_dict(payload["incident"])
    record_id = item.incident_id
    ref = service.repo.message_ref(record_id) if record_id is not None else None
    if item.kind == "post" or ref is None:
        if item.attempts > 1:  # a previous attempt may have reached Slack before a crash
            found = notifier.find_posted(
                notifier.channel_for(incident), item.idempotency_key, item.created_at
            )
            if found is not None:
                logger.info("outbox row %s was already posted as %s", item.id, found.ts)
                return found
        images = service.images(record_id) if (service.images and record_id is not None) else {}
        if item.kind != "post":
            logger.warning("no Slack message for incident %s: posting it anew", record_id)
        return notifier.post(
            incident, images, record_id=record_id, idempotency_key=item.idempotency_key
        )
    rec = service.repo.incident(record_id) if record_id is not None else None
    state = service.state_of(rec) if rec is not None else None
    previous = replace(incident, severity=payload.get("previous_severity") or incident.severity)
    if item.kind == "update":
        notifier.update(ref, incident, previous, state=state, record_id=record_id)
    elif item.kind == "improve":
        notifier.improve(ref, incident, previous, state=state, record_id=record_id)
    elif item.kind == "resolve":
        at = _at(payload)
        notifier.resolve(ref, incident, at=at, state=state, reason=str(payload.get("reason", "")))
    else:
        raise ValueError(f"unknown outbox kind {item.kind!r}")
    return ref


def _at(payload: Mapping[str, object]) -> datetime | None:
    """The time a payload was decided at, if it says."""
    from analysis.types import parse_time

    raw = payload.get("at")
    return parse_time(str(raw)) if raw else None
