"""Soak: `gpu-risk run` for N minutes against a real Prometheus and the fake Slack, with faults.

The simulator's history (tests.fixtures.fleetdata, three failing faults) is backfilled into a
real Prometheus; the bot replays it with its clock running faster (GPU_RISK_CLOCK_*) so the
faults happen during the soak. On a schedule, the fake Slack answers 429 (long and short
Retry-After) and 5xx storms, and Prometheus is stopped and started again. At the end the bot is
stopped with SIGTERM and the report says: notifications lost and duplicated (outbox vs what the
fake Slack holds), tracebacks in the bot's log, the scan gaps during Slack storms, and the bot's
RSS at the start and the end. Not part of `make test`: `make soak` (MINUTES=10 INTERVAL=5).
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from analysis.types import format_time
from storage.repository import Repository
from tests.fakeslack import FakeSlack
from tests.fixtures import fleetdata as fd
from tests.fixtures.prometheus import (
    PROMETHEUS,
    Server,
    backfill,
    free_port,
    require_binary,
    wait_prometheus,
)

GPU_RISK = str(Path(sys.executable).parent / "gpu-risk")
CHANNEL = "C0ALERTS"
SECRET = "soak-signing-secret"


@dataclass(frozen=True)
class Fault:
    """One scheduled fault: at ``at`` seconds into the soak, for ``seconds``."""

    at: float
    seconds: float
    kind: str  # slack429-long, slack429-short, slack5xx, prometheus-down


def schedule(total: float) -> list[Fault]:
    """The fault plan, scaled to the soak's length (the last sixth stays calm to drain)."""
    u = total / 600.0
    return [
        Fault(50 * u, 60 * u, "slack429-long"),
        Fault(140 * u, 40 * u, "slack5xx"),
        Fault(220 * u, 60 * u, "prometheus-down"),
        Fault(320 * u, 60 * u, "slack429-short"),
        Fault(400 * u, 30 * u, "prometheus-down"),
        Fault(440 * u, 40 * u, "slack5xx"),
    ]


def storm_schedule(minutes: float) -> list[Fault]:
    """One continuous Slack storm of ``minutes``: 429 and 5xx minutes in turn, from 30 s in."""
    n = max(1, round(minutes))
    return [
        Fault(30.0 + 60.0 * i, 60.0, "slack429-long" if i % 2 == 0 else "slack5xx")
        for i in range(n)
    ]


def start_prometheus(data: Path, port: int) -> Server:
    """Start Prometheus over ``data`` on ``port`` and wait until it is ready."""
    binary = require_binary(PROMETHEUS)
    config = data.parent / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n", encoding="utf-8")
    log = data.parent / "prometheus.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=100y",
                f"--config.file={config}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return wait_prometheus(Server("prometheus", f"http://127.0.0.1:{port}", proc, data, log))


