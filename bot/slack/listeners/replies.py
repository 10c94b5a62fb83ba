"""How listeners answer: ephemeral replies through Bolt's ``respond``, never raising to Bolt."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Respond
from slack_sdk.errors import SlackApiError

from bot.blocks.answers import error_blocks
from bot.slack.commands import UsageError
from bot.slack.service import Reply, problem_reply

logger = logging.getLogger(__name__)

SORRY = "Something went wrong on gpu-risk's side; it has been logged."


def text_of(value: Any) -> str:
    """``value`` when it is text, else the empty string (fields of a request body)."""
    return value if isinstance(value, str) else ""


def object_of(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def id_of(value: Any) -> str:
    """The ``id`` of a Slack object in a body (or the id itself when given as text)."""
    return text_of(value.get("id") if isinstance(value, dict) else value)


def error_reply() -> Reply:
    """What the user sees when something broke on our side."""
    return Reply(blocks=error_blocks(), text=SORRY)


def tell(respond: Respond, reply: Reply | None) -> None:
    """Send ``reply`` to the request's response_url (ephemeral unless public); log failures."""
    if reply is None:
        return
    if respond.response_url is None:
        logger.info("no response_url to answer on: %s", reply.text[:200])
        return
    try:
        respond(
            text=reply.text,
            blocks=reply.blocks,
            response_type="in_channel" if reply.public else "ephemeral",
            replace_original=False,
        )
    except (OSError, ValueError) as err:
        logger.warning("could not answer on the response_url: %s", err)


def answer_safely(respond: Respond, work: Callable[[], Reply | None], *, what: str) -> Reply | None:
    """Run ``work``; tell the user its reply, what was wrong with the input, or that we failed."""
    try:
        reply = work()
    except UsageError as err:
        reply = problem_reply(str(err))
    except SlackApiError as err:
        logger.warning("Slack refused a call for a %s: %s", what, err.response.get("error"))
        reply = problem_reply(f"Slack refused: {err.response.get('error')}. Please try again.")
    except Exception:
        logger.exception("Slack %s failed", what)
        reply = error_reply()
    tell(respond, reply)
    return reply
