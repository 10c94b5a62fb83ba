"""No credential reaches any output: logs (DEBUG), CLI stdout/stderr, check's table, Slack status.

Canary secrets are set everywhere a user can put one (Prometheus URL userinfo, bearer token,
Slack bot/app tokens, signing secret, a database URL password), then ``gpu-risk check`` and
``gpu-risk scan`` run against an unreachable server, one answering HTTP 500 and one answering
garbage; every channel is searched for the canaries.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.cli import build_app
from bot.config import Settings
from storage.metrics import PrometheusSource
from storage.redact import RedactingFilter, redact_text, redact_url
from storage.repository import Repository
from storage.source import MetricsSourceError
from tests.fixtures import slack as fx
from tests.fixtures.canned_http import canned_server
from tests.fixtures.prometheus import free_port
from tests.fixtures.slack import FakeSlack, make_env

fake_slack = fx.fake_slack
migrated_db = fx.migrated_db
repo = fx.repo

CANARIES = (
    "CANARYPASS",
    "CANARYTOKEN",
    "xoxb-CANARYSLACK",
    "CANARYSLACK",
    "xapp-CANARYAPP",
    "CANARYAPP",
    "CANARYSIGNING",
    "CANARYDBPASS",
)


def _env(prometheus_url: str) -> dict[str, str]:
    """Every secret setting set to a canary."""
    return {
        "GPU_RISK_PROMETHEUS_URL": prometheus_url,
        "GPU_RISK_PROMETHEUS_BEARER_TOKEN": "CANARYTOKEN",
        "GPU_RISK_PROMETHEUS_RETRIES": "0",
        "GPU_RISK_PROMETHEUS_TIMEOUT": "2",
        "GPU_RISK_DATABASE_URL": "postgresql://gpurisk:CANARYDBPASS@db.invalid:5432/gpurisk",
        "GPU_RISK_SLACK_CHANNEL": "C0ALERTS",
        "SLACK_BOT_TOKEN": "xoxb-CANARYSLACK",
        "SLACK_APP_TOKEN": "xapp-CANARYAPP",
        "SLACK_SIGNING_SECRET": "CANARYSIGNING",
    }


def _url(port: int) -> str:
    """A Prometheus URL with a canary password in its userinfo."""
    return f"http://sre:CANARYPASS@127.0.0.1:{port}"


def _server(status: int, body: bytes) -> contextlib.AbstractContextManager[int]:
    """A local server answering every request with ``status`` and ``body``; yield its port."""
    return canned_server(body, status)


def _everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every record captured, rendered with its arguments and traceback, unfiltered."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(r) for r in caplog.records)


def _assert_clean(*texts: str) -> None:
    """No canary in any of ``texts``."""
    for text in texts:
        for canary in CANARIES:
            assert canary not in text, f"{canary} leaked in: {text[:2000]}"


def _invoke(args: list[str], url: str, caplog: pytest.LogCaptureFixture) -> tuple[int, str]:
    """Run the CLI in-process at DEBUG; return its exit code and stdout+stderr+logs."""
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    result = CliRunner().invoke(build_app(), args, env=_env(url), catch_exceptions=False)
    out = result.stdout + result.stderr
    return result.exit_code, out + "\n" + _everything_logged(caplog)


@pytest.mark.parametrize(
    "server",
    ["unreachable", "http500", "garbage", "malformed"],
)
def test_scan_and_check_never_print_a_canary(server: str, caplog: pytest.LogCaptureFixture) -> None:
    """check and scan against unreachable, failing and garbage servers: no canary anywhere."""
    answers = {
        "http500": (500, b'{"status":"error","error":"boom"}'),
        "garbage": (200, b"<html>login</html>"),
        "malformed": (
            200,
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[["x","1"]]}]}}',
        ),
    }
    with contextlib.ExitStack() as stack:
        if server == "unreachable":
            port = free_port()
        else:
            port = stack.enter_context(_server(*answers[server]))
        url = _url(port)
        code, text = _invoke(["scan", "--no-explain", "--at", "2026-11-22T10:00:00Z"], url, caplog)
        assert code == 2 and f"http://***@127.0.0.1:{port}" in text, text
        _assert_clean(text)
        code, text = _invoke(["check", "--slack"], url, caplog)
        assert f"http://***@127.0.0.1:{port}" in text and "postgresql://***@db.invalid" in text
        _assert_clean(text)


def test_errors_and_attributes_of_the_reader_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    """PrometheusSource: .url, warnings (TLS off) and every error show http://***@host."""
    caplog.set_level(logging.DEBUG)
    port = free_port()
    src = PrometheusSource(_url(port), verify_tls=False, retries=0, timeout=1)
    assert src.url == f"http://***@127.0.0.1:{port}"
    with pytest.raises(MetricsSourceError) as err:
        src.fetch(*_window())
    assert "***@" in str(err.value)
    _assert_clean(str(err.value), _everything_logged(caplog))