def rss_kib(pid: int) -> int:
    """Return a process's resident set size in KiB (0 when unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


class FaultRunner(threading.Thread):
    """Injects the faults of the plan at their times (Prometheus restarts on the same port)."""

    def __init__(self, plan: list[Fault], slack: FakeSlack, prom: list[Server], *, data: Path,
                 port: int, t0: float) -> None:  # fmt: skip
        """Remember what to break and when."""
        super().__init__(daemon=True)
        self.plan, self.slack, self.prom, self.data, self.port, self.t0 = (
            plan, slack, prom, data, port, t0
        )  # fmt: skip
        self.log: list[str] = []
        self.windows: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)

    def note(self, text: str) -> None:
        """Record and print one line of the fault log."""
        line = f"{time.monotonic() - self.t0:7.1f}s {text}"
        self.log.append(line)
        print(line, flush=True)

    def run(self) -> None:
        """Inject every fault at its time, then stop."""
        for f in self.plan:
            time.sleep(max(0.0, self.t0 + f.at - time.monotonic()))
            self.windows[f.kind].append((f.at, f.at + f.seconds))
            if f.kind == "prometheus-down":
                self.note("Prometheus stopped")
                self.prom[0].stop()
                time.sleep(f.seconds)
                self.prom[0] = start_prometheus(self.data, self.port)
                self.note("Prometheus started again")
                continue
            status, retry_after = {
                "slack429-long": (429, 30),
                "slack429-short": (429, 1),
                "slack5xx": (503, None),
            }[f.kind]
            self.note(f"Slack storm {f.kind}: every call answers {status}")
            end = time.monotonic() + f.seconds
            while time.monotonic() < end:  # keep the queue topped up: a storm, not a blip
                with self.slack.lock:
                    short = len(self.slack.failures) < 50
                if short:
                    self.slack.fail("*", status=status, times=50, retry_after=retry_after)
                time.sleep(0.5)
            with self.slack.lock:
                self.slack.failures.clear()
            self.note(f"Slack storm {f.kind} over")


def audit(repo: Repository, slack: FakeSlack) -> dict[str, Any]:
    """Lost and duplicated notifications: the outbox against what the fake Slack holds."""
    rows = repo.outbox()
    unsent = [r for r in rows if r.status != "sent"]
    with slack.lock:
        top = [m for m in slack.messages.get(CHANNEL, []) if m.get("thread_ts") in (None, m["ts"])]
        replies = [m for m in slack.messages.get(CHANNEL, []) if m.get("thread_ts") not in
                   (None, m["ts"])]  # fmt: skip
    keys = collections.Counter(
        ((m.get("metadata") or {}).get("event_payload") or {}).get("idempotency_key")
        for m in top
        if m.get("metadata")
    )
    posts = [r for r in rows if r.kind == "post" and r.status == "sent"]
    posted_twice = {k: n for k, n in keys.items() if n > 1}
    never_posted = [r.idempotency_key for r in posts if keys.get(r.idempotency_key, 0) == 0]
    source_rows = [r for r in rows if r.kind == "data_source" and r.status == "sent"]
    source_msgs = [m for m in top if "Metrics source" in str(m.get("text", ""))]
    thread_rows = [r for r in rows if r.kind in ("update", "improve", "resolve")]
    thread_msgs = [m for m in replies if not m.get("files")]
    return {
        "outbox_rows": len(rows),
        "by_kind": dict(collections.Counter(r.kind for r in rows)),
        "unsent": [(r.id, r.kind, r.status, r.last_error) for r in unsent],
        "posts_missing_in_slack": never_posted,
        "posts_duplicated_in_slack": posted_twice,
        "data_source_rows_vs_messages": [len(source_rows), len(source_msgs)],
        "thread_rows_vs_replies": [len(thread_rows), len(thread_msgs)],
        "lost": len(unsent) + len(never_posted) + max(0, len(source_rows) - len(source_msgs)),
        "duplicated": sum(n - 1 for n in posted_twice.values())
        + max(0, len(source_msgs) - len(source_rows)),
        "incidents": sorted(i.dedup_key for i in repo.incidents(limit=1000)),
        "retried_rows": sum(1 for r in rows if r.attempts > 1),
    }


def scan_gaps(repo: Repository, speed: float, t_start: datetime, windows: list[tuple[float, float]]
              ) -> dict[str, float]:  # fmt: skip
    """Largest real-time gap between recorded scans, overall and inside the given windows."""
    scans = sorted(s.at for s in repo.scans(limit=100_000))
    real = [(s - t_start).total_seconds() / speed for s in scans]
    gaps = [(a, b - a) for a, b in itertools.pairwise(real)]
    inside = [g for a, g in gaps if any(lo <= a <= hi for lo, hi in windows)]
    return {
        "scans": float(len(scans)),
        "max_gap_s": round(max((g for _, g in gaps), default=0.0), 2),
        "max_gap_during_slack_storms_s": round(max(inside, default=0.0), 2),
        "median_gap_s": round(sorted(g for _, g in gaps)[len(gaps) // 2], 2) if gaps else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the soak; print the report; exit 1 when anything was lost, duplicated or raised."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--interval", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    ap.add_argument(
        "--storm-minutes",
        type=float,
        default=0.0,
        help="instead of the mixed plan: one continuous Slack 429/5xx storm this long",
    )
    args = ap.parse_args(argv)
    if args.storm_minutes and args.storm_minutes * 60 + 90 > args.minutes * 60:
        ap.error("--minutes must leave at least a minute and a half after the storm to drain")
    total = args.minutes * 60
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(var, None)
    work = Path(tempfile.mkdtemp(prefix="gpu-risk-soak-"))
    print(f"soak: {args.minutes:g} min at a {args.interval} s interval in {work}", flush=True)
    dataset = fd.write_simulated_history(work / "sim")
    data = work / "tsdb"
    backfill(dataset.openmetrics, data)
    port = free_port()
    prom = [start_prometheus(data, port)]
    slack = FakeSlack().start()
    # Replay 1:50 -> 3:05 of the history over the soak: the three faults fail during it.
    start = fd.SIM_START + timedelta(hours=1, minutes=50)
    speed = (75 * 60) / total
    origin = datetime.now(UTC)
    db = f"sqlite:///{work / 'state.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPU_RISK_", "SLACK_"))}
    http_port = free_port()
    env.update({
        "GPU_RISK_PROMETHEUS_URL": prom[0].url,
        "GPU_RISK_TOPOLOGY": str(dataset.topology),
        "GPU_RISK_DATABASE_URL": db,
        "GPU_RISK_DETECTOR": "static",
        "GPU_RISK_SCAN_INTERVAL": str(args.interval),
        "GPU_RISK_HTTP_HOST": "127.0.0.1",
        "GPU_RISK_HTTP_PORT": str(http_port),
        "GPU_RISK_PROMETHEUS_TIMEOUT": "5",
        "GPU_RISK_PROMETHEUS_RETRIES": "0",
        "GPU_RISK_SLACK_CHANNEL": CHANNEL,
        "GPU_RISK_CLOCK_START": format_time(start),
        "GPU_RISK_CLOCK_ORIGIN": origin.isoformat(),
        "GPU_RISK_CLOCK_SPEED": f"{speed:.4f}",
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_API_URL": slack.api_url,
        "SLACK_SIGNING_SECRET": SECRET,
    })  # fmt: skip
    log = work / "bot.log"
    with log.open("wb") as out:
        bot = subprocess.Popen([GPU_RISK, "run"], stdout=out, stderr=subprocess.STDOUT, env=env)
    t0 = time.monotonic()
    base = f"http://127.0.0.1:{http_port}"
    rss_start, readyz_down, livez_down = 0, 0, 0
    plan = storm_schedule(args.storm_minutes) if args.storm_minutes else schedule(total)
    runner = FaultRunner(plan, slack, prom, data=data, port=port, t0=t0)
    runner.start()
    try:
        while time.monotonic() - t0 < total:
            if bot.poll() is not None:
                raise SystemExit(f"the bot exited early (rc {bot.returncode}); see {log}")
            try:
                livez_down += requests.get(base + "/livez", timeout=5).status_code != 200
                readyz_down += requests.get(base + "/readyz", timeout=5).status_code != 200
                if not rss_start and "scan at" in log.read_text(errors="replace"):
                    rss_start = rss_kib(bot.pid)
            except requests.RequestException:
                if time.monotonic() - t0 > 60:  # not serving after start-up
                    livez_down += 1
            time.sleep(5)
        runner.join(timeout=120)
        repo = Repository.from_url(db, migrate_schema=False)
        deadline = time.monotonic() + 180  # drain what the storms left queued
        while repo.outbox(status="pending") and time.monotonic() < deadline:
            time.sleep(1)
        rss_end = rss_kib(bot.pid)
        bot.send_signal(signal.SIGTERM)
        rc = bot.wait(timeout=60)
        storms = [w for k, ws in runner.windows.items() if k.startswith("slack") for w in ws]
        gaps = scan_gaps(repo, speed, start, storms)
        result = audit(repo, slack)
        repo.close()
    finally:
        if bot.poll() is None:
            bot.kill()
        prom[0].stop()
        slack.stop()
    text = log.read_text(errors="replace")
    report = {
        "minutes": args.minutes,
        "interval_s": args.interval,
        "clock_speed": round(speed, 3),
        "faults": runner.log,
        **result,
        **gaps,
        "tracebacks": text.count("Traceback"),
        "errors_logged": sum(" ERROR " in line for line in text.splitlines()),
        "readyz_non_200_polls": readyz_down,
        "livez_non_200_polls": livez_down,
        "exit_code": rc,
        "rss_kib_start": rss_start,
        "rss_kib_end": rss_end,
        "log": str(log),
    }
    print(json.dumps(report, indent=2, default=str))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    bad = report["lost"] or report["duplicated"] or report["tracebacks"] or rc != 0
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
