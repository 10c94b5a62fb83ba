"""Hostile input against /slack/events: every request gets a clear answer (2xx, 400 or 401) within
3 s, never a 5xx, never a traceback in the logs, and nothing is acted on before it is authenticated.

The bulk calls the WSGI app in-process; a smaller sample goes through the real waitress server.
Forged bodies carry a ``response_url`` on a local listener that counts every request it gets:
unauthenticated input must cause none. Figures are printed at the end (``pytest -s``).
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode, urlparse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from slack_bolt import BoltRequest

from bot.blocks.common import (
    ACTION_ACK,
    ACTION_FALSE_ALARM,
    ACTION_SILENCE_4H,
    ACTION_SILENCE_MODAL,
    SILENCE_CALLBACK_ID,
)
from bot.blocks.modal import DURATION_ACTION, DURATION_BLOCK, REASON_ACTION, REASON_BLOCK
from bot.slack.app import on_error
from bot.slack.server import make_wsgi_app
from bot.slack.verify import (
    VERIFIED,
    MemoryReplayGuard,
    RepositoryReplayGuard,
    RequestVerifier,
    check_signature,
    signature_of,
    well_formed,
)
from tests.fakeslack import block_action, sign, slash_command, view_submission
from tests.fakeslack.payloads import form_body, payload_body
from tests.fixtures import slack as fx
from tests.fixtures.slack import (
    ADMIN,
    ALERTS,
    OUTSIDER,
    SECRET,
    Env,
    Served,
    gpu_incident,
    pdu_incident,
)

fake_slack = fx.fake_slack
migrated_db = fx.migrated_db
repo = fx.repo
env = fx.env
served = fx.served

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
CLEAR = {200, 400, 401}
#: Slack's deadline for an answer, in seconds: the work a request does before it answers (CPU time
#: of the thread that answers, which a busy machine does not stretch) must fit in it.
SLACK_DEADLINE = 3.0
#: Wall seconds after which an answer counts as hung (waiting on Slack's 30-s Retry-After, a scan):
#: wall time on a shared 2-core CI machine stretches past 3 s without any fault of the bot's.
HANG = 10.0
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def fuzz(examples: int) -> settings:
    """Deterministic Hypothesis settings with ``examples`` examples."""
    return settings(FUZZ, max_examples=examples)


# ---------------------------------------------------------------- harness


class Outbound:
    """An HTTP listener on 127.0.0.1 counting every request: the ``response_url`` of forged bodies."""

    def __init__(self) -> None:
        """Listen on a free loopback port."""
        self.hits: list[str] = []
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hits.append(self.path)
                self.send_response(200)
                self.end_headers()

            do_GET = do_POST  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Tally:
    """What the hostile tests sent and got, per category (printed at the end of the session)."""

    sent: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    slowest: float = 0.0

    def record(self, category: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.sent[category] += 1
        self.statuses[f"{category} {status}"] += 1
        self.slowest = max(self.slowest, seconds)


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    """Figures of the module, printed when it ends."""
    t = Tally()
    yield t
    five_xx = sum(n for k, n in t.statuses.items() if k.split()[-1].startswith("5"))
    print(
        f"\nhostile inputs: {sum(t.sent.values())} {dict(t.sent)}; 5xx: {five_xx}; "
        f"slowest answer: {t.slowest * 1000:.0f} ms\nstatuses: {dict(sorted(t.statuses.items()))}"
    )


@pytest.fixture
def hooks() -> Iterator[Outbound]:
    """The counting listener."""
    out = Outbound()
    yield out
    out.stop()


@dataclass
class Harness:
    """The bot's WSGI app called in-process, with the env it runs on."""

    env: Env
    app: Callable[..., Any]
    tally: Tally
    signed: set[tuple[str, bytes]] = field(default_factory=set)

    def call(
        self, category: str, body: bytes, headers: dict[str, str], method: str = "POST"
    ) -> tuple[int, bytes]:
        """One request to /slack/events; (status, body). The answer must be clear and quick."""
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "PATH_INFO": "/slack/events",
            "QUERY_STRING": "",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
        }
        for name, value in headers.items():
            key = name.upper().replace("-", "_")
            environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            answer["status"] = int(status.split(maxsplit=1)[0])

        started, cpu = time.monotonic(), time.thread_time()
        chunks = b"".join(self.app(environ, start_response))
        seconds, work = time.monotonic() - started, time.thread_time() - cpu
        self.tally.record(category, answer["status"], seconds)
        assert work < SLACK_DEADLINE and seconds < HANG, (category, work, seconds)
        assert answer["status"] in CLEAR, (category, answer["status"], chunks[:200], body[:300])
        return answer["status"], chunks

    def signed_call(
        self, category: str, body: bytes, content_type: str = FORM
    ) -> tuple[int, bytes, bool]:
        """A request signed with the real secret; (status, body, whether it was a replay)."""
        ts = int(time.time())
        replay = (str(ts), body) in self.signed
        self.signed.add((str(ts), body))
        headers = {"Content-Type": content_type, **sign(SECRET, body, ts)}
        status, answer = self.call(category, body, headers)
        if replay:
            assert status == 401
        return status, answer, replay

    def settle(self) -> None:
        """Wait for Bolt's background listeners to finish (their answers and log lines)."""
        self.env.bot.app.listener_runner.listener_executor.shutdown(wait=True)


