"""Is a raw request from Slack, seen once, and shaped as Slack shapes it? Checked on the raw bytes.

``RequestVerifier.check`` answers before anything parses the body: the ``v0`` signature
(HMAC-SHA256 of ``v0:{timestamp}:{body}`` with the signing secret, compared in constant time),
the timestamp (numeric, within 5 minutes) and replays (a signature seen inside that window).
``well_formed`` then parses the authenticated body as Bolt will and checks the fields Bolt and the
listeners read have the types Slack sends. Pure: no I/O; the clock and the replay memory are given.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import parse_qsl

VERIFIED = "gpu_risk_verified"  # in the Bolt context of a request whose raw bytes were verified
MAX_AGE = timedelta(minutes=5)
MAX_BODY = 1 << 20  # bytes; Slack's largest payloads (a view with 100 blocks) are far smaller
_MAX_TIMESTAMP_DIGITS = 12
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
INTERACTIVE_TYPES = frozenset(
    {
        "block_actions",
        "block_suggestion",
        "view_submission",
        "view_closed",
        "shortcut",
        "message_action",
    }
)
EVENT_TYPES = frozenset({"event_callback", "url_verification"})
# fields Bolt's context extraction and the listeners read: text, an object, or text-or-object
_TEXT = frozenset(
    {
        "type", "subtype", "id", "team_id", "user_id", "channel_id", "enterprise_id", "user_team",
        "callback_id", "action_id", "block_id", "trigger_id", "response_url", "command",
        "token", "api_app_id", "thread_ts", "ts", "message_ts", "tab", "private_metadata",
        "challenge", "bot_id", "function_execution_id", "app_installed_team_id", "ssl_check",
        "context_team_id", "context_enterprise_id", "execution_id", "event_ts",
    }
)  # fmt: skip
_OBJECT = frozenset(
    {
        "event", "view", "message", "previous_message", "item", "assistant_thread", "container",
        "state", "function_data", "workflow_step", "values",
    }
)  # fmt: skip
_TEXT_OR_OBJECT = frozenset({"team", "user", "channel", "enterprise", "text"})
_LIST_OF_OBJECTS = frozenset({"actions", "authorizations", "response_urls"})
_MAX_DEPTH = 6


@dataclass(frozen=True)
class Rejection:
    """Why a request is refused: the HTTP status and a short plain-text reason for the sender."""

    status: int
    reason: str


class ReplayGuard(Protocol):
    """Remembers request signatures: True the first time one is seen within its ttl."""

    def first_seen(self, signature: str, at: datetime, ttl: timedelta) -> bool:
        """Remember ``signature`` for ``ttl`` from ``at``; False when it is already remembered."""
        ...


class RequestMemory(Protocol):
    """What the Repository offers to share replay protection between replicas."""

    def remember_request(self, signature: str, at: datetime, ttl: timedelta) -> bool:
        """Store ``signature`` until ``at + ttl``; True when it was new."""
        ...


class MemoryReplayGuard:
    """Signatures seen by this process, pruned once their window is over (bounded memory)."""

    def __init__(self, max_entries: int = 200_000) -> None:
        """``max_entries`` caps memory even under a flood of authentic requests (oldest go first)."""
        self._until: dict[str, datetime] = {}
        self._order: deque[tuple[datetime, str]] = deque()
        self._max = max_entries
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many signatures are remembered now."""
        return len(self._until)

    def first_seen(self, signature: str, at: datetime, ttl: timedelta) -> bool:
        """True the first time ``signature`` is seen while remembered."""
        with self._lock:
            self._prune(at)
            if signature in self._until:
                return False
            until = at + ttl
            self._until[signature] = until
            self._order.append((until, signature))
            return True

    def _prune(self, at: datetime) -> None:
        """Forget signatures whose window is over, and the oldest beyond ``max_entries``."""
        order = self._order
        while order and (order[0][0] <= at or len(order) > self._max):
            _, signature = order.popleft()
            self._until.pop(signature, None)


class RepositoryReplayGuard:
    """Replay memory in the state store (``Repository.remember_request``), shared by replicas."""

    def __init__(self, memory: RequestMemory) -> None:
        """``memory``: a Repository that has ``remember_request``."""
        self._memory = memory

    def first_seen(self, signature: str, at: datetime, ttl: timedelta) -> bool:
        """True when the store had not seen ``signature`` yet."""
        return bool(self._memory.remember_request(signature, at, ttl))


