"""End to end in HTTP mode: the real Bolt app behind waitress on one port, signed requests in,
the fake Slack out, a real Repository on SQLite underneath."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlparse

import pytest

from bot.blocks.common import (
    ACTION_ACK,
    ACTION_FALSE_ALARM,
    ACTION_SILENCE_4H,
    ACTION_SILENCE_MODAL,
)
from bot.blocks.modal import DURATION_ACTION, DURATION_BLOCK, REASON_ACTION, REASON_BLOCK
from bot.blocks.render import render_text
from storage.repository import IncidentRecord
from tests.fakeslack import (
    app_home_opened,
    block_action,
    post_signed,
    slash_command,
    view_submission,
)
from tests.fakeslack.payloads import form_body, payload_body
from tests.fixtures import slack as fx
from tests.fixtures.slack import (
    ADMIN,
    ALERTS,
    ONCALL_MEMBER,
    OUTSIDER,
    SECRET,
    Env,
    Served,
    eventually,
    gpu_incident,
    pdu_incident,
)

render_md = partial(render_text, markup=True)  # keep mrkdwn markers and link URLs

fake_slack = fx.fake_slack
migrated_db = fx.migrated_db
repo = fx.repo
env = fx.env
served = fx.served


@pytest.fixture
def live(env: Env, served: Served) -> tuple[Env, Served]:
    """The served bot with two open incidents: GPU 3 on gpu-node-001 and PDU pdu-a1."""
    now = datetime.now(UTC)
    hot = {"gpu-node-001/3": 0.95, "gpu-node-002/1": 0.92}
    env.cycle([gpu_incident(now), pdu_incident(now)], hot=hot)
    return env, served


def command(
    env: Env, served: Served, text: str, user: str = ADMIN, channel: str = ALERTS
) -> dict[str, Any]:
    """Run ``/gpu-risk text`` through HTTP; return what the bot posted to the response_url."""
    url = env.fake.response_url()
    body = form_body(slash_command(text, user=user, channel=channel, response_url=url))
    started = time.monotonic()
    status, _, _ = post_signed(f"{served.url}/slack/events", body, SECRET)
    assert status == 200
    assert time.monotonic() - started < 3.0  # acked within Slack's 3 s
    path = urlparse(url).path
    answer: dict[str, Any] = env.fake.wait_for(
        lambda: next((r for r in env.fake.responses if r["url"] == path), None)
    )
    return answer


def click(
    env: Env, served: Served, action_id: str, rec: IncidentRecord, user: str = ADMIN
) -> tuple[str, dict[str, Any]]:
    """Click a button on an incident's alert; return (response_url path, payload)."""
    ref = rec.message_ref
    assert ref is not None
    url = env.fake.response_url()
    payload = block_action(
        action_id,
        str(rec.id),
        user=user,
        channel=ref.channel,
        message_ts=ref.ts,
        message_blocks=env.fake.message(ref.channel, ref.ts)["blocks"],
        response_url=url,
    )
    status, _, _ = post_signed(f"{served.url}/slack/events", payload_body(payload), SECRET)
    assert status == 200
    return urlparse(url).path, payload


def response_at(env: Env, path: str) -> dict[str, Any]:
    """The bot's post to one response_url."""
    result: dict[str, Any] = env.fake.wait_for(
        lambda: next((r for r in env.fake.responses if r["url"] == path), None)
    )
    return result


def alert_text(env: Env, rec: IncidentRecord) -> str:
    """The alert message as a user sees it now."""
    ref = rec.message_ref
    assert ref is not None
    return render_md(env.fake.message(ref.channel, ref.ts)["blocks"])


def gpu_record(env: Env) -> IncidentRecord:
    """The stored GPU incident."""
    return next(r for r in env.repo.open_incidents() if r.incident.root_cause.kind == "gpu")


# ---------------------------------------------------------------- /gpu-risk


