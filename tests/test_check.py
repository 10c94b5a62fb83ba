"""``gpu-risk check`` connects: each injected mistake is found, one ✗ line each.

Against a real Prometheus holding the hand-written fleet (and a second one without the opt-in
DCGM counters) and the fake Slack.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.cli import build_app
from bot.commands.check import OPT_IN_DCGM, manifest_scopes
from bot.config import Settings
from tests.fakeslack import FakeSlack
from tests.fixtures.prometheus import (
    Dataset,
    PromqlBackend,
    backfill,
    free_port,
    start_prometheus,
    wait_prometheus,
)

pytest_plugins = ("tests.fixtures.prometheus",)

AT = "2026-11-20T02:50:00Z"
MEMBER, OUTSIDE = "C0ALERTS", "C0OTHER"


@pytest.fixture(scope="module")
def lean_prometheus(
    tmp_path_factory: pytest.TempPathFactory, fleet_dataset: Dataset
) -> Iterator[str]:
    """A Prometheus with the fleet but without dcgm-exporter's opt-in counters."""
    work = tmp_path_factory.mktemp("lean")
    om = work / "lean.om"
    text = fleet_dataset.openmetrics.read_text(encoding="utf-8").splitlines()
    om.write_text(
        "\n".join(line for line in text if not any(m in line for m in OPT_IN_DCGM)) + "\n",
        encoding="utf-8",
    )
    backfill(om, work / "tsdb")
    server = wait_prometheus(start_prometheus(work / "tsdb"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    """The fake Slack: the manifest's scopes, one channel with the bot and one without."""
    with FakeSlack() as fake:
        fake.scopes = sorted(manifest_scopes() or ())
        fake.channels = {
            MEMBER: {"name": "gpu-alerts", "is_member": True},
            OUTSIDE: {"name": "ops", "is_member": False},
        }
        yield fake


def _env(url: str, topology: Path, fake: FakeSlack | None = None, **extra: str) -> dict[str, str]:
    env = {
        "GPU_RISK_PROMETHEUS_URL": url,
        "GPU_RISK_TOPOLOGY": str(topology),
        "GPU_RISK_PROMETHEUS_RETRIES": "0",
        "GPU_RISK_PROMETHEUS_TIMEOUT": "5",
        "COLUMNS": "200",
    }
    if fake is not None:
        env |= {
            "SLACK_BOT_TOKEN": fake.bot_token,
            "SLACK_APP_TOKEN": fake.app_token,
            "SLACK_API_URL": fake.api_url,
            "GPU_RISK_SLACK_CHANNEL": MEMBER,
        }
    return env | extra


def _check(env: dict[str, str], *args: str) -> tuple[int, list[str], str]:
    """Run check; return the exit code, the ✗ lines and the whole output."""
    result = CliRunner().invoke(build_app(), ["check", "--at", AT, *args], env=env)
    assert "Traceback" not in result.output, result.output
    failed = [line for line in result.output.splitlines() if line.startswith("✗")]
    return result.exit_code, failed, result.output


def _topology(tmp_path: Path, dataset: Dataset, old: str = "", new: str = "") -> Path:
    path = tmp_path / "topology.yaml"
    text = dataset.topology.read_text(encoding="utf-8")
    if old:
        assert old in text
        text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.prometheus
def test_everything_wired_exits_zero(
    prometheus_server: PromqlBackend, slack: FakeSlack, tmp_path: Path
) -> None:
    env = _env(prometheus_server.url, prometheus_server.dataset.topology, slack)
    code, failed, out = _check(env, "--slack")
    assert (code, failed) == (0, []), out
    for expected in (
        "✓ Prometheus at http://127.0.0.1:",
        "✓ all 17 DCGM metrics have series at 2026-11-20T02:50:00+00:00",
        "✓ topology from file: 2 racks, 4 nodes, 4 components with metrics",
        "✓ all 4 component metrics return data",
        "✓ all 4 topology nodes match DCGM's Hostname",
        "✓ Slack token works: @gpu-risk in Example",
        "✓ the Slack token has every scope of manifest.yml",
        f"✓ the bot is in Slack channel #gpu-alerts ({MEMBER})",
    ):
        assert expected in out, out


@pytest.mark.prometheus
def test_wrong_url_is_one_line(tmp_path: Path, fleet_dataset: Dataset) -> None:
    url = f"http://user:s3cret@127.0.0.1:{free_port()}"
    code, failed, out = _check(_env(url, fleet_dataset.topology))
    assert code == 1
    assert len(failed) == 1 and "cannot reach Prometheus at http://***@127.0.0.1" in failed[0]
    assert "s3cret" not in out


@pytest.mark.prometheus
def test_missing_counters_are_one_line_with_the_csv(
    lean_prometheus: str, fleet_dataset: Dataset
) -> None:
    code, failed, _ = _check(_env(lean_prometheus, fleet_dataset.topology))
    assert code == 1
    assert len(failed) == 1, failed
    assert "opt-in counters DCGM_FI_DEV_ECC_SBE_VOL_TOTAL" in failed[0]
    assert "deploy/dcgm-exporter/counters.csv" in failed[0]


@pytest.mark.prometheus
def test_misspelled_node_gets_the_closest_name(
    prometheus_server: PromqlBackend, tmp_path: Path
) -> None:
    topo = _topology(tmp_path, prometheus_server.dataset, "gpu-node-001,", "gpu-node-0O1,")
    code, failed, out = _check(_env(prometheus_server.url, topo))
    assert code == 1
    assert failed == [
        "✗ topology node 'gpu-node-0O1' has no DCGM series (Hostname) in the 24h before "
        "2026-11-20T02:50:00+00:00: did you mean gpu-node-001?"
    ], out


@pytest.mark.prometheus
def test_bad_promql_is_one_line(prometheus_server: PromqlBackend, tmp_path: Path) -> None:
    topo = _topology(
        tmp_path,
        prometheus_server.dataset,
        """'pdu_output_watts{pdu="pdu-a1"}'""",
        """'pdu_output_watts{pdu="pdu-a1"'""",
    )
    code, failed, out = _check(_env(prometheus_server.url, topo))
    assert code == 1
    assert len(failed) == 1, out
    assert failed[0].startswith("✗ component pdu-a1 output_watts: Prometheus at ")
    assert "rejected the query" in failed[0]


@pytest.mark.prometheus
def test_promql_without_data_is_one_line(prometheus_server: PromqlBackend, tmp_path: Path) -> None:
    topo = _topology(tmp_path, prometheus_server.dataset, 'unit="crac-2"', 'unit="crac-9"')
    code, failed, _ = _check(_env(prometheus_server.url, topo))
    assert code == 1
    assert len(failed) == 1 and failed[0].startswith("✗ component crac-2 supply_temp_celsius: ")
    assert "returns no data" in failed[0]


@pytest.mark.prometheus
def test_bot_not_in_channel_is_one_line(prometheus_server: PromqlBackend, slack: FakeSlack) -> None:
    env = _env(prometheus_server.url, prometheus_server.dataset.topology, slack)
    env["GPU_RISK_SLACK_ROUTES"] = f'{{"critical": "{OUTSIDE}"}}'
    code, failed, _ = _check(env, "--slack")
    assert code == 1
    assert failed == [
        f"✗ the bot is not in Slack channel #ops ({OUTSIDE}): invite it there (/invite @gpu-risk)"
    ]


@pytest.mark.prometheus
def test_missing_scope_and_bad_token_are_one_line_each(
    prometheus_server: PromqlBackend, slack: FakeSlack
) -> None:
    env = _env(prometheus_server.url, prometheus_server.dataset.topology, slack)
    granted = slack.scopes
    slack.scopes = [s for s in granted or () if s != "files:write"]
    try:
        code, failed, _ = _check(env, "--slack")
    finally:
        slack.scopes = granted
    assert code == 1 and len(failed) == 1 and "lacks scope(s) files:write" in failed[0]
    env["SLACK_BOT_TOKEN"] = "xoxb-wrong-token"
    code, failed, out = _check(env, "--slack")
    assert code == 1 and len(failed) == 1 and "auth.test failed (invalid_auth)" in failed[0]
    assert "xoxb-wrong-token" not in out


@contextlib.contextmanager
def _alertmanager(status: int) -> Iterator[str]:
    """A stand-in Alertmanager answering every GET with ``status``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.prometheus
def test_alertmanager_is_checked_when_configured(prometheus_server: PromqlBackend) -> None:
    if "alertmanager_url" not in Settings.model_fields:
        pytest.skip("no Alertmanager settings in this tree")
    env = _env(prometheus_server.url, prometheus_server.dataset.topology)
    with _alertmanager(200) as url:
        code, failed, out = _check(env | {"GPU_RISK_ALERTMANAGER_URL": url})
    assert (code, failed) == (0, []) and "✓ Alertmanager at" in out
    with _alertmanager(503) as url:
        code, failed, _ = _check(env | {"GPU_RISK_ALERTMANAGER_URL": url})
    assert code == 1 and len(failed) == 1 and "is not ready" in failed[0]


def test_offline_contacts_nothing(tmp_path: Path, fleet_dataset: Dataset) -> None:
    env = _env(f"http://127.0.0.1:{free_port()}", fleet_dataset.topology)
    result = CliRunner().invoke(build_app(), ["check", "--offline"], env=env)
    assert result.exit_code == 0 and "✓ configuration is valid" in result.output
    assert "Prometheus at" not in result.output