def _window() -> tuple[Any, Any, Any]:
    """A short fetch window."""
    from datetime import UTC, datetime, timedelta

    end = datetime(2026, 11, 22, 10, tzinfo=UTC)
    return end - timedelta(minutes=5), end, timedelta(minutes=1)


def test_settings_repr_hides_tokens_and_secrets() -> None:
    """SecretStr keeps tokens and secrets out of repr(settings) and str(settings)."""
    settings = Settings(
        prometheus_bearer_token="CANARYTOKEN",
        slack_bot_token="xoxb-CANARYSLACK",
        slack_app_token="xapp-CANARYAPP",
        slack_signing_secret="CANARYSIGNING",
        prometheus_password="CANARYPASS",
        prometheus_username="sre",
    )
    _assert_clean(repr(settings), str(settings), str(settings.model_dump()))


def test_slack_status_shows_the_masked_url(fake_slack: FakeSlack, repo: Repository) -> None:
    """/gpu-risk status names the data source without the URL's password."""
    env = make_env(fake_slack, repo, prometheus_url="http://sre:CANARYPASS@prom.example:9090")
    shown = env.bot.service.status_view().data_source
    assert shown == "http://***@prom.example:9090"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://user:pass@host:9090", "http://***@host:9090"),
        (
            "https://host/prom?query=up&api_token=T&x=1",
            "https://host/prom?query=up&api_token=***&x=1",
        ),
        (
            "https://host/?password=P&Secret=S&apiKey=K",
            "https://host/?password=***&Secret=***&apiKey=***",
        ),
        ("http://u:p/a?b#c@host/x", "http://***@host/x"),
        ("postgresql+psycopg://u:p@db/gpu", "postgresql+psycopg://***@db/gpu"),
        ("http://host:9090/", "http://host:9090/"),
        ("sqlite:///gpu-risk.db", "sqlite:///gpu-risk.db"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    """Userinfo becomes ***@, secret query values ***, everything else stays as written."""
    assert redact_url(url) == expected


def test_logging_filter_masks_urls_in_messages_and_tracebacks() -> None:
    """The filter setup_logging installs rewrites a record's message and traceback text."""
    try:
        raise RuntimeError("cannot open http://a:CANARYPASS@h/")
    except RuntimeError:
        import sys

        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "to %s", ("http://a:CANARYPASS@h/",), sys.exc_info()
        )
    assert RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "http://***@h/" in text
    _assert_clean(text, redact_text("see http://a:CANARYPASS@h/ and sqlite:///x"))


def test_the_state_store_holds_no_secret(tmp_path: Path) -> None:
    """A bot run with canary credentials everywhere writes none of them to its database."""
    from datetime import timedelta

    from bot.config import load_settings
    from bot.wiring import build_runtime
    from storage.simulator import FleetSimulator, FleetSpec
    from tests.fixtures import fleetdata as fd

    sim = fd.simulate(FleetSimulator, FleetSpec)  # HBM fails at 2:00, PCIe at 2:30
    db = tmp_path / "state.db"
    settings = load_settings(
        None,
        database_url=f"sqlite:///{db}",
        detector="static",
        open_after=1,
        prometheus_url=_url(9),
        prometheus_bearer_token=None,
        prometheus_username=None,
        console_log=tmp_path / "console.jsonl",
        http_host="127.0.0.1",
    )
    at = {"t": fd.SIM_START + timedelta(hours=2, minutes=10)}
    runtime = build_runtime(settings, source=sim, clock=lambda: at["t"])
    try:
        for minutes in range(0, 40, 5):
            at["t"] = fd.SIM_START + timedelta(hours=2, minutes=10 + minutes)
            assert runtime.scan() is True
            runtime.dispatch()
        assert runtime.repository.open_incidents(), "the fault should be in the store"
    finally:
        runtime.repository.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    _assert_clean(raw.decode("latin-1"), "the SQLite state store")
