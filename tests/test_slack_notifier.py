"""The notifier and the outbox sender against the fake Slack: an incident's whole life, routing,
pacing, and Slack failures (429 storms, 5xx) that delay but lose nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial

from analysis.types import GpuScore, Incident, RootCause
from bot.blocks.render import render_text
from bot.slack.client import make_client
from bot.slack.notifier import SlackNotifier
from storage.repository import Repository
from tests.fakeslack import FakeSlack
from tests.fixtures import slack as fx
from tests.fixtures.slack import (
    ALERTS,
    CRITICAL,
    PNG,
    RACK_B,
    Env,
    deliver_pending,
    gpu_incident,
    make_env,
    pdu_incident,
    topology,
)

render_md = partial(render_text, markup=True)  # keep mrkdwn markers and link URLs

fake_slack = fx.fake_slack
migrated_db = fx.migrated_db
repo = fx.repo
env = fx.env


def test_incident_life_post_worse_resolved(env: Env) -> None:
    fake = env.fake
    env.cycle([gpu_incident(datetime.now(UTC))])
    (alert,) = fake.channel_messages(ALERTS)
    text = render_md(alert["blocks"])
    assert text.startswith("Check GPU 3 on gpu-node-001")
    assert "[ Acknowledge ]" in text and "Grafana" in text
    rec = env.only_open()
    assert rec.message_ref is not None and rec.message_ref.ts == alert["ts"]
    assert rec.message_ref.channel == ALERTS
    # images uploaded from bytes into the alert's thread
    uploads = sorted(fake.uploads.values(), key=lambda u: u["title"])
    assert [u["title"] for u in uploads] == ["dependency graph", "key metrics"]
    assert all(u["shared"] and u["thread_ts"] == alert["ts"] for u in uploads)
    assert uploads[0]["data"] == PNG and uploads[1]["data"] == PNG[:1000]
    assert all(u["channel"] == ALERTS for u in uploads)

    # worse: the original is edited in place and the thread says what changed
    env.cycle([gpu_incident(datetime.now(UTC), severity="critical", score=0.99)])
    edited = fake.message(ALERTS, alert["ts"])
    assert edited["edits"] == 1
    assert "critical" in render_md(edited["blocks"]) and "0.99" in render_md(edited["blocks"])
    (reply,) = fake.thread(ALERTS, alert["ts"])
    assert "severity warning → *critical*" in render_md(reply["blocks"])
    assert fake.channel_messages(ALERTS) == [edited]  # no second top-level message
    assert fake.channel_messages(CRITICAL) == []  # the thread stays where it started

    # resolved: the original says so, loses its buttons, and the thread says so too
    env.cycle([])
    final = fake.message(ALERTS, alert["ts"])
    final_text = render_md(final["blocks"])
    assert final_text.startswith("Resolved: Check GPU 3 on gpu-node-001")
    assert "Resolved at" in final_text and "[ Acknowledge ]" not in final_text
    replies = fake.thread(ALERTS, alert["ts"])
    assert len(replies) == 2 and "Resolved" in render_md(replies[1]["blocks"])
    assert [o.status for o in env.repo.outbox()] == ["sent", "sent", "sent"]
    assert env.repo.open_incidents() == []


def test_routes_by_rack_then_severity_else_default(env: Env) -> None:
    now = datetime.now(UTC)
    rack_b = replace(
        gpu_incident(now),
        root_cause=RootCause("gpu-node-003/1", "gpu"),
        gpus=(GpuScore("gpu-node-003", "1", 0.93),),
    )
    env.cycle([gpu_incident(now), pdu_incident(now), rack_b])
    assert len(env.fake.channel_messages(ALERTS)) == 1  # warning, rack-a1: default
    assert len(env.fake.channel_messages(CRITICAL)) == 1  # critical PDU incident
    assert "gpu-node-003" in env.fake.channel_messages(RACK_B)[0]["text"]


def test_429_storm_delays_but_loses_nothing(fake_slack: FakeSlack, repo: Repository) -> None:
    env = make_env(fake_slack, repo)
    env.bot.notifier.client = make_client(
        fake_slack.bot_token, fake_slack.api_url, max_rate_limit_retries=2
    )
    fake_slack.fail("chat.postMessage", status=429, times=5, retry_after=0)
    now = datetime.now(UTC)
    incidents = [gpu_incident(now), pdu_incident(now)]
    env.repo.apply_cycle(now, incidents, True)
    first = deliver_pending(env.bot.service, at=now)
    assert first == 1  # one post gave up after 2 retries and stays queued; one got through
    assert len(fake_slack.calls_to("chat.postMessage", ok=False)) == 5
    pending = env.repo.outbox(status="pending")
    assert len(pending) == 1 and "ratelimited" in (pending[0].last_error or "")
    assert deliver_pending(env.bot.service, at=now + timedelta(seconds=5)) == 0  # not yet due
    assert deliver_pending(env.bot.service, at=now + timedelta(minutes=1)) == 1
    posted = fake_slack.channel_messages(ALERTS) + fake_slack.channel_messages("C0CRIT")
    assert sorted(m["text"].split("] ")[1].split(" (")[0] for m in posted) == sorted(
        i.title for i in incidents
    )
    assert [o.status for o in env.repo.outbox()] == ["sent", "sent"]
    assert all(r.message_ref is not None for r in env.repo.open_incidents())


def test_server_errors_are_retried(env: Env) -> None:
    env.fake.fail("chat.postMessage", status=503, times=1, retry_after=None)
    env.fake.fail("files.completeUploadExternal", status=500, times=1, retry_after=None)
    env.cycle([gpu_incident(datetime.now(UTC))])
    assert len(env.fake.channel_messages(ALERTS)) == 1
    assert all(u["shared"] for u in env.fake.uploads.values())
    assert [o.status for o in env.repo.outbox()] == ["sent"]


def test_pacing_is_per_channel(fake_slack: FakeSlack) -> None:
    clock = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(round(s, 3))
        clock[0] += s

    notifier = SlackNotifier(
        make_client(fake_slack.bot_token, fake_slack.api_url),
        {"critical": "C0CRIT"},
        ALERTS,
        topology=topology(),
        min_interval=1.0,
        clock=lambda: clock[0],
        sleep=sleep,
    )
    now = datetime.now(UTC)
    ref = notifier.post(gpu_incident(now))
    notifier.reply(ref, "one")
    notifier.post(pdu_incident(now))  # another channel: no wait
    clock[0] += 0.25
    notifier.reply(ref, "two")
    assert slept == [1.0, 0.75]  # waits only within a channel, only what is left
    assert len(fake_slack.thread(ALERTS, ref.ts)) == 2


def test_data_source_degraded_is_posted_once(env: Env) -> None:
    now = datetime.now(UTC)
    for i in range(3):
        env.repo.record_scan(now + timedelta(minutes=i), False, 1.0, 0, "connection refused")
    deliver_pending(env.bot.service, at=now + timedelta(minutes=3))
    texts = [m["text"] for m in env.fake.channel_messages(ALERTS)]
    assert len([t for t in texts if "degraded" in t]) == 1


def test_crash_after_slack_accepted_a_post_does_not_post_twice(env: Env) -> None:
    now = datetime.now(UTC)
    env.repo.apply_cycle(now, [gpu_incident(now)], True)
    # a worker claims the post, Slack accepts it, and the process dies before mark_sent
    (item,) = env.repo.claim_pending(10, "crashed-worker", timedelta(seconds=30), at=now)
    incident = Incident.from_dict(item.payload["incident"])
    env.bot.notifier.post(
        incident, record_id=item.incident_id, idempotency_key=item.idempotency_key
    )
    assert len(env.fake.channel_messages(ALERTS)) == 1
    # after the lease, another worker gets the row again (attempts 2) and adopts the message
    later = now + timedelta(minutes=1)
    assert deliver_pending(env.bot.service, at=later, worker_id="restarted") == 1
    (alert,) = env.fake.channel_messages(ALERTS)
    assert env.only_open().message_ref.ts == alert["ts"]  # type: ignore[union-attr]
    assert [o.status for o in env.repo.outbox()] == ["sent"]
    assert env.fake.calls_to("conversations.history")
    # a first attempt never looks anything up
    env.repo.apply_cycle(later, [gpu_incident(later), pdu_incident(later)], True)
    deliver_pending(env.bot.service, at=later)
    assert len(env.fake.calls_to("conversations.history")) == 1


def test_misconfiguration_is_a_clear_error(fake_slack: FakeSlack, repo: Repository) -> None:
    import pytest

    from bot.slack.app import build_app

    notifier = SlackNotifier(make_client(fake_slack.bot_token, fake_slack.api_url), {}, None)
    with pytest.raises(ValueError, match="GPU_RISK_SLACK_CHANNEL"):
        notifier.channel_for(gpu_incident(datetime.now(UTC)))
    env = make_env(fake_slack, repo)
    with pytest.raises(ValueError, match="SLACK_SIGNING_SECRET"):
        build_app(env.bot.service, client=env.bot.client, signing_secret=None)


def test_socket_mode_port_serves_health_and_metrics_only(fake_slack: FakeSlack) -> None:
    import urllib.error
    import urllib.request

    import pytest
    from prometheus_client import CollectorRegistry

    from bot.slack.server import make_wsgi_app, serve

    server = serve(
        make_wsgi_app(CollectorRegistry(), health=lambda: (False, {"reason": "no scan yet"})),
        "127.0.0.1",
        0,
        loop_timeout=0.05,
    )
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        bodies = {}
        for path, code in (("/healthz", 503), ("/slack/events", 404)):
            with pytest.raises(urllib.error.HTTPError) as err:
                opener.open(f"http://127.0.0.1:{server.port}{path}", timeout=5)
            assert err.value.code == code
            bodies[path] = err.value.read()
        assert b'"reason": "no scan yet"' in bodies["/healthz"]
        with opener.open(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as resp:
            assert resp.status == 200
    finally:
        server.stop()


def test_images_stored_with_the_incident_are_uploaded_by_default(
    fake_slack: FakeSlack, repo: Repository
) -> None:

    from bot.wiring import build_slack
    from tests.fixtures.slack import deliver_pending, make_settings

    bot = build_slack(make_settings(fake_slack), repo, topology=topology(), min_interval=0.0)
    now = datetime.now(UTC)
    (decision,) = repo.apply_cycle(now, [gpu_incident(now)], True)
    assert decision.incident_id is not None
    repo.save_images(decision.incident_id, {"graph": PNG}, at=now)
    deliver_pending(bot.service, at=now)
    (alert,) = fake_slack.channel_messages(ALERTS)
    (upload,) = fake_slack.uploads.values()
    assert (upload["title"], upload["data"], upload["thread_ts"]) == ("graph", PNG, alert["ts"])


def test_an_incident_merged_into_a_broader_one_says_merged_not_resolved(env: Env) -> None:
    """A GPU's incident, then its PDU's covering it: the tracker supersedes the GPU's, and the
    GPU's alert and thread say it was merged into the PDU's incident (no "Resolved", which reads
    as an all-clear), while the PDU's incident is a new alert."""
    from analysis.tracker import IncidentTracker
    from analysis.types import Assessment

    tracker = IncidentTracker(open_after=1, close_after=5)
    now = datetime.now(UTC)
    gpu = gpu_incident(now)
    env.cycle(tracker.update(Assessment(now, gpu.gpus, (gpu,))), merged=tracker.merged)
    (alert,) = env.fake.channel_messages(ALERTS)
    later = now + timedelta(minutes=5)
    pdu = pdu_incident(later, severity="warning")
    opened = tracker.update(Assessment(later, pdu.gpus, (pdu,)))
    assert [i.dedup_key for i in opened] == ["pdu:pdu-a1"]
    assert tracker.merged == {"gpu:gpu-node-001/3": "pdu-a1: 8 GPUs at risk"}
    env.cycle(opened, merged=tracker.merged)

    final = render_md(env.fake.message(ALERTS, alert["ts"])["blocks"])
    assert final.startswith("Merged: Check GPU 3 on gpu-node-001")
    assert "Merged at" in final and "*pdu-a1: 8 GPUs at risk*" in final
    assert "Resolved" not in final and "[ Acknowledge ]" not in final
    (reply,) = env.fake.thread(ALERTS, alert["ts"])
    said = render_md(reply["blocks"])
    assert "*Merged*" in said and "pdu-a1: 8 GPUs at risk" in said and "no all-clear" in said
    assert reply["text"] == "Merged: Check GPU 3 on gpu-node-001"
    tops = [render_md(m["blocks"]) for m in env.fake.channel_messages(ALERTS)]
    assert any(t.startswith("pdu-a1: 8 GPUs at risk") for t in tops)
    assert [r.incident.dedup_key for r in env.repo.open_incidents()] == ["pdu:pdu-a1"]
    # the outbox row carries it, so a retry after a crash says the same
    (row,) = [o for o in env.repo.outbox() if o.kind == "resolve"]
    assert row.payload["merged_into"] == "pdu-a1: 8 GPUs at risk"
    assert row.payload["reason"] == "merged into pdu-a1: 8 GPUs at risk"
