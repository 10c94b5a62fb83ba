"""manifest.yml is a valid Slack app manifest and agrees with the code."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bot.blocks.alert import alert_blocks
from bot.blocks.common import ALL_ACTION_IDS, ALL_CALLBACK_IDS
from bot.blocks.modal import silence_modal
from bot.slack.client import REQUIRED_BOT_SCOPES, SCOPES_BY_METHOD
from bot.slack.commands import COMMAND
from bot.slack.listeners.actions import ACTION_IDS
from bot.slack.listeners.events import EVENTS
from bot.slack.listeners.views import CALLBACK_IDS
from tests.fixtures.slack import gpu_incident

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT.parent / "shared" / "slack" / "manifest.schema.1.0.0.json"


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    """The parsed manifest.yml."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "manifest.yml").read_text())
    return data


def test_manifest_validates_against_slack_schema(manifest: dict[str, Any]) -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"Slack's manifest schema not found at {SCHEMA}")
    schema = json.loads(SCHEMA.read_text())
    errors = [
        f"{'/'.join(map(str, e.path))}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(manifest)
    ]
    assert errors == []
    # and the schema does catch a broken manifest
    broken = {**manifest, "oauth_config": {"scopes": {"bot": "chat:write"}}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_command_events_and_scopes_agree_with_code(manifest: dict[str, Any]) -> None:
    commands = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert commands == [COMMAND]
    assert sorted(manifest["settings"]["event_subscriptions"]["bot_events"]) == sorted(EVENTS)
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    used = {s for s in SCOPES_BY_METHOD.values() if s} | set(REQUIRED_BOT_SCOPES)
    assert scopes == used
    assert "user" not in manifest["oauth_config"]["scopes"]


def test_action_and_callback_ids_in_blocks_have_listeners() -> None:
    alert = alert_blocks(gpu_incident(datetime.now(UTC)))
    in_blocks = {e["action_id"] for b in alert if b["type"] == "actions" for e in b["elements"]}
    assert in_blocks == set(ALL_ACTION_IDS) == set(ACTION_IDS)
    modal = silence_modal("1", "pdu-a1", "C1", "1.1")
    assert {modal["callback_id"]} == set(ALL_CALLBACK_IDS) == set(CALLBACK_IDS)


def test_dockerfile_is_slim_non_root_and_health_checked() -> None:
    text = (ROOT / "Dockerfile").read_text()
    froms = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    assert froms and all(f.startswith("python:3.11-slim") for f in froms)
    user = next(line.split()[1] for line in text.splitlines() if line.startswith("USER "))
    assert user.split(":")[0] not in ("root", "0")
    assert "HEALTHCHECK" in text and "/livez" in text  # liveness, not data freshness
    assert 'ENTRYPOINT ["gpu-risk"]' in text and 'CMD ["run"]' in text
