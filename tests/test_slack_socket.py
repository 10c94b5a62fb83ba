"""End to end in Socket Mode: the real Bolt app connects through apps.connections.open to the
fake Slack's websocket, receives envelopes (slash command, button, modal, App Home) and acks them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest

from bot.blocks.common import ACTION_ACK
from bot.blocks.modal import DURATION_ACTION, DURATION_BLOCK, REASON_ACTION, REASON_BLOCK
from bot.blocks.render import render_text
from bot.slack.socket import close_socket_mode, start_socket_mode
from storage.repository import Repository
from tests.fakeslack import (
    FakeSlack,
    app_home_opened,
    block_action,
    slash_command,
    view_submission,
)
from tests.fixtures import slack as fx
from tests.fixtures.slack import ADMIN, ALERTS, Env, eventually, gpu_incident, make_env

render_md = partial(render_text, markup=True)  # keep mrkdwn markers and link URLs

fake_slack = fx.fake_slack
migrated_db = fx.migrated_db
repo = fx.repo


@pytest.fixture
def socket_env(fake_slack: FakeSlack, repo: Repository) -> Iterator[Env]:
    """The bot configured for Socket Mode (app token, no signing secret), connected."""
    env = make_env(
        fake_slack, repo, slack_app_token=fake_slack.app_token, slack_signing_secret=None
    )
    handler = start_socket_mode(env.bot.app, fake_slack.app_token, ping_interval=0.5)
    fake_slack.wait_connected()
    yield env
    close_socket_mode(handler)  # bounded: slack_sdk's own close can hang under load


def test_connects_with_the_app_token(socket_env: Env) -> None:
    (opened,) = socket_env.fake.calls_to("apps.connections.open")
    assert opened.token == socket_env.fake.app_token
    assert socket_env.fake.calls_to("auth.test")[0].token == socket_env.fake.bot_token


def test_slash_command_is_acked_and_answered(socket_env: Env) -> None:
    fake = socket_env.fake
    now = datetime.now(UTC)
    socket_env.cycle([gpu_incident(now)], hot={"gpu-node-001/3": 0.95})
    url = fake.response_url()
    started = time.monotonic()
    env_id = fake.push(
        "slash_commands",
        slash_command("why gpu-node-001/3", user=ADMIN, channel=ALERTS, response_url=url),
    )
    fake.wait_ack(env_id)
    assert time.monotonic() - started < 3.0
    answer: dict[str, Any] = fake.wait_for(
        lambda: next((r for r in fake.responses if url.endswith(r["url"])), None)
    )
    assert answer["response_type"] == "ephemeral"
    assert render_md(answer["blocks"]).startswith("Check GPU 3 on gpu-node-001")


def test_incident_life_and_buttons_over_socket_mode(socket_env: Env) -> None:
    fake = socket_env.fake
    socket_env.cycle([gpu_incident(datetime.now(UTC))])
    rec = socket_env.only_open()
    ref = rec.message_ref
    assert ref is not None
    payload = block_action(
        ACTION_ACK,
        str(rec.id),
        user=ADMIN,
        channel=ref.channel,
        message_ts=ref.ts,
        message_blocks=fake.message(ref.channel, ref.ts)["blocks"],
        response_url=fake.response_url(),
    )
    fake.wait_ack(fake.push("interactive", payload))
    eventually(lambda: socket_env.repo.incident(rec.id).acknowledged_by == ADMIN)  # type: ignore[union-attr]
    fake.wait_for(
        lambda: "Acknowledged by @U0ADMIN" in render_md(fake.message(ref.channel, ref.ts)["blocks"])
    )
    # the silence modal's submission, straight from Slack
    from bot.blocks.modal import silence_modal

    view = silence_modal(str(rec.id), "gpu-node-001/3", ref.channel, ref.ts)
    values = {
        DURATION_BLOCK: {DURATION_ACTION: {"selected_option": {"value": "1h"}}},
        REASON_BLOCK: {REASON_ACTION: {"value": "burn-in"}},
    }
    fake.wait_ack(fake.push("interactive", view_submission(view, values, user=ADMIN)))
    (sil,) = eventually(lambda: socket_env.repo.active_silences(datetime.now(UTC)))
    assert (sil.target, sil.reason) == ("gpu-node-001/3", "burn-in")
    # worse, then resolved: edits and thread replies as in HTTP mode
    socket_env.repo.unsilence("gpu-node-001/3", datetime.now(UTC))
    socket_env.cycle([gpu_incident(datetime.now(UTC), severity="critical", score=0.99)])
    socket_env.cycle([])
    final = render_md(fake.message(ref.channel, ref.ts)["blocks"])
    assert final.startswith("Resolved: Check GPU 3 on gpu-node-001")
    assert "Acknowledged by @U0ADMIN" in final
    assert len(fake.thread(ref.channel, ref.ts)) == 2


def test_app_home_over_socket_mode(socket_env: Env) -> None:
    fake = socket_env.fake
    env_id = fake.push("events_api", app_home_opened(ADMIN))
    fake.wait_ack(env_id)
    (call,) = fake.wait_for(lambda: fake.calls_to("views.publish"))
    assert call.args["user_id"] == ADMIN
    assert "GPU fleet at a glance" in render_md(call.args["view"]["blocks"])


def test_a_socket_mode_close_that_hangs_does_not_hang_the_shutdown() -> None:
    """slack_sdk's close() can block for ever (joining a session thread): shutdown goes on."""
    release = threading.Event()

    class Stuck:
        def close(self) -> None:
            release.wait(30)

    class Closes:
        closed = False

        def close(self) -> None:
            self.closed = True

    started = time.monotonic()
    assert close_socket_mode(Stuck(), timeout=0.2) is False  # type: ignore[arg-type]
    assert time.monotonic() - started < 5
    release.set()
    fine = Closes()
    assert close_socket_mode(fine, timeout=5) is True  # type: ignore[arg-type]
    assert fine.closed