def test_top_is_ephemeral_and_public_on_request(live: tuple[Env, Served]) -> None:
    env, served = live
    for text in ("", "top"):
        answer = command(env, served, text)
        assert answer["response_type"] == "ephemeral"
        rendered = render_md(answer["blocks"])
        assert "2 open incident(s)" in rendered
        assert rendered.index("pdu-a1: 8 GPUs at risk") < rendered.index("Check GPU 3")
        assert "gpu-node-001/3 0.95" in rendered.replace("`", "")  # riskiest GPUs
    assert command(env, served, "top public")["response_type"] == "in_channel"


def test_why_for_node_gpu_and_component(live: tuple[Env, Served]) -> None:
    env, served = live
    for target, title in (
        ("gpu-node-001/3", "Check GPU 3 on gpu-node-001"),
        ("pdu-a1", "pdu-a1: 8 GPUs at risk"),
    ):
        rendered = render_md(command(env, served, f"why {target}")["blocks"])
        assert rendered.startswith(title)
    node = render_md(command(env, served, "why gpu-node-001")["blocks"])
    assert "root cause" in node and ("pdu-a1" in node or "gpu-node-001/3" in node)
    gpu = render_md(command(env, served, "why gpu-node-001/3")["blocks"])
    assert "runs 14 °C hotter" in gpu and "FAN2 speed" in gpu
    assert "Alert and images" in gpu and "Add `public` to post the images here." in gpu
    assert env.fake.uploads.keys() == {
        k for k, u in env.fake.uploads.items() if u["thread_ts"]
    }  # ephemeral: nothing uploaded to the channel
    # public: the images are uploaded to the channel the question came from
    answer = command(env, served, "why gpu-node-001/3 public", channel="C0ASKED")
    assert answer["response_type"] == "in_channel"
    shared = env.fake.wait_for(
        lambda: [u for u in env.fake.uploads.values() if u.get("channel") == "C0ASKED"]
    )
    assert sorted(u["title"] for u in shared) == ["dependency graph", "key metrics"]
    healthy = render_md(command(env, served, "why gpu-node-004")["blocks"])
    assert "No open incident on node `gpu-node-004`" in healthy.replace("\\", "")


def test_unknown_names_get_the_closest_known_names(live: tuple[Env, Served]) -> None:
    env, served = live
    rendered = render_md(command(env, served, "why gpu-node-01")["blocks"])
    assert "I don't know `gpu-node-01`" in rendered and "`gpu-node-001`" in rendered
    rendered = render_md(command(env, served, "whatif pdu-a2")["blocks"])
    assert "`pdu-a1`" in rendered
    nothing = render_md(command(env, served, "graph zzzzzzzz")["blocks"])
    assert "nothing known is close" in nothing


def test_malformed_input_gets_the_usage_line(live: tuple[Env, Served]) -> None:
    env, served = live
    for text, problem in (
        ("frobnicate", "unknown subcommand 'frobnicate'"),
        ("wyh gpu-node-001", "Did you mean `why`?"),
        ("why", "`why` takes exactly one name"),
        ("status now", "`status` takes no arguments"),
        ("silence pdu-a1", "needs a target and a duration"),
        ("silence pdu-a1 forever", "'forever' is not a duration"),
        ("silence pdu-a1 90d", "at most 30 days"),
    ):
        rendered = render_md(command(env, served, text)["blocks"])
        assert problem in rendered, text
        assert "Usage: `/gpu-risk [top | why" in rendered


