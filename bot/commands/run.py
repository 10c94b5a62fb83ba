"""``gpu-risk run``: the bot itself — scheduled scans, notifications, /healthz, /metrics, Slack.

Without ``SLACK_BOT_TOKEN`` notifications go to the terminal (and to ``GPU_RISK_CONSOLE_LOG``
as JSON lines when set). SIGTERM or SIGINT stops it gracefully: the running scan finishes, the
leadership is released, the HTTP server closes.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from bot.commands.common import (
    ConfigOption,
    PrometheusUrlOption,
    TopologyOption,
    UserError,
    guarded,
    settings_from,
    setup_logging,
)

logger = logging.getLogger(__name__)


def register(app: typer.Typer) -> None:
    """Add the ``run`` command."""
    app.command("run")(guarded(run))


def run(
    *,
    prometheus_url: PrometheusUrlOption = None,
    topology: TopologyOption = None,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="SQLite or PostgreSQL URL [GPU_RISK_DATABASE_URL]"),
    ] = None,
    http_port: Annotated[
        int | None, typer.Option("--http-port", help="HTTP port [GPU_RISK_HTTP_PORT]")
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Run one scan, deliver the notifications, and exit")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging")] = False,
    config: Path | None = ConfigOption,
) -> None:
    """Run the bot: scans on a schedule, alerts (Slack or terminal), /healthz and /metrics."""
    settings = settings_from(
        config,
        prometheus_url=prometheus_url,
        topology=topology,
        database_url=database_url,
        http_port=http_port,
    )
    from bot.config import problems

    needs = ("prometheus", "slack") if settings.slack_bot_token else ("prometheus",)
    found = problems(settings, needs=needs)
    if found:
        raise UserError("; ".join(found))
    setup_logging(verbose)
    if not verbose:  # one line per scan from us is enough
        for noisy in ("apscheduler", "alembic", "waitress"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    from sqlalchemy.exc import OperationalError

    from bot.wiring import build_runtime
    from storage.db import DatabaseURLError

    stopping = threading.Event()
    if not once:  # installed first: a SIGTERM while starting still shuts down gracefully

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            """Ask the main thread to shut down."""
            logger.info("received %s: shutting down", signal.Signals(signum).name)
            stopping.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    try:
        runtime = build_runtime(settings)
    except DatabaseURLError as exc:
        raise UserError(str(exc)) from None
    except OperationalError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise UserError(
            f"cannot open the database {settings.database_url!r}: {reason} "
            "(check GPU_RISK_DATABASE_URL)"
        ) from None
    if once:
        try:
            ok = runtime.scan()
            runtime.dispatch()
        finally:
            runtime.stop()
        if not ok:
            raise typer.Exit(code=1)
        return
    try:
        runtime.start()
    except OSError as exc:  # the port is taken, the address is not ours, ...
        runtime.stop()
        raise UserError(
            f"cannot serve HTTP on {settings.http_host}:{settings.http_port}: {exc} "
            "(set GPU_RISK_HTTP_PORT or --http-port)"
        ) from None
    try:
        while not stopping.wait(1.0):
            pass
    finally:
        runtime.stop()
