"""The composed bot in process: wiring, health and metrics over real HTTP, images in the store,
the console notifier's durable log, the digest, and the scheduler (real APScheduler threads)."""

from __future__ import annotations

import io
import itertools
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import requests

from analysis.incidents import incident_id
from analysis.types import GpuScore, Incident, RootCause
from bot.config import ConfigError, load_settings
from bot.scheduler import Jobs, build_scheduler
from bot.sinks import dispatch
from bot.sinks.console import ConsoleSink as ConsoleNotifier
from bot.sinks.console import read_log
from bot.wiring import Runtime, build_runtime, make_clock
from storage.repository import Repository
from tests.fakeslack import FakeSlack, post_signed, slash_command
from tests.fakeslack.payloads import form_body
from tests.fixtures import fleetdata as fd
from tests.fixtures.clock import Clock
from tests.fixtures.prometheus import free_port
from tests.fixtures.slack import SECRET, fake_slack  # noqa: F401 - pytest fixture

METRIC_NAMES = (
    "gpu_risk_scan_duration_seconds",
    "gpu_risk_gpus_scored",
    "gpu_risk_incidents_open",
    "gpu_risk_notifications_sent_total",
    "gpu_risk_last_successful_scan_timestamp_seconds",
)


@pytest.fixture(scope="module")
def simulator() -> Any:
    """The test fleet's simulator (HBM fails at 2:00, PCIe at 2:30, a fan at 2:45)."""
    from storage.simulator import FleetSimulator, FleetSpec

    return fd.simulate(FleetSimulator, FleetSpec)


def _runtime(tmp_path: Path, simulator: Any, clock: Clock, **extra: Any) -> Runtime:
    """A runtime on a temp SQLite file, the in-process simulator and a console log."""
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'state.db'}",
        "detector": "static",
        "open_after": 1,
        "open_for": 0,  # these tests count cycles one second apart
        "console_log": tmp_path / "console.jsonl",
        "http_host": "127.0.0.1",
        "http_port": free_port(),
        "scan_interval": 1,
    }
    settings = load_settings(**{**values, **extra})
    runtime = build_runtime(settings, source=simulator, clock=clock)
    return runtime


def test_cycle_posts_once_with_images_that_survive_a_restart(
    tmp_path: Path, simulator: Any
) -> None:
    clock = Clock(fd.SIM_START + timedelta(hours=2, minutes=10))
    runtime = _runtime(tmp_path, simulator, clock)
    try:
        assert runtime.scan() is True
        assert runtime.leading
        assert not (tmp_path / "console.jsonl").exists()  # the scan only commits
        assert runtime.dispatch() == 1  # the delivery job sends
        log = read_log(tmp_path / "console.jsonl")
        posts = [e for e in log if e["kind"] == "post"]
        assert [p["dedup_key"] for p in posts] == ["gpu:gpu-node-001/1"]  # the HBM fault
        assert posts[0]["images"] == ["graph", "metrics"]
        iid = posts[0]["incident_id"]
        clock.at += timedelta(minutes=1)
        runtime.scan()  # same incident again: nothing new to say
        runtime.dispatch()
        assert [e["kind"] for e in read_log(tmp_path / "console.jsonl")] == ["post"]
    finally:
        runtime.stop()
    # A new process (new repository on the same file) still has the PNGs.
    repo = Repository.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        images = repo.images(iid)
        assert set(images) == {"graph", "metrics"}
        assert all(png.startswith(b"\x89PNG") for png in images.values())
        assert repo.outbox(status="pending") == []
    finally:
        repo.close()


def test_restart_keeps_open_incidents_open_and_does_not_repost(
    tmp_path: Path, simulator: Any
) -> None:
    """Hysteresis is in memory: a restarted bot restores it from the store (no resolve+repost)."""
    clock = Clock(fd.SIM_START + timedelta(hours=2, minutes=10))
    settings: dict[str, Any] = {"open_after": 2}
    first = _runtime(tmp_path, simulator, clock, **settings)
    try:
        for _ in range(3):
            first.scan()
            first.dispatch()
            clock.at += timedelta(minutes=1)
    finally:
        first.stop()
    second = _runtime(tmp_path, simulator, clock, **settings)
    try:
        for _ in range(3):
            second.scan()
            second.dispatch()
            clock.at += timedelta(minutes=1)
        incidents = second.repository.incidents()
    finally:
        second.stop()
    assert [(i.dedup_key, i.status) for i in incidents] == [("gpu:gpu-node-001/1", "open")]
    kinds = [e["kind"] for e in read_log(tmp_path / "console.jsonl")]
    assert kinds == ["post"]


