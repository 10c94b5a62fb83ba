"""``/gpu-risk maintenance add|list|remove`` through the real Bolt app and the fake Slack, the
stored windows silencing the pipeline's cycles, and ``status`` listing the windows."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlparse

import pytest

from bot.blocks.render import render_text
from tests.fakeslack import post_signed, slash_command
from tests.fakeslack.payloads import form_body
from tests.fixtures import slack as fx
from tests.fixtures.slack import (
    ADMIN,
    ALERTS,
    ONCALL_MEMBER,
    OUTSIDER,
    SECRET,
    Env,
    Served,
    gpu_incident,
)

render_md = partial(render_text, markup=True)

fake_slack = fx.fake_slack
migrated_db = fx.migrated_db
repo = fx.repo
env = fx.env
served = fx.served


def command(env: Env, served: Served, text: str, user: str = ADMIN) -> dict[str, Any]:
    """Run ``/gpu-risk text`` through HTTP; return what the bot posted to the response_url."""
    url = env.fake.response_url()
    body = form_body(slash_command(text, user=user, channel=ALERTS, response_url=url))
    started = time.monotonic()
    status, _, _ = post_signed(f"{served.url}/slack/events", body, SECRET)
    assert status == 200 and time.monotonic() - started < 3.0
    path = urlparse(url).path
    answer: dict[str, Any] = env.fake.wait_for(
        lambda: next((r for r in env.fake.responses if r["url"] == path), None)
    )
    return answer


def said(env: Env, served: Served, text: str, user: str = ADMIN) -> str:
    """The rendered answer to ``/gpu-risk text`` (ephemeral unless public)."""
    answer = command(env, served, text, user)
    assert answer["response_type"] == ("in_channel" if text.endswith("public") else "ephemeral")
    return render_md(answer["blocks"])


def test_add_list_remove_a_one_off_and_a_recurring_window(env: Env, served: Served) -> None:
    before = datetime.now(UTC)
    added = said(env, served, "maintenance add gpu-node-002 3h firmware upgrade")
    assert "@U0ADMIN added maintenance window #1 on `gpu-node-002`" in added
    assert "now*, until" in added and "Reason: firmware upgrade" in added
    (one,) = env.repo.maintenance_windows(datetime.now(UTC))
    assert one.window.target == "gpu-node-002" and one.who == ADMIN
    assert one.window.duration == timedelta(hours=3) and one.window.reason == "firmware upgrade"
    assert one.window.start is not None and before <= one.window.start <= datetime.now(UTC)
    assert one.window.active(datetime.now(UTC))

    # The recurring windows start half a day from now, so neither is active whatever the hour
    # the test runs (only the one-off is "now", and listed first).
    hour = (datetime.now(UTC) + timedelta(hours=12)).hour
    weekly = said(env, served, f"maintenance add rack-a1 4h at {hour:02d}:00 on Sun,wed PDU swap")
    assert f"#2 on `rack-a1` (wed,sun at {hour:02d}:00 UTC for 4 hours)" in weekly
    assert "Reason: PDU swap" in weekly
    rec = env.repo.maintenance_windows()[1]
    assert (rec.window.at, rec.window.days) == (datetime(1, 1, 1, hour).time(), ("wed", "sun"))
    daily = said(env, served, f"maintenance add pdu-b1 30m at {hour:02d}:45", user=ONCALL_MEMBER)
    assert f"#3 on `pdu-b1` (daily at {hour:02d}:45 UTC for 30 minutes)" in daily

    listing = said(env, served, "maintenance list")
    assert "Maintenance windows* (3)" in listing
    lines = listing.splitlines()
    assert lines[1].startswith("`gpu-node-002` :construction: *now*")  # active first
    for ident in ("#1 by @U0ADMIN — firmware upgrade", "#2 by @U0ADMIN", "#3 by @U0ONCALL"):
        assert ident in listing

    # status lists them too
    assert "*Maintenance* (3)" in said(env, served, "status")

    removed = said(env, served, "maintenance remove 1")
    assert "Removed maintenance window #1 on `gpu-node-002`" in removed
    assert [r.id for r in env.repo.maintenance_windows()] == [2, 3]
    again = said(env, served, "maintenance remove 1")
    assert "no maintenance window #1" in again
    assert "(2)" in said(env, served, "maintenance list public")


def test_only_admins_plan_maintenance_everyone_lists(env: Env, served: Served) -> None:
    refused = said(env, served, "maintenance add rack-a1 1h", user=OUTSIDER)
    assert "only gpu-risk admins may plan maintenance windows" in refused
    assert env.repo.maintenance_windows() == []
    said(env, served, "maintenance add rack-a1 1h")
    assert "only gpu-risk admins" in said(env, served, "maintenance remove 1", user=OUTSIDER)
    assert len(env.repo.maintenance_windows()) == 1
    assert "(1)" in said(env, served, "maintenance list", user=OUTSIDER)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("maintenance", "`maintenance` needs an action"),
        ("maintenance ad rack-a1 1h", "Did you mean `maintenance add`?"),
        ("maintenance add rack-a1", "needs a target and a duration"),
        ("maintenance add rack-a1 forever", "'forever' is not a duration"),
        ("maintenance add rack-a1 40d", "at most 30 days"),
        (
            "maintenance add rack-a1 8d at 02:00",
            "a recurring maintenance window can be at most 1 week",
        ),
        ("maintenance add rack-a1 4h at 25:00", "'25:00' is not a time of day: use HH:MM in UTC"),
        ("maintenance add rack-a1 4h at noon", "'noon' is not a time of day"),
        ("maintenance add rack-a1 4h at", "`at` needs a value"),
        (
            "maintenance add rack-a1 4h at 02:00 on fry",
            "'fry' is not a weekday. Did you mean `fri`?",
        ),
        ("maintenance add rack-a1 4h on mon", "say when it starts too"),
        ("maintenance list all", "`maintenance list` takes no arguments"),
        ("maintenance remove", "takes one window id"),
        ("maintenance remove abc", "'abc' is not a maintenance window id"),
        ("maintenance remove 0", "'0' is not a maintenance window id"),
    ],
)
def test_every_mistake_gets_a_clear_ephemeral_answer(
    env: Env, served: Served, text: str, problem: str
) -> None:
    answer = said(env, served, text)
    assert problem in answer, answer
    assert env.repo.maintenance_windows() == []


def test_an_unknown_target_gets_the_closest_names(env: Env, served: Served) -> None:
    answer = said(env, served, "maintenance add gpu-node-01 2h")
    assert "I don't know `gpu-node-01`" in answer and "`gpu-node-001`" in answer
    assert "`pdu-a1`" in said(env, served, "maintenance add pdu-a2 2h")
    assert env.repo.maintenance_windows() == []


def test_a_stored_window_keeps_an_incident_from_being_posted(env: Env, served: Served) -> None:
    said(env, served, "maintenance add gpu-node-001 2h")
    now = datetime.now(UTC)
    targets = [w.window.target for w in env.repo.maintenance_windows(now) if w.window.active(now)]
    # what the pipeline passes to apply_cycle (Pipeline.maintenance_targets reads the same rows)
    decisions = env.repo.apply_cycle(now, [gpu_incident(now)], True, maintenance=targets)
    assert decisions and not any(d.notify for d in decisions)
    assert env.repo.open_incidents() and not [o for o in env.repo.outbox() if o.kind == "post"]
    said(env, served, "maintenance remove 1")
    later = now + timedelta(minutes=1)
    assert env.repo.maintenance_windows(later) == []
    decisions = env.repo.apply_cycle(later, [gpu_incident(now)], True, maintenance=[])
    assert [o.kind for o in env.repo.outbox() if o.kind == "post"] == ["post"]


def test_settings_windows_are_listed_but_not_removable(fake_slack: Any, repo: Any) -> None:
    from bot.slack.maintenance import maintenance_view

    env = fx.make_env(
        fake_slack,
        repo,
        maintenance=[{"target": "rack-b1", "days": ["sat"], "at": "01:00", "duration": "2h"}],
    )
    now = datetime.now(UTC)
    (view,) = env.bot.service.maintenance_views(now)
    assert view.id is None and view.schedule == "sat at 01:00 UTC for 2 hours"
    assert view.start.weekday() == 5 and view.end - view.start == timedelta(hours=2)
    assert view.end > now
    assert maintenance_view(env.bot.service.maintenance[0], now) == view
    reply = env.bot.service.command("maintenance list", ADMIN)
    assert "`rack-b1`" in render_md(reply.blocks) and "· settings" in render_md(reply.blocks)
