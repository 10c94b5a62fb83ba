"""The Silence modal: duration and reason, opened from an alert's "Silence…" button."""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.models.blocks import (
    InputBlock,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.blocks.common import SILENCE_CALLBACK_ID, clip, escape, section

DURATION_BLOCK = "duration"
DURATION_ACTION = "duration_select"
REASON_BLOCK = "reason"
REASON_ACTION = "reason_input"
DURATIONS: tuple[tuple[str, str], ...] = (
    ("1h", "1 hour"),
    ("4h", "4 hours"),
    ("12h", "12 hours"),
    ("1d", "1 day"),
    ("7d", "7 days"),
)


def silence_modal(
    incident_id: str, target: str, channel: str | None, ts: str | None
) -> dict[str, Any]:
    """A modal asking how long to silence ``target`` and why; metadata carries the alert."""
    meta = json.dumps({"incident": incident_id, "target": target, "channel": channel, "ts": ts})
    options = [Option(value=v, label=label) for v, label in DURATIONS]
    view = View(
        type="modal",
        callback_id=SILENCE_CALLBACK_ID,
        title=PlainTextObject(text="Silence alerts"),
        submit=PlainTextObject(text="Silence"),
        close=PlainTextObject(text="Cancel"),
        private_metadata=clip(meta, 3000),
        blocks=[
            section(f"Silence alerts for `{escape(target)}`."),
            InputBlock(
                block_id=DURATION_BLOCK,
                label=PlainTextObject(text="For how long"),
                element=StaticSelectElement(
                    action_id=DURATION_ACTION, options=options, initial_option=options[1]
                ),
            ),
            InputBlock(
                block_id=REASON_BLOCK,
                label=PlainTextObject(text="Reason"),
                optional=True,
                element=PlainTextInputElement(action_id=REASON_ACTION, max_length=500),
            ),
        ],
    )
    return view.to_dict()
