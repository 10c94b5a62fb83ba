"""The fake Slack: Web API over HTTP on 127.0.0.1, plus a Socket Mode websocket server.

It implements what the bot calls, validates arguments the way Slack does where it matters
(token, channel, text, block count and nested block structure), records every call, and answers
429 (with Retry-After) or 5xx on demand from a queue of programmed failures.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from slack_sdk.models.blocks import Block
from websockets.sync.server import Server, ServerConnection, serve

MAX_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT = 40000


@dataclass
class Call:
    """One Web API call as the fake received it."""

    method: str
    args: dict[str, Any]
    token: str | None
    status: int
    response: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Failure:
    method: str
    status: int
    retry_after: int | None
    error: str | None


class SlackError(Exception):
    """An error answer (``ok: false``) the fake gives back."""

    def __init__(self, error: str, detail: str = "") -> None:
        super().__init__(error)
        self.error = error
        self.detail = detail


class FakeSlack:
    """A local Slack: start it, point ``WebClient(base_url=fake.api_url)`` at it, inspect it."""

    def __init__(
        self,
        bot_token: str = "xoxb-fake-bot",
        app_token: str = "xapp-fake-app",
        bot_user_id: str = "U0GPUBOT",
        team_id: str = "T0TEAM",
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.bot_user_id = bot_user_id
        self.team_id = team_id
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.calls: list[Call] = []
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.responses: list[dict[str, Any]] = []
        self.failures: list[_Failure] = []
        self.envelopes: dict[str, dict[str, Any]] = {}
        self.acks: dict[str, dict[str, Any]] = {}
        self.usergroups: dict[str, list[str]] = {}
        #: Channels conversations.info knows: id -> {name, is_member, is_private, is_archived}.
        #: A channel listed here with is_member False refuses conversations.history
        #: (not_in_channel), as Slack does; channels not listed behave as before.
        self.channels: dict[str, dict[str, Any]] = {}
        #: The scopes Slack reports in every answer's x-oauth-scopes header (None: no header).
        self.scopes: list[str] | None = None
        self._last_ts = 0.0
        self._http: ThreadingHTTPServer | None = None
        self._ws: Server | None = None
        self._threads: list[threading.Thread] = []
        self._sockets: list[ServerConnection] = []

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> FakeSlack:
        """Start the HTTP and websocket servers on free loopback ports."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                fake._handle(self)

            def do_GET(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self._ws = serve(self._ws_handler, "127.0.0.1", 0, ping_interval=None)
        http = self._http
        for target in (lambda: http.serve_forever(poll_interval=0.05), self._ws.serve_forever):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        """Stop both servers and close websocket connections."""
        for sock in list(self._sockets):
            with contextlib.suppress(Exception):  # already closed
                sock.close()
        if self._ws is not None:
            self._ws.shutdown()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL of the HTTP server (no trailing slash)."""
        assert self._http is not None
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        """What ``SLACK_API_URL`` should be: the Web API base, ending with ``/``."""
        return f"{self.url}/api/"

    @property
    def ws_url(self) -> str:
        """The websocket URL apps.connections.open hands out."""
        assert self._ws is not None
        host, port = self._ws.socket.getsockname()[:2]
        return f"ws://{host}:{port}/link/?ticket={uuid.uuid4().hex}"

    def response_url(self, name: str = "") -> str:
        """A response_url the fake accepts (for slash commands and actions)."""
        return f"{self.url}/response/{name or uuid.uuid4().hex}"

    # ---------------------------------------------------------------- programming
    def fail(
        self,
        method: str,
        *,
        status: int = 429,
        times: int = 1,
        retry_after: int | None = 0,
        error: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` ('*' = any) with ``status``."""
        with self.lock:
            for _ in range(times):
                self.failures.append(_Failure(method, status, retry_after, error))

    # ---------------------------------------------------------------- inspection
    def calls_to(self, method: str, *, ok: bool | None = True) -> list[Call]:
        """Recorded calls of one method (by default only the successful ones)."""
        with self.lock:
            return [
                c
                for c in self.calls
                if c.method == method and (ok is None or bool(c.response.get("ok")) == ok)
            ]

    def channel_messages(self, channel: str) -> list[dict[str, Any]]:
        """Top-level messages in a channel (not thread replies), oldest first."""
        with self.lock:
            return [
                m for m in self.messages.get(channel, []) if m.get("thread_ts") in (None, m["ts"])
            ]

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """Replies in the thread of message ``ts``, oldest first."""
        with self.lock:
            return [
                m
                for m in self.messages.get(channel, [])
                if m.get("thread_ts") == ts and m["ts"] != ts
            ]

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        """The current state of one message."""
        with self.lock:
            for m in self.messages.get(channel, []):
                if m["ts"] == ts:
                    return m
        raise KeyError(f"no message {ts} in {channel}")

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every change); return its value."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"fake Slack: condition not met in {timeout} s")
                self.changed.wait(min(left, 0.2))

    # ---------------------------------------------------------------- socket mode
    def _ws_handler(self, conn: ServerConnection) -> None:
        with self.changed:
            self._sockets.append(conn)
            self.changed.notify_all()
        conn.send(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": len(self._sockets),
                    "debug_info": {"host": "fake-slack"},
                    "connection_info": {"app_id": "A0GPURISK"},
                }
            )
        )
        try:
            for raw in conn:
                msg = json.loads(raw)
                env_id = msg.get("envelope_id")
                if env_id:
                    with self.changed:
                        self.acks[env_id] = msg
                        self.changed.notify_all()
        except Exception:  # connection closed by the client
            pass
        finally:
            with self.changed:
                if conn in self._sockets:
                    self._sockets.remove(conn)
                self.changed.notify_all()

    def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait until a Socket Mode client is connected."""
        self.wait_for(lambda: self._sockets, timeout)

    def push(self, kind: str, payload: dict[str, Any], *, accepts_response: bool = False) -> str:
        """Push an envelope (events_api, slash_commands, interactive) to the client; return its id."""
        env_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": env_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response,
            "retry_attempt": 0,
            "retry_reason": "",
        }
        with self.lock:
            self.envelopes[env_id] = envelope
            sock = self._sockets[-1]
        sock.send(json.dumps(envelope))
        return env_id

    def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for the client's ack of an envelope and return it."""
        result: dict[str, Any] = self.wait_for(lambda: self.acks.get(envelope_id), timeout)
        return result

    # ---------------------------------------------------------------- HTTP
    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length) if length else b""
        path = urlparse(req.path).path
        if path.startswith("/upload/"):
            self._upload(req, path.rsplit("/", 1)[-1], raw)
            return
        if path.startswith("/response/"):
            self._response_url(req, path, raw)
            return
        if not path.startswith("/api/"):
            self._send(req, 404, {"ok": False, "error": "unknown_path"})
            return
        method = path[len("/api/") :]
        args = self._parse_args(req, raw)
        token = self._token(req, args)
        failure = self._take_failure(method)
        if failure is not None:
            body = {
                "ok": False,
                "error": failure.error
                or ("ratelimited" if failure.status == 429 else "fatal_error"),
            }
            headers = (
                {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
            )
            self._record(method, args, token, failure.status, body)
            self._send(req, failure.status, body, headers)
            return
        try:
            self._check_token(method, token)
            handler = getattr(self, "_m_" + method.replace(".", "_"), None)
            if handler is None:
                raise SlackError("unknown_method")
            body = {"ok": True, **handler(args)}
        except SlackError as err:
            body = {"ok": False, "error": err.error}
            if err.detail:
                body["response_metadata"] = {"messages": [err.detail]}
        self._record(method, args, token, 200, body)
        scopes = {"x-oauth-scopes": ",".join(self.scopes)} if self.scopes is not None else None
        self._send(req, 200, body, scopes)

    def _take_failure(self, method: str) -> _Failure | None:
        with self.lock:
            for i, f in enumerate(self.failures):
                if f.method in (method, "*"):
                    return self.failures.pop(i)
        return None

    def _record(
        self,
        method: str,
        args: dict[str, Any],
        token: str | None,
        status: int,
        body: dict[str, Any],
    ) -> None:
        with self.changed:
            self.calls.append(Call(method, args, token, status, body))
            self.changed.notify_all()

    @staticmethod
    def _parse_args(req: BaseHTTPRequestHandler, raw: bytes) -> dict[str, Any]:
        ctype = req.headers.get("Content-Type", "")
        args: dict[str, Any] = {}
        query = parse_qs(urlparse(req.path).query)
        args.update({k: v[0] for k, v in query.items()})
        if "json" in ctype and raw:
            args.update(json.loads(raw))
        elif raw:
            args.update({k: v[0] for k, v in parse_qs(raw.decode()).items()})
        for key in ("blocks", "view", "files", "attachments", "metadata"):
            if isinstance(args.get(key), str):
                try:
                    args[key] = json.loads(args[key])
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{key} is not JSON") from exc
        return args

    @staticmethod
    def _token(req: BaseHTTPRequestHandler, args: dict[str, Any]) -> str | None:
        auth = req.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[len("Bearer ") :]
        token = args.pop("token", None)
        return str(token) if token else None

    def _check_token(self, method: str, token: str | None) -> None:
        if not token:
            raise SlackError("not_authed")
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != expected:
            raise SlackError("invalid_auth")

    @staticmethod
    def _send(
        req: BaseHTTPRequestHandler,
        status: int,
        body: dict[str, Any] | str,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = (json.dumps(body) if isinstance(body, dict) else body).encode()
        req.send_response(status)
        req.send_header(
            "Content-Type",
            "application/json; charset=utf-8" if isinstance(body, dict) else "text/plain",
        )
        req.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            req.send_header(k, v)
        req.end_headers()
        req.wfile.write(data)

    # ---------------------------------------------------------------- validation
    @staticmethod
    def check_blocks(blocks: Any, limit: int = MAX_BLOCKS) -> None:
        """Validate blocks as Slack does: a list of at most ``limit`` well-formed blocks."""
        if not isinstance(blocks, list):
            raise SlackError("invalid_blocks_format", "blocks must be a list")
        if len(blocks) > limit:
            raise SlackError(
                "invalid_blocks",
                f"[ERROR] must be less than {limit + 1} items [json-pointer:/blocks]",
            )
        for i, b in enumerate(blocks):
            try:
                parsed = Block.parse(b)
                if parsed is None:
                    raise ValueError("unknown block")
                parsed.to_dict()  # validates nested elements and text limits
            except Exception as exc:
                raise SlackError(
                    "invalid_blocks", f"[ERROR] {exc} [json-pointer:/blocks/{i}]"
                ) from exc
            if b.get("type") == "section":
                text = (b.get("text") or {}).get("text", "")
                if len(text) > 3000:
                    raise SlackError(
                        "invalid_blocks", f"section text over 3000 [json-pointer:/blocks/{i}]"
                    )
            if b.get("type") == "header" and len(b["text"]["text"]) > 150:
                raise SlackError("invalid_blocks", f"header over 150 [json-pointer:/blocks/{i}]")

    def _check_message(self, args: dict[str, Any]) -> None:
        if not args.get("channel"):
            raise SlackError("channel_not_found")
        if not args.get("text") and not args.get("blocks"):
            raise SlackError("no_text")
        if len(str(args.get("text") or "")) > MAX_TEXT:
            raise SlackError("msg_too_long")
        if "blocks" in args:
            self.check_blocks(args["blocks"])

    # ---------------------------------------------------------------- methods
    def _next_ts(self) -> str:
        with self.lock:  # real-looking, strictly increasing message timestamps
            self._last_ts = max(time.time(), self._last_ts + 1e-6)
            return f"{self._last_ts:.6f}"

    def _m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://example.slack.com/",
            "team": "Example",
            "user": "gpu-risk",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": "B0GPURISK",
            "is_enterprise_install": False,
        }

    def _m_conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel") or "")
        if channel not in self.channels:
            raise SlackError("channel_not_found")
        return {"channel": {"id": channel, **self.channels[channel]}}

    def _m_conversations_list(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "channels": [{"id": cid, **info} for cid, info in self.channels.items()],
            "response_metadata": {"next_cursor": ""},
        }

    def _m_conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if not channel:
            raise SlackError("channel_not_found")
        if str(channel) in self.channels and not self.channels[str(channel)].get("is_member"):
            raise SlackError("not_in_channel")
        oldest = float(args.get("oldest") or 0)
        with_meta = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        with self.lock:
            top = [
                dict(m)
                for m in self.messages.get(str(channel), [])
                if m.get("thread_ts") in (None, m["ts"]) and float(m["ts"]) > oldest
            ]
        for m in top:
            if not with_meta:
                m.pop("metadata", None)
        limit = int(args.get("limit") or 100)
        return {"messages": list(reversed(top))[:limit], "has_more": len(top) > limit}

    def _m_usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        group = args.get("usergroup")
        if not group:
            raise SlackError("invalid_arguments", "usergroup is required")
        if group not in self.usergroups:
            raise SlackError("no_such_subteam")
        return {"users": list(self.usergroups[group])}

    def _m_apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"url": self.ws_url}

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        self._check_message(args)
        channel = str(args["channel"])
        thread_ts = args.get("thread_ts")
        with self.lock:
            if thread_ts and not any(m["ts"] == thread_ts for m in self.messages.get(channel, [])):
                raise SlackError("thread_not_found")
            msg = {
                "type": "message",
                "ts": self._next_ts(),
                "user": self.bot_user_id,
                "text": args.get("text", ""),
                "blocks": args.get("blocks", []),
                "thread_ts": thread_ts,
                "edits": 0,
            }
            if isinstance(args.get("metadata"), dict):
                msg["metadata"] = args["metadata"]
            self.messages.setdefault(channel, []).append(msg)
        return {"channel": channel, "ts": msg["ts"], "message": msg}

    def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        self._check_message(args)
        if not args.get("ts"):
            raise SlackError("invalid_arguments", "ts is required")
        channel = str(args["channel"])
        with self.lock:
            msg = next((m for m in self.messages.get(channel, []) if m["ts"] == args["ts"]), None)
            if msg is None:
                raise SlackError("message_not_found")
            msg["text"] = args.get("text", msg["text"])
            if "blocks" in args:
                msg["blocks"] = args["blocks"]
            msg["edits"] += 1
        return {"channel": channel, "ts": msg["ts"], "text": msg["text"], "message": msg}

    def _m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        self._check_message(args)
        if not args.get("user"):
            raise SlackError("user_not_in_channel")
        return {"message_ts": self._next_ts()}

    def _m_views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("user_id"):
            raise SlackError("invalid_arguments", "user_id is required")
        view = args.get("view")
        if not isinstance(view, dict) or view.get("type") != "home":
            raise SlackError("invalid_arguments", "view must be a home view")
        self.check_blocks(view.get("blocks", []), MAX_VIEW_BLOCKS)
        return {"view": {"id": "V" + uuid.uuid4().hex[:8].upper(), **view}}

    def _m_views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("trigger_id"):
            raise SlackError("invalid_arguments", "trigger_id is required")
        view = args.get("view")
        if not isinstance(view, dict) or view.get("type") != "modal":
            raise SlackError("invalid_arguments", "view must be a modal")
        title = (view.get("title") or {}).get("text", "")
        if not title or len(title) > 24:
            raise SlackError("invalid_arguments", "title is required, at most 24 characters")
        self.check_blocks(view.get("blocks", []), MAX_VIEW_BLOCKS)
        return {"view": {"id": "V" + uuid.uuid4().hex[:8].upper(), **view}}

    def _m_files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        if not args.get("filename") or not str(args.get("length", "")).isdigit():
            raise SlackError("invalid_arguments", "filename and length are required")
        file_id = "F" + uuid.uuid4().hex[:10].upper()
        with self.lock:
            self.uploads[file_id] = {
                "filename": args["filename"],
                "length": int(args["length"]),
                "data": None,
                "shared": False,
            }
        return {"upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _upload(self, req: BaseHTTPRequestHandler, file_id: str, raw: bytes) -> None:
        with self.changed:
            up = self.uploads.get(file_id)
            if up is None:
                self._send(req, 404, "unknown upload")
                return
            up["data"] = raw
            self.changed.notify_all()
        self._send(req, 200, f"OK - {len(raw)}")

    def _m_files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        files = args.get("files")
        if not isinstance(files, list) or not files:
            raise SlackError("invalid_arguments", "files is required")
        channel = args.get("channel_id")
        thread_ts = args.get("thread_ts")
        with self.lock:
            if thread_ts and not any(
                m["ts"] == thread_ts for m in self.messages.get(str(channel), [])
            ):
                raise SlackError("invalid_thread_ts")
            out = []
            for f in files:
                up = self.uploads.get(f.get("id", ""))
                if up is None or up["data"] is None:
                    raise SlackError("file_not_found")
                if len(up["data"]) != up["length"]:
                    raise SlackError("file_size_mismatch")
                up.update(
                    shared=True,
                    title=f.get("title"),
                    channel=channel,
                    thread_ts=thread_ts,
                    initial_comment=args.get("initial_comment"),
                )
                out.append({"id": f["id"], "title": f.get("title"), "name": up["filename"]})
        return {"files": out}

    def _response_url(self, req: BaseHTTPRequestHandler, path: str, raw: bytes) -> None:
        try:
            body = json.loads(raw or b"{}")
            if "blocks" in body:
                self.check_blocks(body["blocks"])
            if not body.get("text") and not body.get("blocks") and not body.get("delete_original"):
                raise SlackError("no_text")
        except SlackError as err:
            self._send(req, 400, err.error)
            return
        with self.changed:
            self.responses.append({"url": path, **body})
            self.changed.notify_all()
        self._send(req, 200, "ok")
