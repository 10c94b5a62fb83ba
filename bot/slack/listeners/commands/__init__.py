"""The ``/gpu-risk`` slash command: ack within 3 s, answer from stored state; others refused."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk.errors import SlackApiError

from bot.slack.commands import COMMAND
from bot.slack.listeners.replies import answer_safely, text_of
from bot.slack.service import Reply, SlackService

logger = logging.getLogger(__name__)

ANY = re.compile(r".*", re.DOTALL)


def register(app: App, service: SlackService) -> None:
    """Register the ``/gpu-risk`` handler, then one that refuses any other command."""

    @app.command(COMMAND)
    def gpu_risk(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        """Ack, answer (ephemeral unless ``public``), then share images if any."""
        ack()
        text, user = text_of(command.get("text")), text_of(command.get("user_id"))
        reply = answer_safely(respond, lambda: service.command(text, user), what="command")
        channel = text_of(command.get("channel_id"))
        if reply is not None and reply.images and channel:
            _share(service, channel, reply)

    @app.command(ANY)
    def other_command(ack: Ack, command: dict[str, Any]) -> None:
        """Refuse a slash command gpu-risk does not own, saying which one it answers."""
        ack(text=f"gpu-risk only answers {COMMAND}.")
        logger.warning("refused unknown slash command %r", text_of(command.get("command"))[:100])


def _share(service: SlackService, channel: str, reply: Reply) -> None:
    """Upload a public answer's images; a refusal by Slack is logged, not raised."""
    try:
        service.share_images(channel, reply)
    except SlackApiError as err:
        logger.warning("could not share images in %s: %s", channel, err.response.get("error"))
    except Exception:
        logger.exception("sharing images in %s failed", channel)
