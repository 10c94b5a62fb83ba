"""Events: app_home_opened publishes the fleet-at-a-glance Home tab."""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.slack.service import SlackService

EVENTS: tuple[str, ...] = ("app_home_opened",)


def register(app: App, service: SlackService) -> None:
    """Register the App Home handler."""

    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any], client: WebClient) -> None:
        """Publish the Home tab for the user who opened it."""
        if event.get("tab", "home") != "home":
            return
        client.views_publish(user_id=event["user"], view=service.home())
