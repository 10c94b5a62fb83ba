"""The one way to build a Slack WebClient: base URL from settings, retry handlers attached.

Retries are short on purpose: a 429 is waited out in place only when its Retry-After is small
(``max_rate_limit_wait``); a longer one fails the call at once, and the outbox schedules the
retry at (at least) the Retry-After instead of holding a delivery thread asleep for it.
"""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

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
    "conversations.list": "channels:read",  # a channel name -> its id at start-up (+groups:read)
    "conversations.info": "channels:read",  # gpu-risk check: is the bot in the channel
}
REQUIRED_BOT_SCOPES: frozenset[str] = frozenset(
    # commands: the /gpu-risk slash command; groups:history / groups:read: conversations.history
    # and conversations.list in private alert channels
    {"chat:write", "files:write", "commands", "groups:history", "groups:read"}
)


class BoundedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """Retry a 429 in place only when its Retry-After is at most ``max_wait`` seconds."""

    def __init__(self, max_retry_count: int = 2, max_wait: float = 2.0) -> None:
        """Retry at most ``max_retry_count`` times, never sleeping more than ``max_wait`` each."""
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        """A 429 whose Retry-After (default 1 s) is short enough to wait out here."""
        if response is None or response.status_code != 429:
            return False
        return _retry_after(response.headers) <= self.max_wait


def _retry_after(headers: dict[str, Any]) -> float:
    """Return a response's Retry-After in seconds (1 when absent or unreadable)."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) and value else value
            try:
                return float(raw)
            except (TypeError, ValueError):
                return 1.0
    return 1.0


def retry_handlers(
    max_rate_limit_retries: int = 2, max_rate_limit_wait: float = 2.0
) -> list[RetryHandler]:
    """Short 429 waits, connection errors and 5xx: each retried a little, with backoff."""
    return [
        ConnectionErrorRetryHandler(max_retry_count=2),
        BoundedRateLimitRetryHandler(max_rate_limit_retries, max_rate_limit_wait),
        ServerErrorRetryHandler(max_retry_count=2),
    ]


def make_client(
    token: str,
    base_url: str = "https://slack.com/api/",
    *,
    timeout: int = 15,
    max_rate_limit_retries: int = 2,
    max_rate_limit_wait: float = 2.0,
) -> WebClient:
    """A WebClient for ``token`` at ``base_url`` (must end with '/') with our retry handlers."""
    url = base_url if base_url.endswith("/") else base_url + "/"
    handlers = retry_handlers(max_rate_limit_retries, max_rate_limit_wait)
    return WebClient(token=token, base_url=url, timeout=timeout, retry_handlers=handlers)
