"""The sink interface: ``dispatch`` routes each outbox kind to one sink method with the row decoded
once, unknown kinds are an error, ``deliver`` confirms or retries rows, ``FanOut`` mirrors, and the
console and Slack sinks behave as the notifiers they replaced."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from analysis.types import GpuScore, Incident, RootCause
from bot.delivery import Retry, deliver, retry_after
from bot.sinks import (
    KINDS,
    DataSourceNote,
    FanOut,
    Notification,
    Sink,
    UnknownKindError,
    decode,
    dispatch,
)
from bot.sinks.console import ConsoleSink, read_log
from bot.sinks.console import ConsoleSink as ConsoleNotifier
from bot.sinks.slack import SlackSink
from storage.repository import MessageRef, OutboxItem, Repository
from tests.fixtures import slack as fx
from tests.fixtures.slack import ALERTS, Env, gpu_incident

fake_slack = fx.fake_slack
migrated_db = fx.migrated_db
repo = fx.repo
env = fx.env

AT = datetime(2026, 11, 22, 10, tzinfo=UTC)


def incident(severity: str = "warning", score: float = 0.9) -> Incident:
    """GPU 0 on gpu-node-001 at risk."""
    return Incident(
        "i", AT, severity, score, RootCause("gpu-node-001/0", "gpu"),  # type: ignore[arg-type]
        (GpuScore("gpu-node-001", "0", score),),
    )  # fmt: skip


def outbox_item(
    kind: str,
    payload: dict[str, Any],
    *,
    incident_id: int | None = 7,
    attempts: int = 1,
    message_ref: MessageRef | None = None,
) -> OutboxItem:
    """A claimed outbox row as ``Repository.claim_pending`` returns it."""
    return OutboxItem(
        id=42,
        kind=kind,
        incident_id=incident_id,
        payload=payload,
        idempotency_key=f"incident:7:1:{kind}",
        status="pending",
        created_at=AT,
        attempts=attempts,
        claimed_by="w1",
        claim_expires_at=AT + timedelta(minutes=2),
        retry_at=None,
        last_error=None,
        sent_at=None,
        message_ref=message_ref,
    )


def incident_payload(
    inc: Incident, previous_severity: str | None = None, reason: str = ""
) -> dict[str, Any]:
    """The payload the state store writes for an incident step."""
    return {
        "incident_id": 7,
        "dedup_key": inc.dedup_key,
        "previous_severity": previous_severity,
        "reason": reason,
        "at": "2026-11-22T10:05:00Z",
        "incident": inc.as_dict(),
    }


@dataclass
class RecordingSink:
    """A sink that records every call; ``fail`` makes its next calls raise."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    fail: bool = False
    ref: MessageRef | None = field(default_factory=lambda: MessageRef("rec", "1.0"))

    def _record(self, method: str, arg: Any) -> MessageRef | None:
        """Remember the call (or fail)."""
        if self.fail:
            raise ConnectionError(f"{method} refused")
        self.calls.append((method, arg))
        return self.ref if method == "post" else None

    def post(self, note: Notification) -> MessageRef | None:
        """Record a post."""
        return self._record("post", note)

    def update(self, note: Notification) -> MessageRef | None:
        """Record an update."""
        return self._record("update", note)

    def improve(self, note: Notification) -> MessageRef | None:
        """Record an improvement."""
        return self._record("improve", note)

    def resolve(self, note: Notification) -> MessageRef | None:
        """Record a resolve."""
        return self._record("resolve", note)

    def data_source(self, note: DataSourceNote) -> MessageRef | None:
        """Record a data-source change."""
        return self._record("data_source", note)

    def post_text(self, text: str) -> None:
        """Record a text message."""
        self._record("post_text", text)


# ---------------------------------------------------------------------- dispatch