@pytest.fixture
def bot(env: Env, tally: Tally) -> Harness:
    """The bot with two open incidents (ids 1 and 2), its WSGI app called in-process."""
    now = datetime.now(UTC)
    env.cycle([gpu_incident(now), pdu_incident(now)], hot={"gpu-node-001/3": 0.95})
    # the bulk remembers signatures in memory (same contract, no SQLite commit per request);
    # test_replicas_share_the_replay_memory_of_the_state_store covers the store's guard
    env.bot.app.verifier.guard = MemoryReplayGuard()  # type: ignore[attr-defined]
    app = make_wsgi_app(CollectorRegistry(), bolt_app=env.bot.app)
    return Harness(env=env, app=app, tally=tally)


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    """No log record carries a traceback, and nothing was logged as an error."""
    assert "Traceback" not in caplog.text
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == [], errors[:3]


def nothing_done(env: Env, hooks: Outbound) -> None:
    """No effect of any request: no outbound request, no stored action, no Slack call."""
    assert hooks.hits == []
    assert env.fake.responses == []
    assert env.repo.active_silences(datetime.now(UTC)) == []
    for rec in env.repo.open_incidents():
        assert rec.acknowledged_by is None and env.repo.feedback(rec.id) == []
    assert env.fake.calls_to("views.open", ok=None) == []


# ---------------------------------------------------------------- strategies

SLACK_KEYS = (
    "type", "actions", "user", "team", "channel", "event", "view", "command", "response_url",
    "container", "enterprise", "authorizations", "callback_id", "action_id", "value", "trigger_id",
    "private_metadata", "state", "values", "response_urls", "text", "user_id", "id", "tab",
    "message", "ssl_check", "challenge", "channel_id", "message_ts", "selected_option",
)  # fmt: skip
KINDS = (
    "block_actions", "view_submission", "view_closed", "block_suggestion", "shortcut",
    "message_action", "event_callback", "url_verification", "interactive_message", "app_rate_limited",
    "dialog_submission", "workflow_step_edit",
)  # fmt: skip
HOSTILE_WORDS = (
    "<!channel>", "<!here>", "<!everyone>", "<@U0ADMIN>", "<@W123|boss>", "&amp;", "&", "<", ">",
    "<https://evil.example|click>", "`", "*bold*", "\u202e", "\x00", "null", "NaN", "-1",
    "9999999999d", "31d", "30d", "0h", "4h", "1w", "90s", "gpu-node-001", "gpu-node-001/3",
    "pdu-a1", "public", "payload", "rack-a1", "😀", "%00", "../../etc/passwd",
)  # fmt: skip
ACTION_IDS = (ACTION_ACK, ACTION_SILENCE_4H, ACTION_SILENCE_MODAL, ACTION_FALSE_ALARM)

