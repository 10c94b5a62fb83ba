"""Events: app_home_opened publishes the fleet-at-a-glance Home tab; others are logged."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.listeners.replies import text_of
from bot.slack.service import SlackService

logger = logging.getLogger(__name__)

EVENTS: tuple[str, ...] = ("app_home_opened",)
ANY = re.compile(r".*", re.DOTALL)


def register(app: App, service: SlackService) -> None:
    """Register the App Home handler, then one that logs any other event."""

    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any], client: WebClient) -> None:
        """Publish the Home tab for the user who opened it."""
        user = text_of(event.get("user"))
        if event.get("tab", "home") != "home" or not user:
            return
        try:
            client.views_publish(user_id=user, view=service.home())
        except SlackApiError as err:
            logger.warning("could not publish the Home tab: %s", err.response.get("error"))
        except Exception:
            logger.exception("publishing the Home tab failed")

    @app.event(ANY)
    def other_event(event: dict[str, Any]) -> None:
        """Events gpu-risk did not subscribe to: acknowledged (by Bolt) and logged."""
        logger.warning("ignored Slack event %r", text_of(event.get("type"))[:100])
