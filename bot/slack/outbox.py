"""Sending the outbox to Slack: claim pending notifications, send each, confirm or retry later.

The sending itself is ``bot.sinks.slack.SlackSink``; these are the older entry points, kept for
their callers. With the outbox (storage.repository) nothing is lost while Slack is down: a send
that fails after the client's own retries is marked failed and sent on a later round.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.delivery import deliver
from bot.sinks.base import dispatch
from bot.sinks.slack import SlackSink
from bot.slack.service import SlackService
from storage.repository import MessageRef, OutboxItem


def deliver_pending(
    service: SlackService,
    *,
    at: datetime,
    worker_id: str = "slack",
    limit: int = 50,
    lease: timedelta = timedelta(minutes=2),
    retry_in: timedelta = timedelta(seconds=30),
) -> int:
    """Send every sendable outbox row once to Slack; return how many were sent."""
    return deliver(
        service.repo,
        SlackSink(service),
        at=at,
        worker_id=worker_id,
        limit=limit,
        lease=lease,
        retry_in=retry_in,
    )


def send_item(service: SlackService, item: OutboxItem) -> MessageRef | None:
    """Send one outbox row to Slack: post, update (worse), improve (better), resolve, data source."""
    return dispatch(SlackSink(service), item)