ALPHABET = (
    "abcdefghijklmnopqrstuvwxyz0123456789-_/. <>&!@|*`~:;,'\"{}[]=%+\\\n\t"
    "\x00\x7f\u00e9\u202e\u200b\u0660\u0663\U0001f600\ufeff"
)
SUBCOMMANDS = ("", "top", "why", "graph", "whatif", "silence", "unsilence", "status", "help", "wyh")


class Junk(random.Random):
    """Random hostile values from one seed that Hypothesis draws (cheap to generate, replayable)."""

    def text(self, longest: int = 12) -> str:
        """Random text over ASCII, markup and awkward Unicode."""
        return "".join(self.choice(ALPHABET) for _ in range(self.randint(0, longest)))

    def word(self) -> str:
        """A hostile word or random text."""
        return self.choice(HOSTILE_WORDS) if self.random() < 0.6 else self.text(10)

    def scalar(self) -> Any:
        """A JSON scalar of any type, sometimes one Slack uses."""
        pick = self.randrange(7)
        if pick == 0:
            return self.choice([None, True, False])
        if pick == 1:
            return self.randint(-(2**70), 2**70) if self.random() < 0.3 else self.randint(-3, 5)
        if pick == 2:
            return self.uniform(-1e300, 1e300)
        if pick == 3:
            return self.text()
        return self.choice(HOSTILE_WORDS + KINDS + ACTION_IDS + SLACK_KEYS)

    def key(self) -> str:
        """A key Slack uses, or a random one."""
        return self.choice(SLACK_KEYS) if self.random() < 0.8 else self.text(6)

    def value(self, depth: int = 0) -> Any:
        """A JSON value: scalars, lists and objects nested a few levels."""
        pick = self.random()
        if depth >= 3 or pick < 0.55:
            return self.scalar()
        if pick < 0.7:
            return [self.value(depth + 1) for _ in range(self.randint(0, 3))]
        return self.obj(depth + 1)

    def obj(self, depth: int = 0) -> dict[str, Any]:
        """A JSON object with Slack's keys holding values of any type."""
        return {self.key(): self.value(depth) for _ in range(self.randint(0, 6))}

    def incident_id(self) -> Any:
        """Incident ids: real, out of range, mistyped or absurd."""
        return self.choice(
            [
                self.choice(["1", "2", "0", "-1", "1.5", "", " 1", "1e3", "0x1", "١", "1" * 40]),
                str(self.choice([2**63, 2**63 - 1, -(2**63), self.randint(-(2**64), 2**70)])),
                self.value(),
                self.text(8),
            ]
        )

    def command(self) -> str:
        """A slash command text: a subcommand with hostile arguments, or random text."""
        if self.random() < 0.25:
            return self.text(60)
        words = [self.word() for _ in range(self.randint(0, 4))]
        return " ".join([self.choice(SUBCOMMANDS), *words])

    def binary(self, longest: int) -> bytes:
        """Random bytes."""
        return self.randbytes(self.randint(0, longest))


junk = st.integers(0, 2**64).map(Junk)


# ---------------------------------------------------------------- 1. verify first


def forged_body(j: Junk, hook: str) -> tuple[bytes, str]:
    """A body an attacker might send, pointing response_url at the counting listener."""
    kind = j.choice(["command", "action", "view", "event", "bytes", "payload", "json"])
    if kind == "command":
        body = form_body(slash_command(j.command(), user=ADMIN, channel=ALERTS, response_url=hook))
    elif kind == "action":
        payload = block_action(
            j.choice(ACTION_IDS), str(j.incident_id()), user=ADMIN, channel=ALERTS,
            message_ts="1.1", message_blocks=[], response_url=hook,
        )  # fmt: skip
        body = payload_body(payload)
    elif kind == "view":
        payload = view_submission({"callback_id": SILENCE_CALLBACK_ID}, {}, user=ADMIN)
        payload["response_urls"] = [{"response_url": hook}]
        body = payload_body(payload)
    elif kind == "event":
        body = json.dumps({"type": "event_callback", "response_url": hook, "event": {}}).encode()
    elif kind == "payload":
        body = b"payload=" + j.choice([b"not json", b"%7B", b"[]", b"%FF%FE"])
    elif kind == "json":
        body = json.dumps({**j.obj(), "response_url": hook}).encode()
    else:
        body = j.binary(200)
    return body, j.choice([FORM, JSON, "text/plain", "", f"{JSON}; charset=utf-8"])


