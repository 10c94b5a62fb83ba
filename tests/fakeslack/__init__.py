"""A local fake of the Slack Web API and Socket Mode, for driving the real slack-bolt/slack-sdk."""

from tests.fakeslack.payloads import (
    app_home_opened,
    block_action,
    slash_command,
    view_submission,
)
from tests.fakeslack.server import Call, FakeSlack
from tests.fakeslack.signing import post_signed, sign

__all__ = [
    "Call",
    "FakeSlack",
    "app_home_opened",
    "block_action",
    "post_signed",
    "sign",
    "slash_command",
    "view_submission",
]