def test_new_leader_continues_the_last_leaders_streaks(tmp_path: Path, simulator: Any) -> None:
    """Streaks toward opening are stored with each cycle: a fault seen once by a leader that
    dies opens on the new leader's first cycle (open_after=2), with the first leader's id."""
    clock = Clock(fd.SIM_START + timedelta(hours=2, minutes=10))

    def counting_streaks(runtime: Runtime) -> Runtime:
        """The static rules gate themselves (open at first sight): make them count streaks."""
        runtime.pipeline.self_gating = False
        runtime.pipeline.resume()
        return runtime

    first = counting_streaks(_runtime(tmp_path, simulator, clock, open_after=2))
    try:
        assert first.scan() is True
        assert first.repository.incidents() == []  # one sighting: not open yet
        state = first.repository.tracker_state("alerts")
        assert state is not None and state["streak"] == {"gpu:gpu-node-001/1": 1}
    finally:
        first.stop()
    second = counting_streaks(_runtime(tmp_path, simulator, clock, open_after=2))
    try:
        clock.at += timedelta(minutes=1)
        assert second.scan() is True
        incidents = second.repository.incidents()
    finally:
        second.stop()
    assert [(i.dedup_key, i.status) for i in incidents] == [("gpu:gpu-node-001/1", "open")]
    # the id counts from the first leader's sighting, as if one process had seen both cycles
    start = fd.SIM_START + timedelta(hours=2, minutes=10)
    assert incidents[0].incident.id == incident_id("gpu:gpu-node-001/1", start)


def test_healthz_and_metrics_over_http(tmp_path: Path, simulator: Any) -> None:
    clock = Clock(fd.SIM_START + timedelta(hours=2, minutes=10))
    runtime = _runtime(tmp_path, simulator, clock)
    try:
        runtime.start()
        base = f"http://127.0.0.1:{runtime.server.port}"
        # The scheduler runs the first scan at once; wait for it to be recorded.
        deadline = time.monotonic() + 30
        while runtime.repository.status().last_ok_scan is None:
            assert time.monotonic() < deadline, "no scan within 30 s"
            time.sleep(0.1)
        live = requests.get(base + "/livez", timeout=5)
        assert live.status_code == 200 and live.json()["ok"] is True
        assert requests.get(base + "/readyz", timeout=5).json()["ok"] is True
        r = requests.get(base + "/healthz", timeout=5)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["ok"] is True and body["leader"] is True
        assert body["data_source"] == "ok"
        assert body["last_successful_scan"] == "2026-11-18T02:10:00Z"
        sent = 'gpu_risk_notifications_sent_total{kind="post"} 1.0'
        dead = 'gpu_risk_outbox_rows{status="dead"} 0.0'  # set once the delivery pass ends
        deadline = time.monotonic() + 30  # the delivery job sends it, a moment after the scan
        while not all(
            line in (text := requests.get(base + "/metrics", timeout=5).text)
            for line in (sent, dead)
        ):
            assert time.monotonic() < deadline, text
            time.sleep(0.1)
        for name in METRIC_NAMES:
            assert name in text, name
        assert "gpu_risk_gpus_scored 16.0" in text
        assert 'gpu_risk_outbox_rows{status="dead"} 0.0' in text
        assert "gpu_risk_incidents_open 1.0" in text
        # The last good scan grows old (the clock moves, Prometheus keeps failing): 503.
        clock.at += runtime.stale_after() + timedelta(minutes=1)
        r = requests.get(base + "/healthz", timeout=5)
        assert r.status_code == 503 and r.json()["ok"] is False
        assert requests.get(base + "/readyz", timeout=5).status_code == 503
        assert requests.get(base + "/livez", timeout=5).status_code == 200  # alive all the same
        assert requests.get(base + "/nope", timeout=5).status_code == 404
    finally:
        runtime.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(base + "/healthz", timeout=2)