def garbage_timestamp(j: Junk, now: int) -> str:
    """Timestamps that are not a Unix time in seconds."""
    return j.choice(
        [
            j.text(16),
            j.choice(["", " ", "1e9", "0x10", "١٢٣", "+17", "-1", f"{now}.5", "NaN", "9" * 40]),
            str(j.randint(-(10**30), 10**30)),
        ]
    )


def forged_request(j: Junk, hook: str) -> tuple[bytes, dict[str, str]]:
    """Forged, stale, tampered or garbled requests: never authentic."""
    body, content_type = forged_body(j, hook)
    now = int(time.time())
    way = j.choice(
        ["garbage ts", "stale", "future", "wrong secret", "tampered", "no sig", "bad sig"]
    )
    headers = {"Content-Type": content_type, **sign(SECRET, body, now)}
    if way == "garbage ts":
        ts = headers["X-Slack-Request-Timestamp"] = garbage_timestamp(j, now)
        if ts.isascii():
            headers["X-Slack-Signature"] = signature_of(SECRET, ts, body)
    elif way in ("stale", "future"):
        drift = j.randint(330, 10**9)  # well past 5 minutes, whatever the clock does meanwhile
        headers.update(sign(SECRET, body, now + drift if way == "future" else now - drift))
    elif way == "wrong secret":
        headers.update(sign(j.text(20) + "x", body, now))
    elif way == "tampered":
        headers.update(sign(SECRET, body + j.binary(8) + b"!", now))
    elif way == "no sig":
        headers.pop(j.choice(["X-Slack-Signature", "X-Slack-Request-Timestamp"]))
    else:
        sig = headers["X-Slack-Signature"]
        headers["X-Slack-Signature"] = j.choice(
            [
                j.text(70),
                sig.upper(),
                sig[:-1],
                sig.replace("v0=", "v1="),
                "v0=" + "0" * 64,
                sig + "0",
            ]
        )
    return body, headers


