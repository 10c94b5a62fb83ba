"""Request bodies as Slack sends them: slash commands, block actions, view submissions, events."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

TEAM = "T0TEAM"
APP = "A0GPURISK"


def slash_command(
    text: str, *, user: str, channel: str, response_url: str, command: str = "/gpu-risk"
) -> dict[str, str]:
    """The form fields of a slash command invocation."""
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "team_domain": "example",
        "channel_id": channel,
        "channel_name": "gpu-alerts",
        "user_id": user,
        "user_name": user.lower(),
        "command": command,
        "text": text,
        "api_app_id": APP,
        "response_url": response_url,
        "trigger_id": f"trig-{uuid.uuid4().hex[:10]}",
    }


def block_action(
    action_id: str,
    value: str,
    *,
    user: str,
    channel: str,
    message_ts: str,
    message_blocks: list[dict[str, Any]],
    response_url: str,
    block_id: str = "gpu_risk_alert_actions",
) -> dict[str, Any]:
    """A block_actions payload for a button clicked on a message."""
    return {
        "type": "block_actions",
        "team": {"id": TEAM, "domain": "example"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM},
        "api_app_id": APP,
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": f"trig-{uuid.uuid4().hex[:10]}",
        "channel": {"id": channel, "name": "gpu-alerts"},
        "message": {"type": "message", "ts": message_ts, "text": "", "blocks": message_blocks},
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": block_id,
                "value": value,
                "text": {"type": "plain_text", "text": action_id},
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def view_submission(view: dict[str, Any], values: dict[str, Any], *, user: str) -> dict[str, Any]:
    """A view_submission payload for a modal the bot opened, with the user's input values."""
    submitted = dict(view)
    submitted.setdefault("id", "V0MODAL")
    submitted["state"] = {"values": values}
    return {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "example"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM},
        "api_app_id": APP,
        "token": "legacy-verification-token",
        "trigger_id": f"trig-{uuid.uuid4().hex[:10]}",
        "view": submitted,
    }


def app_home_opened(user: str) -> dict[str, Any]:
    """An events_api envelope body for app_home_opened."""
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "api_app_id": APP,
        "type": "event_callback",
        "event_id": f"Ev{uuid.uuid4().hex[:10]}",
        "event_time": int(time.time()),
        "event": {
            "type": "app_home_opened",
            "user": user,
            "channel": "D0HOME",
            "tab": "home",
            "event_ts": f"{time.time():.6f}",
        },
    }


def form_body(fields: dict[str, str]) -> bytes:
    """URL-encode form fields (slash commands)."""
    return urlencode(fields).encode()


def payload_body(payload: dict[str, Any]) -> bytes:
    """Interactive payloads arrive as a form field ``payload`` holding JSON."""
    return urlencode({"payload": json.dumps(payload)}).encode()
