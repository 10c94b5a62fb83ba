"""Modal submissions: the silence modal (problems shown in the modal); other views acknowledged."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App

from bot.blocks.common import SILENCE_CALLBACK_ID, clip
from bot.blocks.modal import DURATION_ACTION, DURATION_BLOCK, REASON_ACTION, REASON_BLOCK
from bot.slack.listeners.replies import id_of, object_of, text_of
from bot.slack.service import SlackService

logger = logging.getLogger(__name__)

CALLBACK_IDS: tuple[str, ...] = (SILENCE_CALLBACK_ID,)
ANY = re.compile(r".*", re.DOTALL)
MAX_REASON = 500  # the modal's reason input allows 500 characters
MAX_ERROR = 150  # Slack shows a short line under the input


@dataclass(frozen=True)
class SilenceForm:
    """What a submitted silence modal holds; missing or mistyped fields read as ``""``."""

    incident: str
    channel: str
    ts: str
    duration: str
    reason: str


def read_silence_form(view: Mapping[str, Any]) -> SilenceForm:
    """Read a submitted silence modal without trusting its shape."""
    try:
        meta = json.loads(text_of(view.get("private_metadata")) or "{}")
    except (ValueError, RecursionError):
        meta = {}
    meta = meta if isinstance(meta, dict) else {}
    values = object_of(object_of(view.get("state")).get("values"))
    selected = _input(values, DURATION_BLOCK, DURATION_ACTION).get("selected_option")
    incident = meta.get("incident")
    return SilenceForm(
        incident=str(incident) if isinstance(incident, int | str) else "",
        channel=text_of(meta.get("channel")),
        ts=text_of(meta.get("ts")),
        duration=text_of(selected.get("value")) if isinstance(selected, dict) else "",
        reason=text_of(_input(values, REASON_BLOCK, REASON_ACTION).get("value")),
    )


def _input(values: Mapping[str, Any], block: str, action: str) -> Mapping[str, Any]:
    """One input's state (``values[block][action]``), or empty."""
    return object_of(object_of(values.get(block)).get(action))


def form_errors(service: SlackService, form: SilenceForm, user: str) -> dict[str, str]:
    """Problems to show under the modal's inputs, by block id (empty: apply it)."""
    errors = {}
    if len(form.reason) > MAX_REASON:
        errors[REASON_BLOCK] = f"A reason can be at most {MAX_REASON} characters."
    problem = service.silence_problem(form.incident, user, form.duration or "(none)")
    if problem:
        errors[DURATION_BLOCK] = clip(problem, MAX_ERROR)
    return errors


def register(app: App, service: SlackService) -> None:
    """Register the silence modal's submission handler, then ones for any other view."""

    @app.view(SILENCE_CALLBACK_ID)
    def silence_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        """Show problems in the modal; otherwise close it, store the silence, redraw the alert."""
        user = id_of(body.get("user"))
        form = read_silence_form(view)
        try:
            errors = form_errors(service, form, user)
        except Exception:
            logger.exception("checking a silence submission failed")
            errors = {DURATION_BLOCK: "Something went wrong on gpu-risk's side; try again."}
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()
        try:
            service.silence_incident(form.incident, user, form.channel, form.ts,
                                     duration=form.duration, reason=form.reason)  # fmt: skip
        except Exception:
            logger.exception("applying a silence from the modal failed")

    @app.view(ANY)
    def other_view(ack: Ack, view: dict[str, Any]) -> None:
        """Close a view gpu-risk does not know, and log it once."""
        ack()
        logger.warning("ignored unknown view submission %r", text_of(view.get("callback_id"))[:100])

    @app.view_closed(ANY)
    def view_closed(ack: Ack) -> None:
        """Nothing to do when someone cancels a modal."""
        ack()
