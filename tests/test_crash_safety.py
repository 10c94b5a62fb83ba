"""`gpu-risk run` as real processes: kill -9 at random points, two replicas, a failing source.

Every process replays the simulator's history from a real Prometheus (promtool backfill) with the
bot's clock started at a past instant and running faster (GPU_RISK_CLOCK_*). Notifications go to
the console notifier's JSON-lines log (fsynced, outside the database): that log is the channel
the tests audit. State lives in a throwaway PostgreSQL 15 (replicas) or a SQLite file.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from analysis.types import format_time, parse_time
from bot.sinks.console import read_log
from storage.repository import Repository
from tests.fixtures import fleetdata as fd
from tests.fixtures.postgres import (  # noqa: F401 - pytest fixtures
    PostgresServer,
    create_database,
    postgres_server,
)
from tests.fixtures.prometheus import (
    PROMETHEUS,
    Dataset,
    PromqlBackend,
    Server,
    backfill,
    free_port,
    require_binary,
    serve_prometheus,
    wait_prometheus,
)

pytest_plugins = ("tests.fixtures.prometheus",)

GPU_RISK = str(Path(sys.executable).parent / "gpu-risk")
SEED = 20261122


@pytest.fixture(scope="module")
def prom(sim_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromqlBackend]:
    """The simulator's history in a real Prometheus for this module."""
    with serve_prometheus(sim_dataset, tmp_path_factory.mktemp("crash-prom")) as backend:
        yield backend


@dataclass
class Bot:
    """One `gpu-risk run` process and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    port: int

    def text(self) -> str:
        """The process's output so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, needle: str, timeout: float = 60.0) -> None:
        """Wait until ``needle`` shows in the output; fail with the tail if it never does."""
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{self.name}: no {needle!r} (rc {self.process.poll()}):\n"
                            + self.text()[-3000:])  # fmt: skip
            time.sleep(0.05)

    def leads(self) -> bool:
        """Whether this process took the leadership."""
        return "leads: scans run here" in self.text()

    def kill9(self) -> None:
        """SIGKILL: no clean-up at all."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self) -> int:
        """SIGTERM and wait for the graceful exit; return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise


@dataclass
class Fleet:
    """Starts `gpu-risk run` processes sharing settings, a clock and a console log."""

    tmp: Path
    env: dict[str, str]
    bots: list[Bot] = field(default_factory=list)

    @property
    def console_log(self) -> Path:
        """Where every process appends its notifications."""
        return Path(self.env["GPU_RISK_CONSOLE_LOG"])

    def start(self) -> Bot:
        """Start one more process."""
        n = len(self.bots)
        port = free_port()
        log = self.tmp / f"bot-{n}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [GPU_RISK, "run", "--http-port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**self.env, "GPU_RISK_HTTP_PORT": str(port)},
            )
        bot = Bot(f"bot-{n}", proc, log, port)
        self.bots.append(bot)
        return bot

    def alive(self) -> list[Bot]:
        """Processes still running."""
        return [b for b in self.bots if b.process.poll() is None]

    def stop_all(self) -> None:
        """Kill whatever is left (test failure paths)."""
        for b in self.alive():
            b.process.kill()
            b.process.wait(timeout=10)


def make_fleet(
    tmp: Path, prom: PromqlBackend, database_url: str, *, start: datetime, speed: float
) -> Fleet:
    """Settings every process of a test shares (environment only, like a deployment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPU_RISK_", "SLACK_"))}
    env.update(
        {
            "GPU_RISK_PROMETHEUS_URL": prom.url,
            "GPU_RISK_TOPOLOGY": str(prom.dataset.topology),
            "GPU_RISK_DATABASE_URL": database_url,
            "GPU_RISK_DETECTOR": "static",
            "GPU_RISK_OPEN_AFTER": "1",
            "GPU_RISK_SCAN_INTERVAL": "1",
            "GPU_RISK_HTTP_HOST": "127.0.0.1",
            "GPU_RISK_PROMETHEUS_TIMEOUT": "3",
            "GPU_RISK_PROMETHEUS_RETRIES": "0",
            "GPU_RISK_MODEL_DIR": str(tmp / "models"),
            "GPU_RISK_CONSOLE_LOG": str(tmp / "console.jsonl"),
            "GPU_RISK_OUTBOX_LEASE_SECONDS": "3",
            "GPU_RISK_CLOCK_START": format_time(start),
            "GPU_RISK_CLOCK_ORIGIN": datetime.now(UTC).isoformat(),
            "GPU_RISK_CLOCK_SPEED": str(speed),
        }
    )
    return Fleet(tmp, env)


def sim_now(fleet: Fleet) -> datetime:
    """The bots' clock right now."""
    start = parse_time(fleet.env["GPU_RISK_CLOCK_START"])
    origin = datetime.fromisoformat(fleet.env["GPU_RISK_CLOCK_ORIGIN"])
    return start + (datetime.now(UTC) - origin) * float(fleet.env["GPU_RISK_CLOCK_SPEED"])


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def audit(repo: Repository, log_path: Path) -> dict[str, Any]:
    """Check the log against the store: every notification exactly once, nothing pending."""
    log = [e for e in read_log(log_path) if e.get("key")]
    counts = collections.Counter(e["key"] for e in log)
    twice = {k: n for k, n in counts.items() if n > 1}
    assert not twice, f"notified more than once: {twice}"
    rows = repo.outbox()
    assert [r for r in rows if r.status != "sent"] == [], "outbox rows left unsent"
    assert {r.idempotency_key for r in rows} == set(counts), "log and outbox differ"
    incidents = repo.incidents(limit=1000)
    posts = {e["incident_id"] for e in log if e["kind"] == "post"}
    assert posts == {i.id for i in incidents}, "an incident was never posted"
    per_key = collections.Counter(i.dedup_key for i in incidents)
    assert all(n == 1 for n in per_key.values()), f"an incident was opened twice: {per_key}"
    return {
        "notifications": len(log),
        "incidents": sorted(per_key),
        "retried_rows": sum(1 for r in rows if r.attempts > 1),
        "log": log,
    }


