"""The Bolt app: listeners registered on one App with ONE error handler (``bot/wiring`` composes it)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_bolt import App, BoltContext, BoltRequest
from slack_sdk import WebClient

from bot.blocks.answers import error_blocks
from bot.slack.listeners import actions, commands, events, views
from bot.slack.listeners.replies import SORRY
from bot.slack.notifier import SlackNotifier
from bot.slack.service import SlackService
from bot.slack.verify import VERIFIED, ReplayGuard, RequestVerifier

logger = logging.getLogger(__name__)

LISTENER_MODULES = (commands, actions, views, events)


class GpuRiskApp(App):
    """Bolt's App carrying the verifier its HTTP endpoint checks raw requests with."""

    verifier: RequestVerifier | None = None


def build_app(
    service: SlackService,
    *,
    client: WebClient,
    signing_secret: str | None,
    socket_mode: bool = False,
    token_verification: bool = True,
    replay_guard: ReplayGuard | None = None,
) -> App:
    """A Bolt App on ``client`` with every listener and one error handler.

    HTTP mode verifies ``signing_secret`` on every request (401 on a bad signature, a timestamp
    older than 5 minutes or a replayed signature, remembered by ``replay_guard``, default in
    memory) before Bolt parses it, and Bolt verifies it again. Socket Mode needs no signing
    secret. ``App()`` calls auth.test at construction unless ``token_verification`` is False.
    """
    if not socket_mode and not signing_secret:
        raise ValueError(
            "HTTP mode needs SLACK_SIGNING_SECRET (or set SLACK_APP_TOKEN for Socket Mode)"
        )
    app = GpuRiskApp(
        client=client,
        signing_secret=signing_secret or "",
        request_verification_enabled=not socket_mode,
        token_verification_enabled=token_verification,
        ignoring_self_events_enabled=True,
        logger=logger,
    )
    if signing_secret:
        app.verifier = RequestVerifier(signing_secret, guard=replay_guard)
    for module in LISTENER_MODULES:
        module.register(app, service)
    app.error(on_error)
    return app


def on_error(error: Exception, request: BoltRequest, context: BoltContext) -> None:
    """Log the failure with its traceback; tell the user only on a verified request's own URL."""
    logger.exception("Slack request failed: %s", error, exc_info=error)
    authentic = request.mode == "socket_mode" or request.context.get(VERIFIED) is True
    respond = context.respond
    if not authentic or respond is None or not isinstance(context.response_url, str):
        return
    try:
        respond(
            text=SORRY, blocks=error_blocks(), response_type="ephemeral", replace_original=False
        )
    except Exception:
        logger.exception("could not tell the user about the failure")


@dataclass
class SlackBot:
    """Everything Slack, composed: the Bolt app, its service and the notifier for alerts."""

    app: App
    service: SlackService
    notifier: SlackNotifier
    client: WebClient
