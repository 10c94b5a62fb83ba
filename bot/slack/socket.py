"""Socket Mode (the default when SLACK_APP_TOKEN is set): no public URL needed."""

from __future__ import annotations

import logging
import threading

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler

logger = logging.getLogger(__name__)


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


def close_socket_mode(handler: SocketModeHandler, timeout: float = 5.0) -> bool:
    """Close the Socket Mode connection, waiting at most ``timeout`` seconds; True when closed.

    slack_sdk's built-in client can block for ever in ``close()``, joining a session thread that
    sits in a socket read under the lock ``disconnect()`` needs (slackapi/python-slack-sdk #1873,
    #1874: seen here on a loaded machine). Its threads are daemons, so a shutdown that gives up
    waiting still exits; it is logged instead of hanging the bot.
    """

    def close() -> None:
        try:
            handler.close()
        except Exception:
            logger.exception("closing Socket Mode failed")

    closer = threading.Thread(target=close, name="socket-mode-close", daemon=True)
    closer.start()
    closer.join(timeout)
    if closer.is_alive():
        logger.warning("Socket Mode did not close within %.0f s; leaving it to exit", timeout)
        return False
    return True