def test_console_notifier_reconciles_a_retried_row_from_its_log(tmp_path: Path) -> None:
    """A row claimed again after a crash (attempts > 1) is not shown twice if the log has it."""
    at = datetime(2026, 11, 22, 10, tzinfo=UTC)
    repo = Repository.from_url(f"sqlite:///{tmp_path / 's.db'}")
    out = io.StringIO()
    console = ConsoleNotifier(log_path=tmp_path / "log.jsonl", stream=out)
    try:
        inc = Incident(
            "i", at, "warning", 0.9, RootCause("gpu-node-001/0", "gpu"),
            (GpuScore("gpu-node-001", "0", 0.9),),
        )  # fmt: skip
        repo.apply_cycle(at, [inc], True)
        (item,) = repo.claim_pending(10, "w1", timedelta(seconds=30), at=at)
        ref = dispatch(console, item)  # shown ... and the process "dies" before mark_sent
        assert ref is not None and "Check GPU 0 on gpu-node-001" in out.getvalue()
        later = at + timedelta(minutes=1)
        (again,) = repo.claim_pending(10, "w2", timedelta(seconds=30), at=later)
        assert again.is_retry
        assert dispatch(console, again) == ref  # found in the log: not shown again
        repo.mark_sent(again.id, at=later, message_ref=ref)
        assert [e["key"] for e in read_log(tmp_path / "log.jsonl")] == [item.idempotency_key]
        assert out.getvalue().count("Check GPU 0 on gpu-node-001") == 1
        assert repo.message_ref(item.incident_id or 0) == ref
    finally:
        repo.close()


def test_digest_lists_open_incidents_and_prunes_scores(tmp_path: Path, simulator: Any) -> None:
    clock = Clock(fd.SIM_START + timedelta(hours=2, minutes=10))
    runtime = _runtime(tmp_path, simulator, clock, score_retention_days=1)
    try:
        runtime.scan()
        iid = runtime.repository.open_incidents()[0].id
        clock.at += timedelta(days=1, minutes=5)
        runtime.repository.record_feedback(iid, "false_alarm", "U1", clock.at)
        runtime.digest()
        assert runtime.repository.top_gpus() == []  # older than one day: pruned
    finally:
        runtime.stop()
    (entry,) = [e for e in read_log(tmp_path / "console.jsonl") if e["kind"] == "text"]
    assert "*Open incidents:* 1" in entry["text"]
    assert "GPU 1 on gpu-node-001" in entry["text"]
    assert "*False alarms in the last 24 h:* 1" in entry["text"]


def test_clock_setting_replays_history_faster() -> None:
    start = datetime(2026, 11, 18, 2, tzinfo=UTC)
    origin = datetime(2026, 11, 22, 12, tzinfo=UTC)
    settings = load_settings(clock_start=start, clock_origin=origin, clock_speed=60)
    real = [origin + timedelta(seconds=10)]
    clock = make_clock(settings, real=lambda: real[0])
    assert clock() == start + timedelta(minutes=10)
    assert make_clock(load_settings(), real=lambda: origin)() == origin
    with pytest.raises(ConfigError, match="time zone"):
        load_settings(clock_start="2026-11-18T02:00:00")


# ------------------------------------------------------------------ scheduler (real threads)