@pytest.mark.parametrize("kind", ["post", "update", "improve", "resolve"])
def test_dispatch_calls_the_method_of_the_kind_with_the_decoded_notification(kind: str) -> None:
    now = incident("critical", 0.97)
    item = outbox_item(kind, incident_payload(now, "warning", "severity rose"), attempts=2)
    sink = RecordingSink()
    ref = dispatch(sink, item)
    ((method, note),) = sink.calls
    assert method == kind
    assert ref == (sink.ref if kind == "post" else None)
    assert isinstance(note, Notification)
    stored = Incident.from_dict(now.as_dict())  # the snapshot as the state store keeps it
    assert note.incident == stored and note.previous == replace(stored, severity="warning")
    assert note.record_id == 7 and note.outbox_id == 42
    assert note.idempotency_key == f"incident:7:1:{kind}"
    assert note.attempts == 2 and note.is_retry
    assert note.created_at == AT and note.at == AT + timedelta(minutes=5)
    assert note.reason == "severity rose" and note.dedup_key == "gpu:gpu-node-001/0"


def test_previous_is_the_incident_itself_without_a_previous_severity() -> None:
    note = decode(outbox_item("post", incident_payload(incident())))
    assert isinstance(note, Notification)
    assert note.previous == note.incident and not note.is_retry and note.at is not None


def test_dispatch_sends_a_data_source_change_to_data_source() -> None:
    payload = {"state": "degraded", "change": "degraded", "since": "2026-11-22T10:00:00Z",
               "error": "ConnectionError: refused", "consecutive_failures": 1}  # fmt: skip
    sink = RecordingSink()
    assert dispatch(sink, outbox_item("data_source", payload, incident_id=None)) is None
    ((method, note),) = sink.calls
    assert method == "data_source" and isinstance(note, DataSourceNote)
    assert (note.state, note.change, note.since, note.error) == (
        "degraded", "degraded", AT, "ConnectionError: refused",
    )  # fmt: skip


def test_an_unknown_kind_is_an_error_and_calls_nothing() -> None:
    sink = RecordingSink()
    with pytest.raises(UnknownKindError, match=r"unknown outbox kind 'digest'.*post, update"):
        dispatch(sink, outbox_item("digest", {"n": 1}, incident_id=None))
    assert sink.calls == []
    assert issubclass(UnknownKindError, ValueError)  # what the old senders raised


def test_every_sink_satisfies_the_protocol() -> None:
    assert set(KINDS) == {"post", "update", "improve", "resolve", "data_source"}
    for sink in (RecordingSink(), ConsoleSink(), FanOut(RecordingSink(), ConsoleSink())):
        assert isinstance(sink, Sink)
    assert ConsoleNotifier is ConsoleSink  # the old name still works
    assert not isinstance(lambda item: None, Sink)


# ---------------------------------------------------------------------- deliver


@pytest.fixture
def store(repo: Repository) -> Repository:
    """A migrated SQLite state store with one new incident (a pending post) queued."""
    repo.apply_cycle(AT, [incident()], True)
    return repo


def test_deliver_marks_rows_sent_and_stores_the_post_message(store: Repository) -> None:
    sink = RecordingSink()
    sent: list[str] = []
    assert deliver(store, sink, at=AT, on_sent=lambda item: sent.append(item.kind)) == 1
    assert sent == ["post"] and [m for m, _ in sink.calls] == ["post"]
    (rec,) = store.open_incidents()
    assert store.message_ref(rec.id) == sink.ref
    assert deliver(store, sink, at=AT + timedelta(minutes=1)) == 0  # nothing left
    store.apply_cycle(AT + timedelta(minutes=5), [], True)  # gone: resolved
    assert deliver(store, sink, at=AT + timedelta(minutes=5)) == 1
    method, note = sink.calls[-1]
    assert method == "resolve" and note.record_id == rec.id


def test_deliver_marks_a_failed_row_for_a_retry_that_reconciles(store: Repository) -> None:
    sink = RecordingSink(fail=True)
    failed: list[int] = []
    assert deliver(store, sink, at=AT, on_failed=lambda item: failed.append(item.id)) == 0
    (row,) = store.claim_pending(10, "peek", timedelta(seconds=1), at=AT + timedelta(hours=1))
    assert row.id == failed[0] and row.last_error == "ConnectionError: post refused"
    assert row.retry_at == AT + timedelta(seconds=30)
    sink.fail = False
    later = AT + timedelta(hours=2)  # the peek's lease has run out too
    assert deliver(store, sink, at=later, retry_in=timedelta(seconds=30)) == 1
    ((method, note),) = sink.calls
    assert method == "post" and note.is_retry and note.attempts == 3


