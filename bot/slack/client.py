"""The one way to build a Slack WebClient: base URL from settings, retry handlers attached."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler

# Web API methods the bot calls, and the bot scope each needs (manifest.yml must grant them).
SCOPES_BY_METHOD: dict[str, str] = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
    "views.publish": "",  # no scope needed
    "views.open": "",
    "conversations.history": "channels:history",  # finding a post after a crash (+groups:)
    "usergroups.users.list": "usergroups:read",  # only when admins include user groups (S...)
}
REQUIRED_BOT_SCOPES: frozenset[str] = frozenset(
    # commands: the /gpu-risk slash command; groups:history: conversations.history in
    # private alert channels
    {"chat:write", "files:write", "commands", "groups:history"}
)


def retry_handlers(max_rate_limit_retries: int = 10) -> list[RetryHandler]:
    """429 (sleeps Retry-After), connection errors and 5xx, each retried with backoff."""
    return [
        ConnectionErrorRetryHandler(max_retry_count=3),
        RateLimitErrorRetryHandler(max_retry_count=max_rate_limit_retries),
        ServerErrorRetryHandler(max_retry_count=3),
    ]


def make_client(
    token: str,
    base_url: str = "https://slack.com/api/",
    *,
    timeout: int = 30,
    max_rate_limit_retries: int = 10,
) -> WebClient:
    """A WebClient for ``token`` at ``base_url`` (must end with '/') with our retry handlers."""
    url = base_url if base_url.endswith("/") else base_url + "/"
    handlers = retry_handlers(max_rate_limit_retries)
    return WebClient(token=token, base_url=url, timeout=timeout, retry_handlers=handlers)
