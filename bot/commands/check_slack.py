"""``gpu-risk check`` against Slack, one :class:`Finding` per result.

The token (auth.test), its scopes against manifest.yml, and each configured channel with the
bot's membership.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.commands.check_findings import Finding
from storage.redact import redact_url

if TYPE_CHECKING:
    from bot.config import Settings

#: The Slack app's manifest: the bot scopes the token should have.
MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"


def manifest_scopes(path: Path = MANIFEST) -> set[str] | None:
    """The bot scopes of the app manifest, or None when it cannot be read."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        scopes = data["oauth_config"]["scopes"]["bot"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    return {str(s) for s in scopes}


def _header(headers: Any, name: str) -> str | None:
    """A response header, case-insensitively (slack_sdk keeps the server's spelling)."""
    for key, value in dict(headers or {}).items():
        if str(key).lower() == name:
            return str(value[0] if isinstance(value, list) else value)
    return None


def slack_findings(settings: Settings) -> list[Finding]:
    """auth.test, scopes against manifest.yml, each configured channel and the bot's membership."""
    from slack_sdk.errors import SlackApiError, SlackClientError

    from bot.slack.client import make_client

    if settings.slack_bot_token is None:
        return [Finding(False, "SLACK_BOT_TOKEN is not set")]
    client = make_client(
        settings.slack_bot_token.get_secret_value(),
        settings.slack_api_url,
        timeout=10,
        max_rate_limit_retries=1,
    )
    try:
        auth = client.auth_test()
    except SlackApiError as exc:
        return [
            Finding(
                False,
                f"Slack auth.test failed ({exc.response.get('error')}): check SLACK_BOT_TOKEN "
                "(the xoxb- token of the installed app) and SLACK_API_URL",
            )
        ]
    except (SlackClientError, OSError) as exc:
        return [
            Finding(
                False,
                f"cannot reach Slack at {redact_url(settings.slack_api_url)} "
                f"({type(exc).__name__}): check SLACK_API_URL and the network",
            )
        ]
    out = [Finding(True, f"Slack token works: @{auth.get('user')} in {auth.get('team')}")]
    granted = _header(auth.headers, "x-oauth-scopes")
    wanted = manifest_scopes()
    if granted is None or wanted is None:
        out.append(Finding(None, "cannot compare the token's scopes with manifest.yml"))
    else:
        missing = sorted(wanted - {s.strip() for s in granted.split(",")})
        if missing:
            out.append(
                Finding(
                    False,
                    f"the Slack token lacks scope(s) {', '.join(missing)}: add them under OAuth & "
                    "Permissions (or re-create the app from manifest.yml) and reinstall it",
                )
            )
        else:
            out.append(Finding(True, "the Slack token has every scope of manifest.yml"))
    channels = dict.fromkeys(
        c for c in (settings.slack_channel, *settings.slack_routes.values()) if c
    )
    for channel in channels:
        out.append(_channel_finding(client, channel))
    return out


def _channel_finding(client: Any, channel: str) -> Finding:
    """Whether ``channel`` (id or name) exists and the bot is a member of it."""
    from slack_sdk.errors import SlackApiError

    from bot.slack.notifier import CHANNEL_ID

    where = "(GPU_RISK_SLACK_CHANNEL / GPU_RISK_SLACK_ROUTES)"
    if not CHANNEL_ID.match(channel):
        return _channel_by_name(client, channel.lstrip("#"), where)
    try:
        info = client.conversations_info(channel=channel)
    except SlackApiError as exc:
        error = exc.response.get("error")
        if error != "missing_scope":
            return Finding(
                False,
                f"Slack channel {channel}: {error}: check the id {where}; a private channel is "
                "visible only once the bot is invited (/invite @gpu-risk)",
            )
        return _membership_by_history(client, channel, where)
    data = info.get("channel") or {}
    name = f"#{data.get('name')} ({channel})" if data.get("name") else channel
    if data.get("is_archived"):
        return Finding(False, f"Slack channel {name} is archived: pick another {where}")
    if not data.get("is_member"):
        return Finding(
            False, f"the bot is not in Slack channel {name}: invite it there (/invite @gpu-risk)"
        )
    return Finding(True, f"the bot is in Slack channel {name}")


def _membership_by_history(client: Any, channel: str, where: str) -> Finding:
    """Without channels:read, reading one message tells whether the bot is in the channel."""
    from slack_sdk.errors import SlackApiError

    try:
        client.conversations_history(channel=channel, limit=1)
    except SlackApiError as exc:
        error = exc.response.get("error")
        if error == "not_in_channel":
            return Finding(
                False,
                f"the bot is not in Slack channel {channel}: invite it there (/invite @gpu-risk)",
            )
        return Finding(False, f"Slack channel {channel}: {error}: check the id {where}")
    return Finding(True, f"the bot is in Slack channel {channel}")


def _channel_by_name(client: Any, name: str, where: str) -> Finding:
    """A channel given by name: found in conversations.list, and the bot a member."""
    from slack_sdk.errors import SlackApiError

    cursor: str | None = None
    try:
        while True:
            resp = client.conversations_list(
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=1000,
                cursor=cursor,
            )
            for ch in resp.get("channels") or []:
                if ch.get("name") == name:
                    if not ch.get("is_member"):
                        return Finding(
                            False,
                            f"the bot is not in Slack channel #{name}: invite it there "
                            "(/invite @gpu-risk)",
                        )
                    return Finding(True, f"the bot is in Slack channel #{name} ({ch.get('id')})")
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                break
    except SlackApiError as exc:
        return Finding(
            False,
            f"cannot look up Slack channel #{name} ({exc.response.get('error')}): configure its "
            f"id (C...) instead {where}, or grant channels:read and groups:read",
        )
    return Finding(False, f"Slack channel #{name} not found: check the name {where}")