def failed_faults(dataset: Dataset, before: datetime) -> set[str]:
    """Targets of the faults that failed (with a margin) before ``before``."""
    import json

    faults = json.loads(dataset.faults.read_text(encoding="utf-8"))
    return {
        f["target"]
        for f in faults
        if f["failure"] and parse_time(f["failure"]) <= before - timedelta(minutes=3)
    }


# ------------------------------------------------------------------ kill -9


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.prometheus
def test_replicas_killed_at_random_points_notify_every_incident_exactly_once(
    prom: PromqlBackend,
    postgres_server: PostgresServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Three replicas on one PostgreSQL. The leader is SIGKILLed at a random moment of its
    cycle (now and then a standby too), again and again, and a fresh replica replaces it.
    Afterwards every incident was notified exactly once and nothing is left unsent; the last
    two replicas agree on one leader and stop gracefully."""
    rng = random.Random(SEED)
    kills, replicas = 15, 3
    url = create_database(postgres_server)
    # 15 simulated seconds per real second from 1:50: the 75 simulated minutes to 3:05 are
    # 300 s of real time, room for 15 kills (a take-over, a cycle and a fresh replica's start-up
    # each) on a loaded machine; at 70x from 1:56 a slow start-up alone used up the history.
    fleet = make_fleet(
        tmp_path, prom, url, start=fd.SIM_START + timedelta(hours=1, minutes=50), speed=15
    )
    # Two cycles to open: a restarted leader must take the open incidents from the store, not
    # resolve them in its first cycle and post them again in its second.
    fleet.env["GPU_RISK_OPEN_AFTER"] = "2"
    killed: list[str] = []
    in_flight = 0  # kills that hit a committed, not yet confirmed notification
    stop_at = fd.SIM_START + timedelta(hours=3, minutes=5)  # the history ends at 3:10
    watcher: Repository | None = None
    try:
        for _ in range(replicas):
            fleet.start()
        while len(killed) < kills and sim_now(fleet) < stop_at:
            leader = wait_until(
                lambda: next((b for b in fleet.alive() if b.leads()), None), 120, "a leader"
            )
            leader.wait_for("scan at", timeout=120)  # it is cycling: kill it somewhere in there
            watcher = watcher or Repository.from_url(url, migrate_schema=False)
            # A random moment, cut short when a notification is committed but not yet confirmed
            # (the crash window the outbox exists for).
            deadline = time.monotonic() + rng.uniform(0.0, 1.5)
            pending = False
            while time.monotonic() < deadline and not pending:
                pending = bool(watcher.outbox(status="pending"))
                time.sleep(0.02)
            leader.kill9()
            in_flight += pending
            killed.append(f"{leader.name}@{format_time(sim_now(fleet))}{' (in flight)' * pending}")
            if rng.random() < 0.25 and len(fleet.alive()) > 1:  # now and then a standby too
                time.sleep(rng.uniform(0.0, 0.5))
                standby = fleet.alive()[0]
                standby.kill9()
                killed.append(f"{standby.name}@{format_time(sim_now(fleet))} (standby)")
            while len(fleet.alive()) < replicas:
                fleet.start()
        # The survivors: wait until they serve, scan past the fan failure (2:45) and drain.
        survivors = fleet.alive()
        for bot in survivors:
            bot.wait_for("HTTP on", timeout=180)
        ready = max(sim_now(fleet), fd.SIM_START + timedelta(hours=2, minutes=50))
        # However fast the kills went, the bots' clock still has to reach ``ready``: wait that
        # long in real time, plus room for a slow, loaded machine.
        to_go = (
            (ready - sim_now(fleet))
            / timedelta(seconds=1)
            / float(fleet.env["GPU_RISK_CLOCK_SPEED"])
        )
        repo = Repository.from_url(url, migrate_schema=False)
        try:
            wait_until(
                lambda: (
                    (st := repo.status()).last_ok_scan is not None
                    and st.last_ok_scan.at >= ready
                    and st.pending_notifications == 0
                ),
                max(to_go, 0.0) + 180,
                "a good scan by the survivors and an empty outbox",
            )
            health = [
                requests.get(f"http://127.0.0.1:{b.port}/healthz", timeout=5).json()
                for b in survivors
            ]
            assert [h["leader"] for h in health].count(True) == 1, health
            codes = [b.terminate() for b in survivors]
            assert codes == [0] * len(survivors), codes
            result = audit(repo, fleet.console_log)
            last_ok = repo.status().last_ok_scan
            assert last_ok is not None
            roots = {rec.incident.root_cause.id for rec in repo.incidents(limit=1000)}
        finally:
            repo.close()
    finally:
        fleet.stop_all()
        if watcher is not None:
            watcher.close()
    assert len(killed) >= 15, killed
    expected = failed_faults(prom.dataset, last_ok.at)
    assert {"gpu-node-001/1", "gpu-node-003/2", "gpu-node-002"} <= expected
    assert expected <= roots, f"faults without an incident: {expected - roots}"
    assert all("stopped" in b.text() for b in survivors)
    print(  # the figures for the report
        f"\nkill -9: {len(killed)} kills over {len(fleet.bots)} processes; "
        f"{result['notifications']} notifications, each exactly once; incidents "
        f"{result['incidents']}; kills with a notification in flight: {in_flight}; rows "
        f"re-claimed after a crash: {result['retried_rows']}; "
        f"kills: {killed}"
    )


# ------------------------------------------------------------------ failing source


def _restart_prometheus(data_dir: Path, port: int) -> Server:
    """Start Prometheus again on the same TSDB and port."""
    binary = require_binary(PROMETHEUS)
    config = data_dir.parent / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n", encoding="utf-8")
    log = data_dir.parent / "prometheus.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--storage.tsdb.path={data_dir}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=100y",
                f"--config.file={config}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return wait_prometheus(Server("prometheus", f"http://127.0.0.1:{port}", proc, data_dir, log))


@pytest.mark.slow
@pytest.mark.prometheus
def test_prometheus_down_degrades_once_keeps_incidents_and_recovers_once(
    sim_dataset: Dataset, tmp_path: Path
) -> None:
    data = tmp_path / "tsdb"
    backfill(sim_dataset.openmetrics, data)
    port = free_port()
    server = _restart_prometheus(data, port)
    backend = PromqlBackend("prometheus", server.url, sim_dataset)
    db = f"sqlite:///{tmp_path / 'state.db'}"
    fleet = make_fleet(
        tmp_path, backend, db, start=fd.SIM_START + timedelta(hours=2, minutes=2), speed=30
    )
    log = fleet.console_log
    try:
        bot = fleet.start()
        wait_until(lambda: log.exists() and read_log(log), 90, "the HBM alert")
        base = f"http://127.0.0.1:{bot.port}"
        assert requests.get(base + "/healthz", timeout=5).json()["data_source"] == "ok"
        server.stop()  # Prometheus goes away mid-run
        wait_until(lambda: any(e.get("state") == "degraded" for e in read_log(log)), 30, "degraded")
        time.sleep(6)  # several failing cycles (backing off) while it stays down
        server = _restart_prometheus(data, port)
        wait_until(lambda: any(e.get("state") == "ok" for e in read_log(log)), 60, "recovery")
        time.sleep(2)
        metrics = requests.get(base + "/metrics", timeout=5).text
        assert bot.terminate() == 0
    finally:
        fleet.stop_all()
        server.stop()
    entries = read_log(log)
    sources = [e["state"] for e in entries if e["kind"] == "data_source"]
    assert sources == ["degraded", "ok"], entries
    hbm = [e for e in entries if e.get("dedup_key") == "gpu:gpu-node-001/1"]
    assert [e["kind"] for e in hbm] == ["post"]  # never resolved by the outage, never re-posted
    repo = Repository.from_url(db, migrate_schema=False)
    try:
        scans = repo.scans(limit=500)
        failed = [s for s in scans if not s.ok]
        assert len(failed) >= 2, "the outage should span several failed scans"
        rec = repo.open_by_key("gpu:gpu-node-001/1")
        assert rec is not None and rec.status == "open"
        assert repo.status().data_source == "ok"
    finally:
        repo.close()
    assert 'gpu_risk_scans_total{outcome="source_error"}' in metrics
    assert "gpu_risk_data_source_up 1.0" in metrics