def test_graph_and_whatif(live: tuple[Env, Served]) -> None:
    env, served = live
    graph = render_md(command(env, served, "graph gpu-node-001")["blocks"])
    assert graph.startswith("Dependencies of node gpu-node-001")
    for upstream in ("pdu-a1", "crac-1", "leaf-a1", "rack-a1"):
        assert upstream in graph
    assert "gpu-node-001/3` 0.95" in graph
    whatif = render_md(command(env, served, "whatif pdu-a1")["blocks"])
    assert whatif.startswith("What if pdu pdu-a1 goes down?")
    assert "*2* node(s) and *8* GPU(s) go down" in whatif
    assert "gpu-node-001" in whatif and "gpu-node-003" not in whatif
    assert "gpu-node-001/3" in whatif.split("Already at risk")[1]
    node = render_md(command(env, served, "whatif gpu-node-004")["blocks"])
    assert "*1* node(s) and *4* GPU(s) go down with `gpu-node-004`" in node


def test_status_and_help(live: tuple[Env, Served]) -> None:
    env, served = live
    now = datetime.now(UTC)
    env.repo.record_scan(now, True, 1.5, 16)
    env.repo.record_model(
        name="graph",
        fleet_fingerprint="fp",
        features=["f1"],
        version="graph-v3",
        path="/tmp/m.joblib",
        fitted_at=now - timedelta(hours=2),
    )
    status = render_md(command(env, served, "status")["blocks"])
    assert "Last scan" in status and "16 GPUs scored" in status
    assert "healthy" in status and "Open incidents*: 2" in status
    assert "graph-v3, age 2.0 h" in status
    helptext = render_md(command(env, served, "help")["blocks"])
    for sub in (
        "top",
        "why",
        "graph",
        "whatif",
        "silence",
        "unsilence",
        "status",
        "help",
        "public",
    ):
        assert f"{sub}" in helptext


def test_silence_and_unsilence_by_command(live: tuple[Env, Served]) -> None:
    env, served = live
    refused = render_md(command(env, served, "silence pdu-a1 4h", user=OUTSIDER)["blocks"])
    assert "only gpu-risk admins may silence" in refused
    assert env.repo.active_silences(datetime.now(UTC)) == []
    done = render_md(command(env, served, "silence pdu-a1 2h rack maintenance")["blocks"])
    assert "@U0ADMIN silenced `pdu-a1` until" in done and "rack maintenance" in done
    (sil,) = env.repo.active_silences(datetime.now(UTC))
    assert (sil.target, sil.who, sil.reason) == ("pdu-a1", ADMIN, "rack maintenance")
    assert timedelta(minutes=119) < sil.until - datetime.now(UTC) <= timedelta(hours=2)
    pdu = next(r for r in env.repo.open_incidents() if r.incident.root_cause.id == "pdu-a1")
    assert "Silenced until" in alert_text(env, pdu)  # the alert shows it
    # a member of an admin user group may act too
    member = command(env, served, "unsilence pdu-a1", user=ONCALL_MEMBER)
    assert "Lifted 1 silence(s)" in render_md(member["blocks"])
    assert env.repo.active_silences(datetime.now(UTC)) == []
    again = render_md(command(env, served, "unsilence pdu-a1")["blocks"])
    assert "was not silenced" in again
    unknown = render_md(command(env, served, "silence pdu-a9 1h")["blocks"])
    assert "I don't know `pdu-a9`" in unknown


# ---------------------------------------------------------------- buttons


def test_acknowledge_button(live: tuple[Env, Served]) -> None:
    env, served = live
    rec = gpu_record(env)
    path, _ = click(env, served, ACTION_ACK, rec, user=OUTSIDER)
    assert "only gpu-risk admins may acknowledge" in render_md(response_at(env, path)["blocks"])
    assert response_at(env, path)["replace_original"] is False
    assert env.repo.incident(rec.id).status == "open"  # type: ignore[union-attr]
    click(env, served, ACTION_ACK, rec)
    stored = eventually(lambda: env.repo.incident(rec.id).acknowledged_by)  # type: ignore[union-attr]
    assert stored == ADMIN
    assert env.repo.incident(rec.id).status == "acknowledged"  # type: ignore[union-attr]
    text = env.fake.wait_for(
        lambda: "Acknowledged by" in alert_text(env, rec) and alert_text(env, rec)
    )
    assert "Acknowledged by @U0ADMIN at " in text and " UTC" in text
    ref = rec.message_ref
    assert ref is not None
    raw = json.dumps(env.fake.message(ref.channel, ref.ts)["blocks"])
    assert "Acknowledged by <@U0ADMIN> at" in raw


