"""The Bolt app: listeners registered on one App with ONE error handler, composed from Settings."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import networkx as nx
from slack_bolt import App, BoltResponse
from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

from analysis.types import Topology
from bot.blocks.answers import error_blocks
from bot.blocks.common import BlockOptions
from bot.config import Settings
from bot.slack.client import make_client
from bot.slack.listeners import actions, commands, events, views
from bot.slack.notifier import SlackNotifier
from bot.slack.service import GraphImage, SlackService, render_dependency_picture
from storage.repository import Repository

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


def block_options(settings: Settings) -> BlockOptions:
    """Builders' options from Settings: links and the label allowlist."""
    return BlockOptions(
        grafana_url=settings.grafana_url,
        prometheus_ui_url=settings.prometheus_ui_url,
        label_allowlist=frozenset(settings.slack_label_allowlist),
    )


def build_slack(
    settings: Settings,
    repository: Repository,
    *,
    topology: Topology | None = None,
    images: Callable[[int], Mapping[str, bytes]] | None = None,
    graph: Callable[[], nx.DiGraph] | None = None,
    graph_image: GraphImage | None = render_dependency_picture,
    client: WebClient | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    min_interval: float = 1.0,
    token_verification: bool = True,
) -> SlackBot:
    """Compose the Slack side from Settings: client, notifier, service, Bolt app."""
    if client is None:
        if settings.slack_bot_token is None:
            raise ValueError("SLACK_BOT_TOKEN is not set: the bot token (xoxb-...) of your app")
        client = make_client(settings.slack_bot_token.get_secret_value(), settings.slack_api_url)
    notifier = SlackNotifier(
        client,
        settings.slack_routes,
        settings.slack_channel,
        options=block_options(settings),
        topology=topology,
        min_interval=min_interval,
    )
    service = SlackService(
        repository,
        notifier,
        topology=topology,
        admins=settings.slack_admins,
        threshold=settings.threshold,
        data_source=settings.prometheus_url or "metrics source",
        # default: the PNGs the pipeline stored with the incident (Repository.images)
        images=images if images is not None else repository.images,
        graph=graph,
        graph_image=graph_image,
        now=now,
    )
    secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    )
    app = build_app(
        service,
        client=client,
        signing_secret=secret,
        socket_mode=settings.slack_app_token is not None,
        token_verification=token_verification,
    )
    return SlackBot(app=app, service=service, notifier=notifier, client=client)
