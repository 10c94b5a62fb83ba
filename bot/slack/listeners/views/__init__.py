"""Modal submissions: the silence modal."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.blocks.common import SILENCE_CALLBACK_ID
from bot.blocks.modal import read_silence_submission
from bot.slack.service import SlackService

CALLBACK_IDS: tuple[str, ...] = (SILENCE_CALLBACK_ID,)


def register(app: App, service: SlackService) -> None:
    """Register the silence modal's submission handler."""

    @app.view(SILENCE_CALLBACK_ID)
    def silence_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        """Close the modal, store the silence and redraw the alert."""
        ack()
        meta, duration, reason = read_silence_submission(view)
        service.silence_incident(
            str(meta["incident"]),
            body["user"]["id"],
            meta.get("channel") or "",
            meta.get("ts") or "",
            duration=duration,
            reason=reason,
        )
