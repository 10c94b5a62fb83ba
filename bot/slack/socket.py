"""Socket Mode (the default when SLACK_APP_TOKEN is set): no public URL needed."""

from __future__ import annotations

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler


def start_socket_mode(
    app: App, app_token: str, *, ping_interval: float = 10.0
) -> SocketModeHandler:
    """Connect to Slack over Socket Mode in the background; ``.close()`` to stop.

    Uses slack_sdk's built-in websocket client and the app's WebClient (so SLACK_API_URL is
    honoured for apps.connections.open).
    """
    if not app_token.startswith("xapp-"):
        raise ValueError("SLACK_APP_TOKEN must be an app-level token (xapp-...)")
    handler = SocketModeHandler(app, app_token, web_client=app.client, ping_interval=ping_interval)
    handler.connect()
    return handler
