"""The ``/gpu-risk`` slash command: ack within 3 s, answer from stored state."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond

from bot.slack.commands import COMMAND
from bot.slack.service import SlackService


def register(app: App, service: SlackService) -> None:
    """Register the ``/gpu-risk`` handler."""

    @app.command(COMMAND)
    def gpu_risk(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        """Ack, answer (ephemeral unless ``public``), then share images if any."""
        ack()
        reply = service.command(command.get("text") or "", command["user_id"])
        response_type = "in_channel" if reply.public else "ephemeral"
        respond(text=reply.text, blocks=reply.blocks, response_type=response_type)
        if reply.images:
            service.share_images(command["channel_id"], reply)