def test_silence_4h_button(live: tuple[Env, Served]) -> None:
    env, served = live
    rec = gpu_record(env)
    click(env, served, ACTION_SILENCE_4H, rec)
    (sil,) = eventually(lambda: env.repo.active_silences(datetime.now(UTC)))
    assert sil.target == "gpu-node-001/3" and sil.who == ADMIN
    assert timedelta(hours=3, minutes=59) < sil.until - datetime.now(UTC) <= timedelta(hours=4)
    env.fake.wait_for(lambda: "Silenced until" in alert_text(env, rec))
    # a silenced incident that gets worse is recorded, not posted again
    before = len(env.fake.calls_to("chat.postMessage"))
    now = datetime.now(UTC)
    env.cycle([gpu_incident(now, severity="critical", score=0.99), pdu_incident(now)])
    assert len(env.fake.calls_to("chat.postMessage")) == before
    assert env.fake.thread(ALERTS, rec.message_ref.ts) == []  # type: ignore[union-attr]


def test_silence_modal(live: tuple[Env, Served]) -> None:
    env, served = live
    rec = gpu_record(env)
    path, payload = click(env, served, ACTION_SILENCE_MODAL, rec, user=OUTSIDER)
    assert "only gpu-risk admins" in render_md(response_at(env, path)["blocks"])
    assert env.fake.calls_to("views.open") == []
    _, payload = click(env, served, ACTION_SILENCE_MODAL, rec)
    (opened,) = env.fake.wait_for(lambda: env.fake.calls_to("views.open"))
    assert opened.args["trigger_id"] == payload["trigger_id"]
    view = opened.args["view"]
    assert view["callback_id"] == "gpu_risk_silence_modal"
    values = {
        DURATION_BLOCK: {
            DURATION_ACTION: {"type": "static_select", "selected_option": {"value": "12h"}}
        },
        REASON_BLOCK: {REASON_ACTION: {"type": "plain_text_input", "value": "fan swap"}},
    }
    submission = view_submission(view, values, user=ADMIN)
    status, body, _ = post_signed(f"{served.url}/slack/events", payload_body(submission), SECRET)
    assert status == 200 and body in (b"", b"{}")  # the modal closes
    (sil,) = eventually(lambda: env.repo.active_silences(datetime.now(UTC)))
    assert (sil.target, sil.reason, sil.who) == ("gpu-node-001/3", "fan swap", ADMIN)
    assert timedelta(hours=11, minutes=59) < sil.until - datetime.now(UTC) <= timedelta(hours=12)
    text = env.fake.wait_for(lambda: "fan swap" in alert_text(env, rec) and alert_text(env, rec))
    assert "Silenced until" in text and "by @U0ADMIN: fan swap" in text


def test_false_alarm_button(live: tuple[Env, Served]) -> None:
    env, served = live
    rec = gpu_record(env)
    click(env, served, ACTION_FALSE_ALARM, rec, user=OUTSIDER)  # anyone may give feedback
    (fb,) = eventually(lambda: env.repo.feedback(rec.id))
    assert (fb.verdict, fb.who) == ("false_alarm", OUTSIDER)
    text = env.fake.wait_for(lambda: "false alarm" in alert_text(env, rec) and alert_text(env, rec))
    assert "Marked a false alarm by @U0OUTSIDER" in text


def test_an_unknown_incident_gets_a_clear_answer(live: tuple[Env, Served]) -> None:
    env, served = live
    rec = gpu_record(env)
    ghost = IncidentRecord(**{**rec.__dict__, "id": 9999})
    path, _ = click(env, served, ACTION_ACK, ghost)
    answer = response_at(env, path)
    assert "incident 9999 is not known here" in answer["text"]
    assert answer["response_type"] == "ephemeral"