def test_deliver_retries_an_unknown_kind_and_sends_the_rest(store: Repository) -> None:
    store.enqueue("digest", None, {"n": 1}, "digest:2026-11-22", at=AT)
    sink = RecordingSink()
    assert deliver(store, sink, at=AT) == 1  # the post; the digest row waits for a newer release
    (left,) = store.claim_pending(10, "peek", timedelta(seconds=1), at=AT + timedelta(hours=1))
    assert left.kind == "digest" and "UnknownKindError" in (left.last_error or "")


# ---------------------------------------------------------------------- FanOut


def test_fan_out_sends_everywhere_and_stores_the_first_sinks_message() -> None:
    primary, mirror = RecordingSink(), RecordingSink(ref=MessageRef("mirror", "9.0"))
    fan = FanOut(primary, mirror)
    item = outbox_item("post", incident_payload(incident()))
    assert dispatch(fan, item) == primary.ref
    assert primary.calls == mirror.calls and primary.calls[0][0] == "post"
    assert primary.calls[0][1] is mirror.calls[0][1]  # decoded once
    fan.post_text("digest")
    assert primary.calls[-1] == mirror.calls[-1] == ("post_text", "digest")
    assert fan.sinks == (primary, mirror)


def test_fan_out_primary_failure_is_retried_and_mirror_failure_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    primary, mirror = RecordingSink(fail=True), RecordingSink()
    item = outbox_item("update", incident_payload(incident("critical"), "warning"))
    with pytest.raises(ConnectionError):
        dispatch(FanOut(primary, mirror), item)
    assert mirror.calls == []  # nothing mirrored for a row that will be sent again
    primary.fail, mirror.fail = False, True
    with caplog.at_level(logging.ERROR, logger="bot.sinks.fanout"):
        assert dispatch(FanOut(primary, mirror), item) is None
    assert [m for m, _ in primary.calls] == ["update"]
    assert "mirror sink RecordingSink failed on outbox row 42" in caplog.text


# ---------------------------------------------------------------------- console


def test_console_sink_prints_keeps_and_logs_each_kind(tmp_path: Path) -> None:
    out = io.StringIO()
    pngs = {"key metrics": b"\x89PNG1", "dependency graph": b"\x89PNG2"}
    console = ConsoleSink(
        images=lambda _id: pngs, log_path=tmp_path / "log.jsonl", stream=out, out_dir=tmp_path / "o"
    )
    ref = dispatch(console, outbox_item("post", incident_payload(incident())))
    assert ref == MessageRef("console", "42.000000")
    dispatch(console, outbox_item("resolve", incident_payload(incident(), None, "gone")))
    dispatch(console, outbox_item("data_source", {"state": "ok"}, incident_id=None))
    text = out.getvalue()
    assert "── [post] incident #7 " in text and "Check GPU 0 on gpu-node-001" in text
    assert "── [resolve] incident #7 (thread reply)" in text and "gone" in text
    assert "── [data_source] " in text and "Metrics source recovered" in text
    assert f"(images: {tmp_path / 'o' / 'incident-7-dependency graph.png'}" in text
    assert (tmp_path / "o" / "0042-post-incident-7.json").is_file()
    assert (tmp_path / "o" / "incident-7-key metrics.png").read_bytes() == b"\x89PNG1"
    log = read_log(tmp_path / "log.jsonl")
    assert [(e["kind"], e["incident_id"], e["state"], e["ts"]) for e in log] == [
        ("post", 7, None, "42.000000"),
        ("resolve", 7, None, None),
        ("data_source", None, "ok", None),
    ]
    assert log[0]["images"] == ["dependency graph", "key metrics"]
    assert log[0]["dedup_key"] == "gpu:gpu-node-001/0"
    # a retried post found in the log is not shown again
    retry = outbox_item("post", incident_payload(incident()), attempts=2)
    assert dispatch(console, retry) == ref and out.getvalue() == text


# ---------------------------------------------------------------------- Slack