def test_forged_stale_and_garbled_requests_get_401_and_do_nothing(
    bot: Harness, hooks: Outbound, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    @fuzz(1500)
    @given(junk)
    def forged(j: Junk) -> None:
        for _ in range(4):  # four requests per example: Hypothesis' own overhead is per example
            body, headers = forged_request(j, hooks.url)
            status, answer = bot.call("unauthenticated", body, headers)
            assert status == 401, answer
            assert len(answer) < 80 and b"Traceback" not in answer

    forged()
    bot.settle()
    time.sleep(0.2)
    nothing_done(bot.env, hooks)
    no_tracebacks(caplog)


def test_replays_are_refused(bot: Harness, hooks: Outbound) -> None:
    body = form_body(slash_command("status", user=ADMIN, channel=ALERTS, response_url=hooks.url))
    headers = {"Content-Type": FORM, **sign(SECRET, body)}
    assert bot.call("replay", body, headers)[0] == 200
    for _ in range(3):
        assert bot.call("replay", body, headers) == (401, b"replayed request\n")
    bot.settle()
    assert len(hooks.hits) == 1  # the one authentic request was answered, once


def test_the_error_handler_only_answers_verified_requests(hooks: Outbound) -> None:
    body = json.dumps({"type": "block_actions", "response_url": hooks.url})
    forged = BoltRequest(body=body, headers={"content-type": JSON})
    on_error(RuntimeError("boom"), forged, forged.context)
    assert hooks.hits == []
    verified = BoltRequest(body=body, headers={"content-type": JSON}, context={VERIFIED: True})
    on_error(RuntimeError("boom"), verified, verified.context)
    assert hooks.hits == ["/hook"]


def test_signature_checks_and_replay_memory() -> None:
    body, now = b"token=x&text=hi", 1_700_000_000
    sig = signature_of(SECRET, str(now), body)
    assert check_signature(SECRET, str(now), sig, body, now=now) is None
    for ts, signature, why in (
        ("17e8", sig, "invalid X-Slack-Request-Timestamp"),
        ("١٧", sig, "invalid X-Slack-Request-Timestamp"),
        (str(now - 301), sig, "stale"),
        (str(now), sig.upper(), "invalid X-Slack-Signature"),
        (str(now), "v0=é", "invalid X-Slack-Signature"),
        ("", sig, "missing"),
    ):
        bad = check_signature(SECRET, ts, signature, body, now=now)
        assert bad is not None and bad.status == 401 and why in bad.reason
    guard = MemoryReplayGuard(max_entries=3)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert guard.first_seen("a", at, timedelta(minutes=5))
    assert not guard.first_seen("a", at + timedelta(minutes=4), timedelta(minutes=5))
    assert guard.first_seen("a", at + timedelta(minutes=6), timedelta(minutes=5))  # window over
    for i in range(10):
        guard.first_seen(f"s{i}", at + timedelta(minutes=6), timedelta(minutes=5))
    assert len(guard) <= 4  # bounded
    verifier = RequestVerifier(SECRET, clock=lambda: now)
    headers = {"x-slack-request-timestamp": str(now), "x-slack-signature": sig}
    assert verifier.check(headers, body) is None
    assert verifier.check(headers, body) == verifier.check(headers, body)
    assert verifier.check(headers, body).reason == "replayed request"  # type: ignore[union-attr]


def test_the_repository_replay_guard_delegates() -> None:
    seen: list[tuple[str, datetime, timedelta]] = []

    class Memory:
        def remember_request(self, signature: str, at: datetime, ttl: timedelta) -> bool:
            new = all(s != signature for s, _, _ in seen)
            seen.append((signature, at, ttl))
            return new

    guard = RepositoryReplayGuard(Memory())
    now = time.time()
    verifier = RequestVerifier(SECRET, guard=guard, clock=lambda: now)
    body = b"command=%2Fgpu-risk"
    headers = {k.lower(): v for k, v in sign(SECRET, body, int(now) - 60).items()}
    assert verifier.check(headers, body) is None
    assert verifier.check(headers, body) is not None
    assert seen[0][2] == timedelta(minutes=10)  # a timestamp is fresh for 5 minutes either way


def test_replicas_share_the_replay_memory_of_the_state_store(
    env: Env, hooks: Outbound, tally: Tally
) -> None:
    assert isinstance(env.bot.app.verifier.guard, RepositoryReplayGuard)  # type: ignore[attr-defined]
    other = fx.make_env(env.fake, env.repo)  # a second replica on the same state store
    first = Harness(env, make_wsgi_app(CollectorRegistry(), bolt_app=env.bot.app), tally)
    second = Harness(other, make_wsgi_app(CollectorRegistry(), bolt_app=other.bot.app), tally)
    body = form_body(slash_command("help", user=ADMIN, channel=ALERTS, response_url=hooks.url))
    headers = {"Content-Type": FORM, **sign(SECRET, body)}
    assert first.call("replay", body, headers)[0] == 200
    assert second.call("replay", body, headers) == (401, b"replayed request\n")
    first.settle()
    second.settle()
    assert hooks.hits == ["/hook"]


# ---------------------------------------------------------------- 2. signed but malformed


def slack_shaped(j: Junk, answer_at: str) -> tuple[dict[str, Any], str]:
    """A request as Slack shapes it (command, click, submission, event), one field made junk."""
    shapes: list[tuple[dict[str, Any], str]] = [
        (slash_command(j.command(), user=ADMIN, channel=ALERTS, response_url=answer_at), "form"),
        (click_payload(j, answer_at), "payload"),
        (submission_payload(j), "payload"),
        ({"type": "event_callback", "event": {"type": "app_home_opened", "user": ADMIN}}, "json"),
        ({"type": "url_verification", "challenge": j.text()}, "json"),
        ({"type": "shortcut", "callback_id": j.text(), "trigger_id": "t"}, "payload"),
        ({"type": "block_suggestion", "action_id": j.text(), "value": j.text()}, "payload"),
    ]
    obj, how = j.choice(shapes)
    target = obj
    while target and j.random() < 0.5:  # walk into a nested object, then spoil one field
        inner = [v for v in target.values() if isinstance(v, dict) and v]
        if not inner:
            break
        target = j.choice(inner)
    target[j.choice([*target, j.key()]) if target else j.key()] = j.value()
    return obj, how


def malformed_body(j: Junk, answer_at: str) -> tuple[bytes, str]:
    """Authentic (signed) bodies of random shape, encoding and content type."""
    if j.random() < 0.5:
        obj, how = slack_shaped(j, answer_at)
        if how == "form":
            fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in obj.items()}
            return urlencode(fields).encode(), FORM
        return (payload_body(obj), FORM) if how == "payload" else (json.dumps(obj).encode(), JSON)
    obj = j.obj()
    if j.random() < 0.6:
        obj["type"] = j.choice(KINDS)
    if j.random() < 0.5:
        obj["response_url"] = answer_at
    how = j.choice(["json", "payload", "payload", "form", "bytes", "utf8", "ctype"])
    if how == "json":
        return json.dumps(obj).encode(), JSON
    if how == "payload":
        return urlencode({"payload": json.dumps(obj)}).encode(), FORM
    if how == "form":
        fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in obj.items()}
        return urlencode(fields).encode(), FORM
    if how == "utf8":
        return json.dumps(obj).encode() + b"\xff\xfe\xc3", j.choice([JSON, FORM])
    if how == "ctype":
        ctype = j.choice(["text/plain", "", "multipart/form-data", "application/xml", j.text(20)])
        return json.dumps(obj).encode(), ctype
    return j.binary(300), j.choice([JSON, FORM])


