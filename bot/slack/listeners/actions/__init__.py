"""The alert's buttons: Acknowledge, Silence 4h, Silence… (modal), False alarm; others ignored.

Every handler acks first, reads the click defensively (``read_click``) and answers a bad or
unknown incident id with a clear ephemeral note; nothing raises to Bolt.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.blocks.common import (
    ACTION_ACK,
    ACTION_FALSE_ALARM,
    ACTION_SILENCE_4H,
    ACTION_SILENCE_MODAL,
)
from bot.slack.commands import UsageError
from bot.slack.listeners.replies import answer_safely, id_of, object_of, text_of
from bot.slack.service import Reply, SlackService

logger = logging.getLogger(__name__)

ACTION_IDS: tuple[str, ...] = (
    ACTION_ACK,
    ACTION_SILENCE_4H,
    ACTION_SILENCE_MODAL,
    ACTION_FALSE_ALARM,
)
ANY = re.compile(r".*", re.DOTALL)


@dataclass(frozen=True)
class Click:
    """A button click on an alert: the incident id it carries, who clicked, where."""

    incident: str
    user: str
    channel: str
    ts: str
    trigger_id: str

    @property
    def args(self) -> tuple[str, str, str, str]:
        """(incident id, user, channel, message ts), as the service takes them."""
        return self.incident, self.user, self.channel, self.ts


def read_click(body: Mapping[str, Any]) -> Click:
    """The click in a block_actions body; UsageError when it carries no incident id."""
    actions = body.get("actions")
    action = actions[0] if isinstance(actions, list) and actions else {}
    value = action.get("value") if isinstance(action, dict) else None
    if not isinstance(value, str) or not value:
        raise UsageError("this button carries no incident id; use the buttons of a gpu-risk alert")
    container = object_of(body.get("container"))
    channel = container.get("channel_id") or id_of(body.get("channel"))
    return Click(
        incident=value,
        user=id_of(body.get("user")),
        channel=text_of(channel),
        ts=text_of(container.get("message_ts")),
        trigger_id=text_of(body.get("trigger_id")),
    )


def _on_click(
    respond: Respond, body: dict[str, Any], work: Callable[[Click], Reply | None]
) -> None:
    """Read the click, run ``work`` and tell the clicking user any refusal or problem."""
    answer_safely(respond, lambda: work(read_click(body)), what="button")


def register(app: App, service: SlackService) -> None:
    """Register one handler per button, then one that acknowledges any other action."""

    @app.action(ACTION_ACK)
    def acknowledge(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        """Store the acknowledgement; the alert shows who and when."""
        ack()
        _on_click(respond, body, lambda c: service.acknowledge(*c.args))

    @app.action(ACTION_SILENCE_4H)
    def silence_4h(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        """Silence the incident's root cause for 4 hours."""
        ack()
        _on_click(respond, body, lambda c: service.silence_incident(*c.args, duration="4h"))

    @app.action(ACTION_SILENCE_MODAL)
    def silence_open(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        """Open the silence modal (duration, reason)."""
        ack()

        def open_modal(click: Click) -> Reply | None:
            """The refusal, or open the modal on the click's trigger."""
            view = service.silence_modal_view(*click.args)
            if isinstance(view, Reply):
                return view
            client.views_open(trigger_id=click.trigger_id, view=view)
            return None

        _on_click(respond, body, open_modal)

    @app.action(ACTION_FALSE_ALARM)
    def false_alarm(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        """Store a false-alarm verdict; the alert says who marked it."""
        ack()
        _on_click(respond, body, lambda c: service.false_alarm(*c.args))

    @app.action(ANY)
    def unknown_action(ack: Ack, action: dict[str, Any]) -> None:
        """Acknowledge an action gpu-risk does not know, and log it once."""
        ack()
        logger.warning("ignored unknown Slack action %r", text_of(action.get("action_id"))[:100])

    @app.options(ANY)
    def no_options(ack: Ack) -> None:
        """gpu-risk has no external selects: an empty list of options."""
        ack(options=[])

    @app.shortcut(ANY)
    def unknown_shortcut(ack: Ack, body: dict[str, Any]) -> None:
        """Acknowledge a shortcut gpu-risk does not offer, and log it once."""
        ack()
        logger.warning("ignored unknown Slack shortcut %r", text_of(body.get("callback_id"))[:100])