def signature_of(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's ``v0=`` signature of ``body`` sent at ``timestamp``."""
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def check_signature(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    now: float,
    max_age: timedelta = MAX_AGE,
) -> Rejection | None:
    """None when ``signature`` signs ``body`` at a ``timestamp`` within ``max_age`` of ``now``."""
    if not timestamp or not signature:
        return Rejection(401, "missing Slack signature headers")
    ts = timestamp.strip()
    if not (ts.isascii() and ts.isdigit() and len(ts) <= _MAX_TIMESTAMP_DIGITS):
        return Rejection(401, "invalid X-Slack-Request-Timestamp")
    if abs(now - int(ts)) > max_age.total_seconds():
        return Rejection(401, "stale or future X-Slack-Request-Timestamp")
    if not signature.isascii():
        return Rejection(401, "invalid X-Slack-Signature")
    expected = signature_of(secret, ts, body)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        return Rejection(401, "invalid X-Slack-Signature")
    return None


class RequestVerifier:
    """Signature, timestamp and replay checks of raw requests with one signing secret."""

    def __init__(
        self,
        secret: str,
        *,
        guard: ReplayGuard | None = None,
        clock: Callable[[], float] = time.time,
        max_age: timedelta = MAX_AGE,
    ) -> None:
        """``guard`` remembers signatures (default: in memory); ``clock`` gives Unix seconds."""
        if not secret:
            raise ValueError("a request verifier needs the Slack signing secret")
        self._secret = secret
        self.guard: ReplayGuard = guard if guard is not None else MemoryReplayGuard()
        self._clock = clock
        self.max_age = max_age

    def check(self, headers: Mapping[str, str], body: bytes) -> Rejection | None:
        """None when ``body`` is authentic, fresh and new; otherwise why not (401)."""
        timestamp = headers.get("x-slack-request-timestamp")
        signature = headers.get("x-slack-signature")
        now = self._clock()
        bad = check_signature(
            self._secret, timestamp, signature, body, now=now, max_age=self.max_age
        )
        if bad is not None or timestamp is None or signature is None:
            return bad
        # a signature is accepted while its timestamp is within max_age of now: up to 2 x max_age
        at = datetime.fromtimestamp(now, UTC)
        if not self.guard.first_seen(signature.strip(), at, 2 * self.max_age):
            return Rejection(401, "replayed request")
        return None


def parse_body(content_type: str, body: bytes) -> dict[str, Any] | Rejection:
    """The body as Bolt will see it (a JSON object or form fields), or why it is malformed (400)."""
    kind = content_type.split(";", maxsplit=1)[0].strip().lower()
    if kind not in (JSON, FORM):
        return Rejection(400, f"unsupported Content-Type; Slack sends {JSON} or {FORM}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Rejection(400, "the body is not UTF-8")
    if kind == JSON or text.startswith("{"):
        return _json_object(text, "the JSON body")
    fields = dict(parse_qsl(text, keep_blank_values=True))
    if "payload" in fields:
        return _json_object(fields["payload"], "the payload field")
    return fields


def _json_object(text: str, what: str) -> dict[str, Any] | Rejection:
    """``text`` parsed as a JSON object, or a 400 saying ``what`` is malformed."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return Rejection(400, f"{what} is not JSON")
    if not isinstance(value, dict):
        return Rejection(400, f"{what} is not a JSON object")
    return value


def well_formed(body: Mapping[str, Any]) -> Rejection | None:
    """None when ``body`` is a request kind the bot handles, with the field types Slack sends."""
    problem = _field_problem(body, 0)
    if problem is None:
        problem = _kind_problem(body)
    return Rejection(400, problem) if problem else None


def _kind_problem(body: Mapping[str, Any]) -> str | None:
    """What is wrong with the request's kind (slash command, interactive payload, event)."""
    kind = body.get("type")
    if "command" in body:
        ok = isinstance(body["command"], str) and body["command"].startswith("/")
        return None if ok else "a command must start with /"
    if body.get("ssl_check") == "1" or kind == "url_verification":
        return None
    if kind == "event_callback":
        event = body.get("event")
        ok = isinstance(event, dict) and isinstance(event.get("type"), str)
        return None if ok else "an event needs its type"
    if kind in INTERACTIVE_TYPES:
        return _interactive_problem(str(kind), body)
    return "not a request kind gpu-risk handles"


def _interactive_problem(kind: str, body: Mapping[str, Any]) -> str | None:
    """What an interactive payload lacks that Bolt needs to route it."""
    if kind in ("view_submission", "view_closed"):
        view = body.get("view")
        ok = isinstance(view, dict) and isinstance(view.get("callback_id"), str)
        return None if ok else f"{kind} needs a view with a callback_id"
    if kind == "block_actions":
        actions = body.get("actions")
        first = actions[0] if isinstance(actions, list) and actions else None
        ok = isinstance(first, dict) and isinstance(first.get("action_id"), str)
        return None if ok else "block_actions needs an action with an action_id"
    field = "action_id" if kind == "block_suggestion" else "callback_id"
    return None if isinstance(body.get(field), str) else f"{kind} needs a {field}"


def _field_problem(obj: Mapping[str, Any], depth: int) -> str | None:
    """The first field of ``obj`` (or of the objects it holds) whose type Slack never sends."""
    if depth > _MAX_DEPTH:
        return None
    for key, value in obj.items():
        if value is None:
            continue
        if key in _TEXT and not isinstance(value, str):
            return f"{key} must be text"
        if key == "response_url" and not value.startswith(("https://", "http://")):
            return "response_url must be an http(s) URL"
        nested: list[Any] = []
        if key in _OBJECT or (key in _TEXT_OR_OBJECT and not isinstance(value, str)):
            if not isinstance(value, dict):
                return f"{key} must be an object"
            nested = [value]
        elif key in _LIST_OF_OBJECTS:
            if not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
                return f"{key} must be a list of objects"
            nested = value
        for inner in nested:
            problem = _field_problem(inner, depth + 1)
            if problem is not None:
                return problem
    return None