def test_signed_malformed_bodies_get_400_or_a_clear_answer(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    answer_at = bot.env.fake.response_url("malformed")

    @fuzz(1250)
    @given(junk)
    def malformed(j: Junk) -> None:
        for _ in range(2):
            body, content_type = malformed_body(j, answer_at)
            status, answer, _ = bot.signed_call("signed malformed", body, content_type)
            if status == 400:
                assert 0 < len(answer) < 120 and b"Traceback" not in answer

    malformed()
    bot.settle()
    no_tracebacks(caplog)


# ---------------------------------------------------------------- 3. slash commands


def test_slash_command_texts_get_clear_escaped_answers(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    url = bot.env.fake.response_url("commands")
    sent = []

    @fuzz(800)
    @given(junk, st.sampled_from([ADMIN, OUTSIDER, "", "<!channel>", "U1>&<"]))
    def commands(j: Junk, user: str) -> None:
        text = j.command()
        body = form_body(slash_command(text, user=user, channel=ALERTS, response_url=url))
        status, _, replay = bot.signed_call("slash command", body)
        if not replay:
            assert status == 200
            sent.append(text)

    commands()
    bot.settle()
    answers = [r for r in bot.env.fake.responses if r["url"] == urlparse(url).path]
    assert len(answers) == len(sent)
    for answer in answers:
        assert answer["text"] and answer["blocks"]
        assert "<!" not in answer["text"] and "<@" not in answer["text"], answer["text"]
        assert "<!" not in json.dumps(answer["blocks"]), answer["blocks"]
    no_tracebacks(caplog)


def test_mentions_are_escaped_in_blocks_and_fallback_text(bot: Harness) -> None:
    url = bot.env.fake.response_url("mentions")
    for text in ("why <!channel>", "silence <!here> 1h", "silence pdu-a1 1h <!channel> & <@U1>"):
        body = form_body(slash_command(text, user=ADMIN, channel=ALERTS, response_url=url))
        assert bot.signed_call("escaping", body)[0] == 200
    bot.settle()
    answers = [r for r in bot.env.fake.responses if r["url"] == urlparse(url).path]
    assert len(answers) == 3
    for answer in answers:
        raw = answer["text"] + json.dumps(answer["blocks"])
        assert "<!channel>" not in raw and "<!here>" not in raw and "<@U1>" not in raw
    assert any("&lt;!channel&gt;" in a["text"] for a in answers)
    assert any("&lt;!channel&gt; &amp; &lt;@U1&gt;" in json.dumps(a["blocks"]) for a in answers)


def test_huge_durations_are_refused_with_the_limit(bot: Harness) -> None:
    url = bot.env.fake.response_url("durations")
    for text in (
        "silence pdu-a1 9999999999d",
        "silence pdu-a1 31d",
        "silence pdu-a1 " + "9" * 400 + "d",
    ):
        body = form_body(slash_command(text, user=ADMIN, channel=ALERTS, response_url=url))
        assert bot.signed_call("duration", body)[0] == 200
    bot.settle()
    answers = [r for r in bot.env.fake.responses if r["url"] == urlparse(url).path]
    assert len(answers) == 3
    assert all("at most 30 days (30d)" in a["text"] for a in answers), answers
    assert bot.env.repo.active_silences(datetime.now(UTC)) == []


# ---------------------------------------------------------------- 4. interactive payloads


def click_payload(j: Junk, url: str) -> dict[str, Any]:
    """Button clicks with known or random action ids, ids and shapes."""
    action_id = j.choice(ACTION_IDS) if j.random() < 0.8 else j.text(12)
    payload = block_action(
        action_id, "", user=j.choice([ADMIN, OUTSIDER, ""]), channel=ALERTS, message_ts="1.1",
        message_blocks=[], response_url=url,
    )  # fmt: skip
    payload["actions"][0]["value"] = j.incident_id()
    shape = j.choice(["ok", "ok", "no actions", "drop", "junk"])
    if shape == "no actions":
        payload["actions"] = []
    elif shape == "drop":
        payload.pop(j.choice(["user", "container", "channel", "trigger_id"]))
    elif shape == "junk":
        payload[j.key()] = j.value()
    return payload


def submission_payload(j: Junk) -> dict[str, Any]:
    """Silence modal submissions with random durations, reasons and metadata."""
    meta = {"incident": j.incident_id(), "channel": ALERTS, "ts": "1.1"}
    metadata = json.dumps(meta) if j.random() < 0.8 else j.text(20)
    duration = j.choice(["1h", "4h", "12h", "1d", "7d"]) if j.random() < 0.3 else j.word()
    reason = j.word() if j.random() < 0.9 else "x" * 600
    values: Any = {
        DURATION_BLOCK: {DURATION_ACTION: {"selected_option": {"value": duration}}},
        REASON_BLOCK: {REASON_ACTION: {"value": reason}},
    }
    if j.random() < 0.2:
        values = j.obj()
    view = {"callback_id": SILENCE_CALLBACK_ID, "private_metadata": metadata, "type": "modal"}
    return view_submission(view, values, user=j.choice([ADMIN, OUTSIDER]))


def test_interactive_payloads_get_clear_answers(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    url = bot.env.fake.response_url("clicks")

    @fuzz(1200)
    @given(junk)
    def interactive(j: Junk) -> None:
        payload = click_payload(j, url) if j.random() < 0.6 else submission_payload(j)
        status, answer, replay = bot.signed_call("interactive", payload_body(payload))
        if replay:
            return
        assert status == (200 if well_formed(payload) is None else 400)
        if payload["type"] == "block_actions" and not payload["actions"]:
            assert status == 400
        if status == 200 and answer:
            ack = json.loads(answer)
            assert ack.get("response_action") == "errors"
            assert set(ack["errors"]) <= {DURATION_BLOCK, REASON_BLOCK}

    interactive()
    assert bot.tally.statuses["interactive 200"] > 700  # most reach the listeners
    bot.settle()
    no_tracebacks(caplog)
    answers = [r for r in bot.env.fake.responses if r["url"] == urlparse(url).path]
    assert answers and all(a["text"] and a["response_type"] == "ephemeral" for a in answers)
    assert any("is not an incident id" in a["text"] for a in answers)
    assert any("is not known here" in a["text"] for a in answers)


def submit(bot: Harness, incident: Any, duration: str, user: str = ADMIN) -> dict[str, Any]:
    """Submit the silence modal; return Bolt's ack body (empty: the modal closes)."""
    meta = json.dumps({"incident": incident, "channel": ALERTS, "ts": "1.1"})
    view = {"callback_id": SILENCE_CALLBACK_ID, "private_metadata": meta, "type": "modal"}
    values = {DURATION_BLOCK: {DURATION_ACTION: {"selected_option": {"value": duration}}}}
    status, answer, _ = bot.signed_call(
        "modal", payload_body(view_submission(view, values, user=user))
    )
    assert status == 200
    return json.loads(answer) if answer else {}


def test_the_silence_modal_shows_problems_in_the_modal(bot: Harness) -> None:
    for incident, duration, user, problem in (
        ("1", "9999999999d", ADMIN, "at most 30 days"),
        ("1", "forever", ADMIN, "is not a duration"),
        ("1" * 40, "4h", ADMIN, "is not an incident id"),
        ("77", "4h", ADMIN, "incident 77 is not known"),
        ("1", "4h", OUTSIDER, "Only gpu-risk admins"),
    ):
        ack = submit(bot, incident, duration, user)
        assert ack["response_action"] == "errors"
        assert problem in ack["errors"][DURATION_BLOCK]
    assert bot.env.repo.active_silences(datetime.now(UTC)) == []
    assert submit(bot, 1, "12h") == {}  # closes, and applies it
    bot.settle()
    (silence,) = bot.env.repo.active_silences(datetime.now(UTC))
    assert silence.who == ADMIN


def test_unknown_actions_are_acknowledged_and_logged_once(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    payload = block_action(
        "somebody_elses_button", "1", user=ADMIN, channel=ALERTS, message_ts="1.1",
        message_blocks=[], response_url=bot.env.fake.response_url(),
    )  # fmt: skip
    assert bot.signed_call("unknown action", payload_body(payload))[:2] == (200, b"")
    bot.settle()
    lines = [r.getMessage() for r in caplog.records if "somebody_elses_button" in r.getMessage()]
    assert lines == ["ignored unknown Slack action 'somebody_elses_button'"]
    no_tracebacks(caplog)


# ---------------------------------------------------------------- 5. through waitress


def header_bytes(value: str) -> bytes:
    """A header value as raw bytes (UTF-8, not Latin-1), minus the line breaks HTTP cannot carry."""
    return value.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"")


def raw_post(url: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes, float]:
    """POST with raw header bytes (any bytes, as an attacker would); (status, body, seconds)."""
    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=10)
    started = time.monotonic()
    conn.putrequest("POST", "/slack/events", skip_accept_encoding=True)
    for name, value in headers:
        conn.putheader(name, value)
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data, time.monotonic() - started


def test_through_waitress_hostile_requests_get_clear_answers(
    env: Env, served: Served, hooks: Outbound, tally: Tally, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    now = datetime.now(UTC)
    env.cycle([gpu_incident(now), pdu_incident(now)])
    url = f"{served.url}/slack/events"

    @fuzz(300)
    @given(junk)
    def through_waitress(j: Junk) -> None:
        body, headers = forged_request(j, hooks.url)
        raw = [(k.encode(), header_bytes(v)) for k, v in headers.items()]
        if j.random() < 0.25:  # junk bytes in a header waitress passes on (or refuses with 400)
            raw.append((b"X-Slack-Retry-Reason", header_bytes(j.binary(24).decode("latin-1"))))
        status, answer, seconds = raw_post(url, body, raw)
        tally.record("through waitress", status, seconds)
        assert status in (400, 401) and seconds < HANG, (status, answer)

    through_waitress()
    # and authentic ones still work through the same server
    body = form_body(slash_command("help", user=ADMIN, channel=ALERTS, response_url=hooks.url))
    signed = [
        (k.encode(), v.encode()) for k, v in {"Content-Type": FORM, **sign(SECRET, body)}.items()
    ]
    assert raw_post(url, body, signed)[0] == 200
    env.fake.wait_for(lambda: True)
    time.sleep(0.3)
    env.bot.app.listener_runner.listener_executor.shutdown(wait=True)
    assert hooks.hits == ["/hook"]  # only the authentic request was answered
    no_tracebacks(caplog)
