"""The Bolt app: listeners registered on one App with ONE error handler (``bot/wiring`` composes it)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from slack_bolt import App, BoltResponse
from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

from bot.blocks.answers import error_blocks
from bot.slack.listeners import actions, commands, events, views
from bot.slack.notifier import SlackNotifier
from bot.slack.service import SlackService

logger = logging.getLogger(__name__)

LISTENER_MODULES = (commands, actions, views, events)


def build_app(
    service: SlackService,
    *,
    client: WebClient,
    signing_secret: str | None,
    socket_mode: bool = False,
    token_verification: bool = True,
) -> App:
    """A Bolt App on ``client`` with every listener and one error handler.

    HTTP mode verifies ``signing_secret`` on every request (401 on a bad signature or a
    timestamp older than 5 minutes). Socket Mode needs no signing secret. ``App()`` calls
    auth.test at construction unless ``token_verification`` is False.
    """
    if not socket_mode and not signing_secret:
        raise ValueError(
            "HTTP mode needs SLACK_SIGNING_SECRET (or set SLACK_APP_TOKEN for Socket Mode)"
        )
    app = App(
        client=client,
        signing_secret=signing_secret or "",
        request_verification_enabled=not socket_mode,
        token_verification_enabled=token_verification,
        ignoring_self_events_enabled=True,
        logger=logger,
    )
    for module in LISTENER_MODULES:
        module.register(app, service)

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> BoltResponse | None:
        """Log the failure with its traceback; tell the user politely when we can."""
        logger.exception("Slack listener failed: %s", error, exc_info=error)
        url = (body or {}).get("response_url") or next(
            (r.get("response_url") for r in (body or {}).get("response_urls", [])), None
        )
        if url:
            try:
                WebhookClient(url).send(
                    text="Something went wrong on gpu-risk's side; it has been logged.",
                    blocks=error_blocks(),
                    response_type="ephemeral",
                    replace_original=False,
                )
            except Exception:
                logger.exception("could not tell the user about the failure")
        return None

    return app


@dataclass
class SlackBot:
    """Everything Slack, composed: the Bolt app, its service and the notifier for alerts."""

    app: App
    service: SlackService
    notifier: SlackNotifier
    client: WebClient