def test_slack_update_without_a_message_posts_the_alert_anew(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC)
    env.repo.apply_cycle(now, [gpu_incident(now, score=0.8)], True)
    (post,) = env.repo.claim_pending(10, "console", timedelta(minutes=1), at=now)
    env.repo.mark_sent(post.id, at=now)  # shown elsewhere: no Slack message
    with caplog.at_level(logging.WARNING, logger="bot.sinks.slack"):
        env.cycle([gpu_incident(now, score=0.99)])  # riskier: an update
    (alert,) = env.fake.channel_messages(ALERTS)
    assert "0.99" in str(alert["blocks"])
    assert env.only_open().message_ref == MessageRef(ALERTS, alert["ts"], alert["ts"])
    assert "posting it anew" in caplog.text


def test_slack_improve_edits_the_alert_and_replies(env: Env) -> None:
    now = datetime.now(UTC)
    env.cycle([gpu_incident(now, score=0.99)])
    env.cycle([gpu_incident(now, score=0.7)])  # less risky: an improvement
    (alert,) = env.fake.channel_messages(ALERTS)
    assert env.fake.message(ALERTS, alert["ts"])["edits"] == 1
    (reply,) = env.fake.thread(ALERTS, alert["ts"])
    assert "Better" in reply["text"]
    assert isinstance(SlackSink(env.bot.service), Sink)


def test_failed_rows_back_off_exponentially_then_die_once_and_can_be_revived(
    store: Repository, caplog: pytest.LogCaptureFixture
) -> None:
    """Attempts double the wait (30 s, 60 s, ...); after max_attempts the row is a dead letter:
    one error line, counted, shown in the status, never claimed again until retry_dead."""
    sink = RecordingSink(fail=True)
    policy = Retry(first=timedelta(seconds=30), max_attempts=3)
    dead: list[int] = []
    at, waits = AT, []
    with caplog.at_level(logging.WARNING, logger="bot.delivery"):
        for _ in range(3):
            assert (
                deliver(store, sink, at=at, retry=policy, on_dead=lambda i: dead.append(i.id)) == 0
            )
            (row,) = store.outbox()
            if row.status == "pending":
                assert row.retry_at is not None
                waits.append((row.retry_at - at).total_seconds())
                at = row.retry_at
    assert waits == [30.0, 60.0]
    (row,) = store.outbox()
    assert row.status == "dead" and row.dead_at == at and dead == [row.id]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "dead after 3 attempts" in errors[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)  # an outage answer: no traceback
    assert store.status().dead_notifications == 1 and store.status().pending_notifications == 0
    assert store.outbox_counts() == {"pending": 0, "dead": 1}
    assert deliver(store, sink, at=at + timedelta(days=1), retry=policy) == 0  # never claimed
    assert store.retry_dead(at=at + timedelta(days=1)) == 1
    sink.fail = False
    assert deliver(store, sink, at=at + timedelta(days=1), retry=policy) == 1
    assert [r.status for r in store.outbox()] == ["sent"]


def test_a_long_retry_after_is_honoured_by_rescheduling_not_sleeping(store: Repository) -> None:
    class RateLimitedError(Exception):
        """What slack_sdk raises on a 429 it did not wait out."""

        response = type("R", (), {"status_code": 429, "headers": {"Retry-After": ["120"]}})()

    class RateLimitedSink(RecordingSink):
        """A sink whose every post meets a 429 with Retry-After: 120."""

        def post(self, note: Notification) -> MessageRef | None:
            raise RateLimitedError("ratelimited")

    assert retry_after(RateLimitedError()) == timedelta(seconds=120)
    deliver(store, RateLimitedSink(), at=AT, retry=Retry(first=timedelta(seconds=30)))
    (row,) = store.outbox()
    assert row.retry_at == AT + timedelta(seconds=120)  # not 30 s: Slack asked for 120
    assert Retry().delay(20) == timedelta(minutes=15)  # capped


class _Conversations:
    """A WebClient stand-in answering conversations.list in two pages."""

    def __init__(self) -> None:
        self.pages = [
            {"channels": [{"id": "C0NOTHERE", "name": "random", "is_member": False}],
             "response_metadata": {"next_cursor": "p2"}},
            {"channels": [{"id": "C0ALERTS1", "name": "gpu-alerts", "is_member": True},
                          {"id": "G0PRIVATE", "name": "gpu-crit", "is_member": True}],
             "response_metadata": {"next_cursor": ""}},
        ]  # fmt: skip
        self.calls = 0

    def conversations_list(self, **_kw: Any) -> dict[str, Any]:
        """One page per call."""
        self.calls += 1
        return self.pages[self.calls - 1]