def test_scans_never_overlap() -> None:
    running, peak, calls = [0], [0], [0]
    lock = threading.Lock()

    def scan() -> bool:
        with lock:
            running[0] += 1
            calls[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(1.2)  # longer than the interval
        with lock:
            running[0] -= 1
        return True

    noop = lambda: None  # noqa: E731
    scheduler = build_scheduler(
        Jobs(scan=scan, dispatch=noop, refit=noop, digest=noop),
        scan_interval=0.3,
        refit_hour_utc=3,
        digest_hour_utc=9,
    )
    scheduler.start()
    try:
        time.sleep(4)
    finally:
        scheduler.shutdown(wait=True)
    assert calls[0] >= 2
    assert peak[0] == 1


def test_failing_scans_back_off_then_recover() -> None:
    starts: list[float] = []
    outcomes = iter([False, False, False, True, True, True, True, True, True, True])

    def scan() -> bool:
        starts.append(time.monotonic())
        return next(outcomes, True)

    noop = lambda: None  # noqa: E731
    scheduler = build_scheduler(
        Jobs(scan=scan, dispatch=noop, refit=noop, digest=noop),
        scan_interval=0.4,
        refit_hour_utc=3,
        digest_hour_utc=9,
    )
    scheduler.start()
    try:
        deadline = time.monotonic() + 15
        while len(starts) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        scheduler.shutdown(wait=True)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # after 1, 2, 3 failures: 0.8 s, 1.6 s, 3.2 s; after the success: back to 0.4 s
    assert gaps[0] == pytest.approx(0.8, abs=0.25)
    assert gaps[1] == pytest.approx(1.6, abs=0.25)
    assert gaps[2] == pytest.approx(3.2, abs=0.3)
    assert gaps[3] == pytest.approx(0.4, abs=0.25)
    assert json.dumps(gaps)  # keep the figures printable on failure


def test_a_slow_delivery_job_never_delays_scans() -> None:
    """Delivery runs in its own job and thread: a sink stuck for seconds leaves scans on time."""
    starts: list[float] = []
    delivering = threading.Event()

    def scan() -> bool:
        starts.append(time.monotonic())
        return True

    def dispatch() -> None:
        delivering.set()
        time.sleep(3)  # Slack answering 429s and timeouts

    noop = lambda: None  # noqa: E731
    scheduler = build_scheduler(
        Jobs(scan=scan, dispatch=dispatch, refit=noop, digest=noop),
        scan_interval=0.3,
        refit_hour_utc=3,
        digest_hour_utc=9,
        dispatch_interval=0.3,
    )
    scheduler.start()
    try:
        assert delivering.wait(5)
        time.sleep(3)
    finally:
        scheduler.shutdown(wait=True)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(starts) >= 8, gaps
    assert max(gaps) < 0.6, gaps


def test_a_probe_ends_the_backoff_within_one_interval() -> None:
    """While full scans back off (0.4 s doubling), a probe runs each interval: once the source
    is back the next scan follows within one interval, not at the end of the backoff."""
    starts: list[float] = []
    back = [0.0]
    outcomes = iter([False] * 5)

    def scan() -> bool:
        starts.append(time.monotonic())
        return next(outcomes, True)

    def probe() -> bool:
        return bool(back[0])

    noop = lambda: None  # noqa: E731
    scheduler = build_scheduler(
        Jobs(scan=scan, dispatch=noop, refit=noop, digest=noop, probe=probe),
        scan_interval=0.4,
        refit_hour_utc=3,
        digest_hour_utc=9,
    )
    scheduler.start()
    try:
        deadline = time.monotonic() + 20
        while len(starts) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(starts) == 5  # five failures: the next full scan is 12.8 s away
        time.sleep(0.5)
        back[0] = time.monotonic()  # the source answers again
        while len(starts) < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        scheduler.shutdown(wait=True)
    assert len(starts) >= 6
    assert starts[5] - back[0] <= 0.4 + 0.25, starts[5] - back[0]


# ------------------------------------------------------------------ Slack modes (fake Slack)


@pytest.mark.parametrize("mode", ["http", "socket"])
def test_slack_mode_posts_with_images_and_serves_commands(
    mode: str,
    tmp_path: Path,
    simulator: Any,
    fake_slack: FakeSlack,  # noqa: F811
) -> None:
    """With SLACK_BOT_TOKEN the same runtime posts to Slack (images from the store), answers
    /gpu-risk on /slack/events (HTTP mode) or over Socket Mode, and posts the digest."""
    clock = Clock(fd.SIM_START + timedelta(hours=2, minutes=10))
    slack: dict[str, Any] = {
        "slack_bot_token": fake_slack.bot_token,
        "slack_api_url": fake_slack.api_url,
        "slack_channel": "C0ALERTS",
    }
    if mode == "http":
        slack["slack_signing_secret"] = SECRET
    else:
        slack["slack_app_token"] = fake_slack.app_token
    runtime = _runtime(tmp_path, simulator, clock, **slack)
    try:
        runtime.start()
        assert runtime.slack is not None
        fake_slack.wait_for(lambda: fake_slack.channel_messages("C0ALERTS"), timeout=30)
        (alert,) = fake_slack.channel_messages("C0ALERTS")
        assert "Check GPU 1 on gpu-node-001" in json.dumps(alert["blocks"])
        fake_slack.wait_for(
            lambda: len(fake_slack.calls_to("files.completeUploadExternal")) == 1, timeout=30
        )
        deadline = time.monotonic() + 30  # mark_sent commits just after Slack answered
        while (ref := runtime.repository.open_incidents()[0].message_ref) is None:
            assert time.monotonic() < deadline, "the post was never confirmed in the store"
            time.sleep(0.05) and ref.channel == "C0ALERTS" and ref.ts == alert["ts"]
        if mode == "http":
            url = fake_slack.response_url()
            body = form_body(
                slash_command("status", user="U0ADMIN", channel="C0ALERTS", response_url=url)
            )
            base = f"http://127.0.0.1:{runtime.server.port}"
            status, _, _ = post_signed(base + "/slack/events", body, SECRET)
            assert status == 200
            forged, _, _ = post_signed(base + "/slack/events", body, "not-the-secret")
            assert forged == 401
        else:
            fake_slack.wait_connected(timeout=30)
            url = fake_slack.response_url()
            envelope = fake_slack.push(
                "slash_commands",
                slash_command("status", user="U0ADMIN", channel="C0ALERTS", response_url=url),
            )
            fake_slack.wait_ack(envelope, timeout=30)
        path = urlparse(url).path
        answer = fake_slack.wait_for(
            lambda: next((r for r in fake_slack.responses if r["url"] == path), None), 30
        )
        assert "Last scan" in json.dumps(answer) or "last scan" in json.dumps(answer).lower()
        runtime.digest()
        assert any(
            "daily digest" in str(m.get("text", ""))
            for m in fake_slack.channel_messages("C0ALERTS")
        )
    finally:
        runtime.stop()


def test_slack_storm_keeps_scans_going_and_ready_then_delivers(
    tmp_path: Path,
    simulator: Any,
    fake_slack: FakeSlack,  # noqa: F811
) -> None:
    """Slack answers every post with 429 Retry-After 30: scans go on (the client never sleeps
    30 s), /readyz stays 200, the alert waits in the outbox with a retry time, and goes out once
    Slack is back."""
    clock = Clock(fd.SIM_START + timedelta(hours=2, minutes=10))
    slack: dict[str, Any] = {
        "slack_bot_token": fake_slack.bot_token,
        "slack_api_url": fake_slack.api_url,
        "slack_channel": "C0ALERTS",
        "slack_signing_secret": SECRET,
    }
    runtime = _runtime(tmp_path, simulator, clock, **slack)
    fake_slack.fail("chat.postMessage", status=429, times=10_000, retry_after=30)
    try:
        runtime.start()
        base = f"http://127.0.0.1:{runtime.server.port}"
        deadline = time.monotonic() + 30
        while not fake_slack.calls_to("chat.postMessage", ok=False):
            assert time.monotonic() < deadline, "no delivery attempt"
            time.sleep(0.1)
        # Scans go on while Slack says "retry after 30 s": three more well within those 30 s (a
        # count, not a rate: on a busy machine a 1-s scan interval stretches, a stall does not)
        before = len(runtime.repository.scans(limit=500))
        deadline = time.monotonic() + 20
        while len(runtime.repository.scans(limit=500)) < before + 3:
            assert time.monotonic() < deadline, "scans stalled while Slack was rate-limiting"
            time.sleep(0.1)
        assert requests.get(base + "/readyz", timeout=5).status_code == 200
        (row,) = runtime.repository.outbox(status="pending")
        assert "ratelimited" in (row.last_error or "") and row.retry_at is not None
        assert row.retry_at >= clock.at + timedelta(seconds=30)  # Slack's Retry-After, honoured
        with fake_slack.lock:
            fake_slack.failures.clear()  # Slack is back
        clock.at += timedelta(minutes=1)
        fake_slack.wait_for(lambda: fake_slack.channel_messages("C0ALERTS"), timeout=30)
        deadline = time.monotonic() + 30
        while runtime.repository.outbox(status="pending"):
            assert time.monotonic() < deadline, "the alert was never confirmed"
            time.sleep(0.1)
    finally:
        runtime.stop()
    assert len(fake_slack.channel_messages("C0ALERTS")) == 1


# ------------------------------------------------------------------ the command line


def _run_cli(*args: str, env: dict[str, str] | None = None) -> Any:
    """`gpu-risk run ARGS` in process, stderr apart."""
    from typer.testing import CliRunner

    from bot.cli import build_app

    return CliRunner().invoke(build_app(), ["run", *args], env=env, catch_exceptions=False)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((), "GPU_RISK_PROMETHEUS_URL is not set"),
        (("--prometheus-url", "localhost:9090"), "must start with http://"),
        (("--prometheus-url", "http://127.0.0.1:9", "--database-url", "mysql://u@h/db"),
         "unsupported database 'mysql'"),
        (("--prometheus-url", "http://127.0.0.1:9", "--database-url",
          "postgresql://nobody@127.0.0.1:9/none"), "cannot open the database"),
        (("--prometheus-url", "http://127.0.0.1:9", "--topology", "/nonexistent.yaml"),
         "does not exist"),
    ],
)  # fmt: skip
def test_run_config_problems_exit_2_without_traceback(
    args: tuple[str, ...], needle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in __import__("os").environ if k.startswith(("GPU_RISK_", "SLACK_"))]:
        monkeypatch.delenv(key)
    result = _run_cli(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert needle in result.stderr


def test_run_once_against_a_dead_source_records_the_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--once: one scan and one delivery round; an unreachable Prometheus exits 1 after the
    degraded notification was delivered."""
    db = f"sqlite:///{tmp_path / 'once.db'}"
    env = {
        "GPU_RISK_DETECTOR": "static",
        "GPU_RISK_CONSOLE_LOG": str(tmp_path / "once.jsonl"),
        "GPU_RISK_PROMETHEUS_RETRIES": "0",
        "GPU_RISK_PROMETHEUS_TIMEOUT": "2",
    }
    result = _run_cli("--once", "--prometheus-url", f"http://127.0.0.1:{free_port()}",
                      "--database-url", db, env=env)  # fmt: skip
    assert result.exit_code == 1, result.output
    assert [e["state"] for e in read_log(tmp_path / "once.jsonl")] == ["degraded"]
    repo = Repository.from_url(db)
    try:
        (scan,) = repo.scans()
        assert not scan.ok and scan.error
        assert repo.status().data_source == "degraded"
    finally:
        repo.close()


def test_graph_model_is_fitted_once_recorded_and_reloaded_after_a_restart(
    tmp_path: Path, simulator: Any
) -> None:
    """The default detector: fitted on the past at the first scan, saved with ModelStore,
    indexed in the store, and loaded (not refitted) by the next process."""
    clock = Clock(fd.SIM_START + timedelta(hours=2, minutes=10))
    graph: dict[str, Any] = {
        "detector": "graph",
        "fit_window_hours": 2,  # the fit ends one window (30 min) before the scan
    }  # no model_dir: the models live with the state, next to the SQLite file
    first = _runtime(tmp_path, simulator, clock, **graph)
    try:
        assert first.scan() is True
        model = first.repository.latest_model()
        assert model is not None and model.fitted_at == clock.at
        assert Path(model.path).is_file() and model.features
        assert Path(model.path).parent == tmp_path / "models"  # next to state.db
    finally:
        first.stop()
    clock.at += timedelta(minutes=1)
    second = _runtime(tmp_path, simulator, clock, **graph)
    try:
        assert second.scan() is True
        again = second.repository.latest_model()
        assert again == model  # loaded from disk, not refitted
        assert second.repository.status().last_ok_scan is not None
        # the explainer is fitted lazily for the loaded model: incidents come explained
        records = second.repository.open_incidents()
        assert records and all(r.incident.explanation for r in records)
        hbm = [r for r in records if "gpu-node-001" in r.incident.root_cause.id]
        assert hbm, [r.dedup_key for r in records]
    finally:
        second.stop()


def test_run_with_its_port_taken_is_a_one_line_error(tmp_path: Path) -> None:
    import signal
    import socket

    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"GPU_RISK_HTTP_HOST": "127.0.0.1", "GPU_RISK_DETECTOR": "static"}
        result = _run_cli("--prometheus-url", "http://127.0.0.1:9", "--http-port", str(port),
                          "--database-url", f"sqlite:///{tmp_path / 'p.db'}", env=env)  # fmt: skip
    for sig, handler in handlers.items():  # run installed its own: give pytest its own back
        signal.signal(sig, handler)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot serve HTTP on 127.0.0.1:{port}" in lines[0]