def test_a_failing_listener_tells_the_user_politely(
    live: tuple[Env, Served], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env, served = live

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the store is on fire")

    monkeypatch.setattr(env.bot.service, "acknowledge", broken)
    path, _ = click(env, served, ACTION_ACK, gpu_record(env))
    answer = response_at(env, path)
    assert "Something went wrong on gpu-risk's side" in answer["text"]
    assert answer["response_type"] == "ephemeral"
    assert "the store is on fire" in caplog.text  # logged with its traceback


# ---------------------------------------------------------------- App Home


def test_app_home(live: tuple[Env, Served]) -> None:
    env, served = live
    env.repo.record_scan(datetime.now(UTC), True, 1.0, 16)
    body = json.dumps(app_home_opened(ADMIN)).encode()
    status, _, _ = post_signed(
        f"{served.url}/slack/events", body, SECRET, content_type="application/json"
    )
    assert status == 200
    (call,) = env.fake.wait_for(lambda: env.fake.calls_to("views.publish"))
    assert call.args["user_id"] == ADMIN
    home = render_md(call.args["view"]["blocks"])
    assert "At-risk GPUs by rack (2)" in home
    assert "*rack-a1* — 2 GPU(s)" in home
    assert "Open incidents (2)" in home and "pdu-a1: 8 GPUs at risk" in home
    assert "Last scan" in home and "healthy" in home


# ---------------------------------------------------------------- security and the port


def test_forged_and_stale_requests_are_rejected(live: tuple[Env, Served]) -> None:
    env, served = live
    body = form_body(
        slash_command("status", user=ADMIN, channel=ALERTS, response_url=env.fake.response_url())
    )
    url = f"{served.url}/slack/events"
    assert post_signed(url, body, "not-the-secret")[0] == 401
    assert post_signed(url, body, SECRET, signature="v0=" + "0" * 64)[0] == 401
    stale = int(time.time()) - 6 * 60
    assert post_signed(url, body, SECRET, timestamp=stale)[0] == 401
    # a forged button click changes nothing
    rec = gpu_record(env)
    payload = block_action(
        ACTION_ACK,
        str(rec.id),
        user=ADMIN,
        channel=ALERTS,
        message_ts="1.1",
        message_blocks=[],
        response_url=env.fake.response_url(),
    )
    assert post_signed(url, payload_body(payload), "forged")[0] == 401
    time.sleep(0.3)
    assert env.fake.responses == []
    assert env.repo.incident(rec.id).acknowledged_by is None  # type: ignore[union-attr]
    assert post_signed(url, body, SECRET, timestamp=int(time.time()) - 60)[0] == 200


def test_healthz_and_metrics_share_the_port(served: Served) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{served.url}/healthz", timeout=5) as resp:
        assert resp.status == 200
        assert json.loads(resp.read())["ok"] is True
    with opener.open(f"{served.url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert "gpu_risk_test_requests_total 1.0" in text
    assert "process_cpu_seconds_total" not in text  # our registry, not the global one
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open(f"{served.url}/nope", timeout=5)
    assert err.value.code == 404


def test_graph_public_uploads_the_dependency_picture(live: tuple[Env, Served]) -> None:
    env, served = live
    answer = command(env, served, "graph pdu-a1 public", channel="C0ASKED")
    assert answer["response_type"] == "in_channel"
    (picture,) = env.fake.wait_for(
        lambda: [u for u in env.fake.uploads.values() if u.get("channel") == "C0ASKED"], timeout=30
    )
    assert picture["title"] == "dependencies of pdu-a1"
    assert picture["data"].startswith(b"\x89PNG\r\n\x1a\n") and len(picture["data"]) > 5000
