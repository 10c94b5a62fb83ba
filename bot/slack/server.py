"""One WSGI app on one port: /slack/events (Bolt, signature verified), /livez, /readyz
(/healthz), /metrics.

Served by waitress (a production WSGI server), never Bolt's development server. /slack/events
verifies the raw bytes (``bot.slack.verify``) before Bolt or anything else parses them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import make_wsgi_app as metrics_wsgi_app
from slack_bolt import App, BoltRequest
from slack_bolt.adapter.wsgi.http_response import WsgiHttpResponse
from slack_bolt.context import BoltContext
from slack_bolt.request.internals import build_context
from waitress.server import create_server

from bot.slack.verify import (
    MAX_BODY,
    VERIFIED,
    Rejection,
    RequestVerifier,
    parse_body,
    well_formed,
)

logger = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


def make_wsgi_app(
    registry: CollectorRegistry,
    *,
    bolt_app: App | None = None,
    health: HealthCheck | None = None,
    liveness: HealthCheck | None = None,
) -> WSGIApp:
    """Route /slack/events to Bolt (when given), /readyz and /healthz (its old name) to
    ``health``, /livez to ``liveness`` (200 while serving), /metrics to ``registry``."""
    metrics = metrics_wsgi_app(registry)
    slack = slack_events_endpoint(bolt_app) if bolt_app is not None else None

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Dispatch on the path."""
        path = environ.get("PATH_INFO", "")
        if path == "/slack/events" and slack is not None:
            return slack(environ, start_response)
        if path in ("/readyz", "/healthz"):  # /healthz: the old name, kept for compatibility
            return _health_answer(health, start_response)
        if path == "/livez":
            return _health_answer(liveness, start_response, always_ok=True)
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    return app


def slack_events_endpoint(bolt_app: App) -> WSGIApp:
    """/slack/events: verify the raw bytes, check their shape, and only then let Bolt parse them."""
    verifier: RequestVerifier | None = getattr(bolt_app, "verifier", None)
    if verifier is None:
        raise ValueError("/slack/events needs an app built with a signing secret (HTTP mode)")

    def endpoint(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """401 unless authentic, 400 unless well formed, else Bolt's answer."""
        if environ.get("REQUEST_METHOD") != "POST":
            return _refuse(start_response, Rejection(405, "POST only"))
        raw = _read_body(environ)
        if isinstance(raw, Rejection):
            return _refuse(start_response, raw)
        headers = _headers(environ)
        rejected = verifier.check(headers, raw)
        body = parse_body(headers.get("content-type", ""), raw) if rejected is None else rejected
        rejected = body if isinstance(body, Rejection) else well_formed(body)
        if rejected is not None or isinstance(body, Rejection):
            return _refuse(start_response, rejected or Rejection(400, "malformed body"))
        request = _bolt_request(raw, body, environ.get("QUERY_STRING", ""), headers)
        answer = bolt_app.dispatch(request)
        response = WsgiHttpResponse(answer.status, answer.headers, answer.body)
        start_response(response.status, response.get_headers())
        return response.get_body()

    return endpoint


def _bolt_request(
    raw: bytes, body: dict[str, Any], query: str, headers: dict[str, str]
) -> BoltRequest:
    """A Bolt request marked verified, holding exactly the body that was checked."""
    mark = {VERIFIED: True}
    request = BoltRequest(
        body=raw.decode("utf-8"), query=query, headers=dict(headers), context=mark
    )
    if request.body != body:  # Bolt reads any form body that mentions "payload" as {}
        request.body = body
        request.context = build_context(BoltContext(mark), body)
    return request


def _read_body(environ: dict[str, Any]) -> bytes | Rejection:
    """The raw request body, at most MAX_BODY bytes."""
    length = str(environ.get("CONTENT_LENGTH") or "").strip()
    if length and not (length.isascii() and length.isdigit()):
        return Rejection(400, "invalid Content-Length")
    if length and int(length) > MAX_BODY:
        return Rejection(413, "request body too large")
    stream = environ.get("wsgi.input")
    raw = stream.read(int(length) if length else MAX_BODY + 1) if stream is not None else b""
    return Rejection(413, "request body too large") if len(raw) > MAX_BODY else bytes(raw)


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    """Request headers by lower-case name, as Bolt names them."""
    out = {
        k[5:].lower().replace("_", "-"): str(v) for k, v in environ.items() if k.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            out[key.lower().replace("_", "-")] = str(environ[key])
    return out


def _refuse(start_response: Callable[..., Any], rejection: Rejection) -> Iterable[bytes]:
    """A short plain-text refusal; nothing else happens."""
    body = f"{rejection.reason}\n".encode()
    status = f"{rejection.status} {HTTPStatus(rejection.status).phrase}"
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    )
    return [body]


def _health_answer(
    check: HealthCheck | None, start_response: Callable[..., Any], *, always_ok: bool = False
) -> Iterable[bytes]:
    """Answer a health route as JSON: 200 when ``check`` says ok, else 503.

    ``always_ok`` (liveness): 200 whenever the process answers at all, even if the detail
    cannot be gathered (the failure is logged and shown in the body).
    """
    try:
        ok, detail = check() if check is not None else (True, {})
    except Exception as exc:
        if not always_ok:
            raise
        logger.exception("liveness detail failed")
        ok, detail = True, {"detail_error": f"{type(exc).__name__}: {exc}"}
    ok = ok or always_ok
    body = json.dumps({"ok": ok, **detail}, default=str).encode()
    status = "200 OK" if ok else "503 Service Unavailable"
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


class HttpServer:
    """waitress serving a WSGI app in a background thread; ``port`` is the bound port."""

    def __init__(
        self,
        app: WSGIApp,
        host: str = "0.0.0.0",
        port: int = 3000,
        threads: int = 8,
        *,
        loop_timeout: float = 1.0,
    ) -> None:
        """Bind now (port 0 picks a free port); call ``start()`` to serve."""
        self._server = create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="gpu-risk",
            asyncore_loop_timeout=loop_timeout,
        )
        self.host = host
        self.port = int(self._server.effective_port)  # type: ignore[union-attr]
        self._thread: threading.Thread | None = None

    def start(self) -> HttpServer:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until closed."""
        self._server.run()

    def stop(self) -> None:
        """Stop serving: close the listening socket from inside the serving loop, then wait."""
        server: Any = self._server
        if self._thread is not None and self._thread.is_alive():
            try:
                server.trigger.pull_trigger(
                    server.close
                )  # closing from another thread races select
            except OSError:  # close() already ran (it closes the wake-up pipe too): just wait
                logger.info("HTTP server already closing; waiting for its thread")
            self._thread.join(timeout=5)
        else:
            server.close()
        server.task_dispatcher.shutdown(timeout=2)


def serve(
    app: WSGIApp,
    host: str = "0.0.0.0",
    port: int = 3000,
    *,
    threads: int = 8,
    loop_timeout: float = 1.0,
) -> HttpServer:
    """Start serving ``app`` in the background; return the server (``.port``, ``.stop()``)."""
    return HttpServer(app, host, port, threads, loop_timeout=loop_timeout).start()