def test_channel_names_are_resolved_to_ids_and_unusable_ones_are_clear_errors() -> None:
    from bot.slack.notifier import ChannelError, SlackNotifier

    client = _Conversations()
    notifier = SlackNotifier(client, {"critical": "#gpu-crit", "rack-a1": "C0RACKA1"},  # type: ignore[arg-type]
                             "gpu-alerts")  # fmt: skip
    assert notifier.resolve_channels() == {"gpu-alerts": "C0ALERTS1", "gpu-crit": "G0PRIVATE"}
    assert notifier.default_channel == "C0ALERTS1"
    assert notifier.routes == {"critical": "G0PRIVATE", "rack-a1": "C0RACKA1"}
    only_ids = SlackNotifier(_Conversations(), {}, "C0ALERTS1")  # type: ignore[arg-type]
    assert only_ids.resolve_channels() == {}  # ids: no call at all
    outside = SlackNotifier(_Conversations(), {}, "#random")  # type: ignore[arg-type]
    with pytest.raises(ChannelError, match=r"not a member of #random.*/invite"):
        outside.resolve_channels()
    missing = SlackNotifier(_Conversations(), {}, "nope")  # type: ignore[arg-type]
    with pytest.raises(ChannelError, match="#nope not found"):
        missing.resolve_channels()


# ---------------------------------------------------------------------- firing again


def test_a_root_cause_firing_again_within_a_day_links_both_threads(env: Env) -> None:
    """A fault that pages, goes quiet (resolved) and comes back is one story for on-call: the new
    alert's thread names the old incident and the old thread points at the new alert."""
    now = datetime.now(UTC)
    env.cycle([gpu_incident(now)])
    first = env.only_open()
    env.cycle([])  # quiet: resolved
    env.cycle([gpu_incident(now)])  # the same root cause again
    second = env.only_open()
    assert second.id != first.id
    old, new = env.fake.channel_messages(ALERTS)
    (note,) = [m for m in env.fake.thread(ALERTS, new["ts"]) if "Fired again" in m["text"]]
    assert f"incident #{first.id}" in note["text"] and "check the hardware" in note["text"]
    (back,) = [m for m in env.fake.thread(ALERTS, old["ts"]) if "Fired again" in m["text"]]
    assert (
        f"as incident #{second.id}" in back["text"]
        and "Check GPU 3 on gpu-node-001" in back["text"]
    )


def test_a_root_cause_resolved_over_a_day_ago_is_a_new_story(env: Env) -> None:
    from analysis.lifecycle import RECURRENCE_WINDOW
    from tests.fixtures.slack import deliver_pending

    start = datetime.now(UTC) - RECURRENCE_WINDOW - timedelta(hours=1)
    env.repo.apply_cycle(start, [gpu_incident(start)], True)
    env.repo.apply_cycle(start + timedelta(minutes=5), [], True)  # resolved a day and more ago
    now = datetime.now(UTC)
    env.repo.apply_cycle(now, [gpu_incident(now)], True)
    deliver_pending(env.bot.service, at=now)
    assert len(env.fake.channel_messages(ALERTS)) == 2
    assert not [m for m in env.fake.messages.get(ALERTS, []) if "Fired again" in m["text"]]


def test_the_console_shows_that_a_root_cause_fired_again(tmp_path: Path) -> None:
    out = io.StringIO()
    console = ConsoleSink(images=None, stream=out)
    payload = incident_payload(incident()) | {
        "recurs": {
            "incident_id": 3,
            "first_seen": "2026-11-22T08:00:00Z",
            "resolved_at": "2026-11-22T09:10:00Z",
        }
    }
    note = decode(outbox_item("post", payload))
    assert isinstance(note, Notification) and note.recurs is not None
    assert note.recurs.incident_id == 3 and note.recurs.resolved_at == AT - timedelta(minutes=50)
    dispatch(console, outbox_item("post", payload))
    assert "Fired again" in out.getvalue() and "incident #3" in out.getvalue()
    # a payload without it (or written by an older release) decodes without one
    assert decode(outbox_item("post", incident_payload(incident()))).recurs is None  # type: ignore[union-attr]
