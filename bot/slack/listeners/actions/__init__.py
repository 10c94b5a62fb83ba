"""The alert's buttons: Acknowledge, Silence 4h, Silence… (modal), False alarm."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.blocks.common import (
    ACTION_ACK,
    ACTION_FALSE_ALARM,
    ACTION_SILENCE_4H,
    ACTION_SILENCE_MODAL,
)
from bot.slack.service import Reply, SlackService

ACTION_IDS: tuple[str, ...] = (
    ACTION_ACK,
    ACTION_SILENCE_4H,
    ACTION_SILENCE_MODAL,
    ACTION_FALSE_ALARM,
)


def _click(body: dict[str, Any]) -> tuple[str, str, str, str]:
    """(incident id, user, channel, message ts) of a button click on a message."""
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id", "")
    return body["actions"][0]["value"], body["user"]["id"], channel, container.get("message_ts", "")


def _tell(respond: Respond, reply: Reply | None) -> None:
    """Send a refusal (or note) only to the clicking user."""
    if reply is not None:
        respond(
            text=reply.text, blocks=reply.blocks, response_type="ephemeral", replace_original=False
        )


def register(app: App, service: SlackService) -> None:
    """Register one handler per button."""

    @app.action(ACTION_ACK)
    def acknowledge(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        """Store the acknowledgement; the alert shows who and when."""
        ack()
        _tell(respond, service.acknowledge(*_click(body)))

    @app.action(ACTION_SILENCE_4H)
    def silence_4h(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        """Silence the incident's root cause for 4 hours."""
        ack()
        _tell(respond, service.silence_incident(*_click(body), duration="4h"))

    @app.action(ACTION_SILENCE_MODAL)
    def silence_open(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        """Open the silence modal (duration, reason)."""
        ack()
        view = service.silence_modal_view(*_click(body))
        if isinstance(view, Reply):
            _tell(respond, view)
        else:
            client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.action(ACTION_FALSE_ALARM)
    def false_alarm(ack: Ack, body: dict[str, Any]) -> None:
        """Store a false-alarm verdict; the alert says who marked it."""
        ack()
        service.false_alarm(*_click(body))
