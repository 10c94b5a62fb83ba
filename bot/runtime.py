"""A composed bot: the scheduler's jobs (scan, deliver, refit, digest), health, start and stop.

``bot/wiring.build_runtime`` composes it from Settings; nothing here builds its dependencies.

Jobs (``bot/scheduler.py`` runs them, each in its own thread):
- scan: if this replica leads, one pipeline cycle at the bot's clock; it only commits (incidents
  and their outbox rows), it never talks to Slack, so a Slack outage never slows a scan. A bot
  watching several clusters has one pipeline and one scan job per cluster (``pipelines``), each
  with its own backoff and probe: one cluster's failing source never holds up another's scans;
- probe: while scans back off after source failures, a cheap query each interval;
- dispatch: deliver the outbox (every replica; claims keep two from sending one row), with
  bounded attempts and backoff (``bot.delivery.Retry``), then dead letters;
- refit: the leader refits the model on the history before now (daily), in its own thread: the
  scans keep scoring with the current model until the new one is swapped in whole;
- digest: the leader posts the daily summary and prunes score history past its retention.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from analysis.feature_plan import grid_time
from analysis.fit_window import NotEnoughHistoryError
from analysis.types import format_time
from bot.config import Settings
from bot.cycle_record import CycleOutcome
from bot.delivery import Retry, deliver
from bot.pipeline import Pipeline
from bot.scheduler import Jobs, build_scheduler
from bot.sinks import Sink, resend_open_alerts
from bot.telemetry import BotMetrics
from storage.leader import AdvisoryLock, LeaseLock
from storage.repository import OutboxItem, Repository
from storage.source import MetricsSourceError

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def real_clock() -> datetime:
    """Return the wall-clock time, aware UTC."""
    return datetime.now(UTC)


def make_clock(settings: Settings, real: Clock = real_clock) -> Clock:
    """Return the bot's clock: real time, or (testing/demo aid) ``clock_start`` at
    ``clock_origin`` running ``clock_speed`` times faster than real time.

    The origin is a fixed real instant (default: now), so a restarted process carries on where
    the clock is, not where it started.
    """
    if settings.clock_start is None:
        return real
    start, speed = settings.clock_start.astimezone(UTC), settings.clock_speed
    origin = (settings.clock_origin or real()).astimezone(UTC)

    def clock() -> datetime:
        """Return the accelerated time."""
        return start + (real() - origin) * speed

    return clock


@dataclass
class Runtime:
    """A composed bot: call ``start()`` to serve and schedule, ``stop()`` to shut down."""

    settings: Settings
    repository: Repository
    lock: AdvisoryLock | LeaseLock
    pipeline: Pipeline
    """The first (or only) cluster's pipeline."""
    metrics: BotMetrics
    sink: Sink
    clock: Clock
    worker_id: str
    slack: Any = None  # bot.slack.app.SlackBot when Slack is configured
    scheduler: BackgroundScheduler | None = None
    server: Any = None  # bot.slack.server.HttpServer once started
    socket_handler: Any = None
    leading: bool = False
    started: float = field(default_factory=time.monotonic)
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    """Each cluster's pipeline by name, when the bot watches several (a clusters file)."""

    def each(self) -> dict[str, Pipeline]:
        """Every cluster's pipeline by name (the one ``pipeline`` without a clusters file)."""
        return self.pipelines or {self.pipeline.cluster: self.pipeline}

    # ------------------------------------------------------------------ jobs

    def is_leader(self) -> bool:
        """Take or keep the leadership (real time: leases are about liveness)."""
        try:
            got = self.lock.try_acquire(real_clock())
        except Exception:
            logger.exception("leader lock check failed: not leading this cycle")
            got = False
        if got and not self.leading:
            logger.info("%s leads: scans run here", self.worker_id)
            for pipeline in self.each().values():  # another leader may have changed them
                pipeline.resume()
        elif self.leading and not got:
            logger.warning("%s lost the leadership", self.worker_id)
        self.leading = got
        return got

    def scan(self, cluster: str | None = None) -> bool:
        """Leader: run one cycle of ``cluster`` (default: of each, one after the other) and
        commit what it decided (the dispatch job sends it).

        Return False when a source failed. One cluster's failing cycle (even an exception) is
        that cluster's: the others still scan.
        """
        if not self.is_leader():
            return True
        if cluster is not None:
            return self.run_cycle(self.each()[cluster]).ok
        if not self.pipelines:
            return self.run_cycle().ok
        ok = True
        for name, pipeline in self.pipelines.items():
            try:
                ok = self.run_cycle(pipeline).ok and ok
            except Exception:
                logger.exception("scan cycle of cluster %s failed", name)
                ok = False
        return ok

    def probe(self, cluster: str | None = None) -> bool:
        """Return True when the data source answers a tiny query (or cannot be probed).

        Runs every scan interval while full scans back off, so recovery shows within one
        interval. A source without ``query_range`` (the simulator) counts as answering.
        """
        pipeline = self.pipeline if cluster is None else self.each()[cluster]
        query = getattr(pipeline.source, "query_range", None)
        if query is None:
            return True
        at, step = self.clock(), pipeline.step
        try:
            query("vector(1)", at - step, at, step, what="probe")
        except Exception as exc:
            logger.info("data source still down: %s", exc)
            return False
        return True

    def run_cycle(self, pipeline: Pipeline | None = None) -> CycleOutcome:
        """Run one cycle (of ``pipeline``, default the first) at the bot's clock and log a
        one-line summary."""
        pipeline = pipeline if pipeline is not None else self.pipeline
        outcome = pipeline.run_cycle(self.cycle_time(pipeline))
        logger.info(
            "scan%s at %s: %s, %d GPUs, %d incidents, %d notifications queued (%.2f s)",
            f" of cluster {pipeline.cluster}" if self.pipelines else "",
            format_time(outcome.at),
            "ok" if outcome.ok else f"FAILED ({outcome.error})",
            outcome.gpus_scored,
            len(outcome.incidents),
            outcome.notifications,
            outcome.duration_s,
        )
        return outcome

    def cycle_time(self, pipeline: Pipeline) -> datetime:
        """The bot's clock on ``pipeline``'s step grid (at or before it), where the cycle's
        reductions are evaluated anyway: the cycles' windows share one grid, so each reads only
        its new minutes raw (``storage.rolling``). The clock itself when that grid point was
        scanned already (a tick a little early, or scans more often than the step)."""
        now = self.clock()
        at = grid_time(now, pipeline.step)
        last = pipeline.last_end
        return now if last is not None and at <= last else at

    def dispatch(self) -> int:
        """Deliver every due outbox row once; return how many were sent.

        Alertmanager sinks re-send the open incidents first (at most once per their interval), so
        an alert never expires while the bot runs.
        """
        speed = self.speed()
        resend_open_alerts(self.sink, self.clock())
        sent = deliver(
            self.repository,
            self.sink,
            at=self.clock(),
            worker_id=self.worker_id,
            lease=timedelta(seconds=self.settings.outbox_lease_seconds) * speed,
            retry=Retry(
                first=timedelta(seconds=30) * speed,
                cap=timedelta(minutes=15) * speed,
                max_attempts=self.settings.outbox_max_attempts,
                probe=timedelta(seconds=10) * speed,
            ),
            on_sent=self._sent,
            on_failed=lambda _item: self.metrics.notifications_failed.inc(),
            on_dead=lambda _item: self.metrics.notifications_dead.inc(),
            speed=speed,
        )
        for status, n in self.repository.outbox_counts().items():
            self.metrics.outbox_rows.labels(status).set(n)
        return sent

    def speed(self) -> float:
        """Bot-clock seconds per real second (1 unless the testing clock runs faster)."""
        return self.settings.clock_speed if self.settings.clock_start else 1.0

    def _sent(self, item: OutboxItem) -> None:
        """Count a delivered notification."""
        self.metrics.notifications_sent.labels(item.kind).inc()

    def refit(self) -> None:
        """Leader: refit each cluster's model on the history before now; on failure the current
        one stays (and the other clusters still refit).

        Runs in its own job thread beside the scans: each cluster's current model keeps
        scanning until the new one is fitted and saved, then it is swapped in whole
        (``Pipeline.refit``). It is fitted for the fleet the last scan saw, so the next scan
        takes it as is. A cluster without a model yet is left to its first scan (cold start).
        """
        if not self.is_leader():
            return
        for name, pipeline in self.each().items():
            if pipeline.current is None:
                logger.info("daily refit%s skipped: no model yet, the next scan fits one",
                            f" of cluster {name}" if self.pipelines else "")  # fmt: skip
                continue
            try:
                pipeline.refit(self.clock(), pipeline.last_graph)
            except (NotEnoughHistoryError, MetricsSourceError) as exc:
                logger.warning("daily refit%s failed, the current model keeps scanning: %s",
                               f" of cluster {name}" if self.pipelines else "", exc)  # fmt: skip
            except Exception:
                if not self.pipelines:
                    raise
                logger.exception("daily refit of cluster %s failed", name)

    def digest(self) -> None:
        """Leader: post the daily digest and prune score history past its retention."""
        if not self.is_leader():
            return
        from bot.digest import digest_text

        at = self.clock()
        self.sink.post_text(digest_text(self.repository, at))
        cut = at - timedelta(days=self.settings.score_retention_days)
        pruned = self.repository.prune_scores(cut)
        logger.info("digest posted; %d score rows older than %s pruned", pruned, format_time(cut))

    def jobs(self) -> Jobs:
        """The scheduler's jobs."""

        def dispatch() -> None:
            """Deliver the outbox (the count is only for callers that want it)."""
            self.dispatch()

        return Jobs(
            scan=self.scan,
            dispatch=dispatch,
            refit=self.refit,
            digest=self.digest,
            probe=self.probe,
            clusters=tuple(self.pipelines),
        )

    # ------------------------------------------------------------------ health

    def stale_after(self) -> timedelta:
        """How old the last good scan may be (bot-clock time) before /readyz says 503."""
        return timedelta(seconds=max(5 * self.settings.scan_interval, 120) * self.speed())

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        """Return (alive, detail) for /livez: the process serves (no store, no Slack asked)."""
        return True, {
            "worker": self.worker_id,
            "leader": self.leading,
            "uptime_seconds": round(time.monotonic() - self.started, 1),
            "scheduler": bool(self.scheduler is not None and self.scheduler.running),
        }

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Return (ready, detail) for /readyz and /healthz: the data is fresh (whoever leads).

        Slack plays no part: a Slack outage shows as queued notifications, not as unready.
        """
        st = self.repository.status()
        now = self.clock()
        last_ok = st.last_ok_scan.at if st.last_ok_scan else None
        age = (now - last_ok).total_seconds() if last_ok else None
        limit = self.stale_after().total_seconds()
        if age is None:  # nothing scanned yet: healthy while starting up
            ok = (time.monotonic() - self.started) * self.speed() <= limit
        else:
            ok = age <= limit
        return ok, {
            "now": format_time(now),
            "last_scan": format_time(st.last_scan.at) if st.last_scan else None,
            "last_scan_ok": st.last_scan.ok if st.last_scan else None,
            "last_successful_scan": format_time(last_ok) if last_ok else None,
            "last_successful_scan_age_seconds": age,
            "stale_after_seconds": limit,
            "leader": self.leading,
            "worker": self.worker_id,
            "data_source": st.data_source,
            "open_incidents": st.open_incidents,
            "pending_notifications": st.pending_notifications,
            "dead_notifications": st.dead_notifications,
            **({"clusters": self._cluster_health()} if self.pipelines else {}),
        }

    def _cluster_health(self) -> dict[str, dict[str, Any]]:
        """Each cluster's data source state and last successful scan (several clusters)."""
        out = {}
        for name in self.pipelines:
            st = self.repository.scoped(name).status()
            last = st.last_ok_scan.at if st.last_ok_scan else None
            out[name] = {
                "data_source": st.data_source,
                "last_successful_scan": format_time(last) if last else None,
                "open_incidents": st.open_incidents,
            }
        return out

    # ------------------------------------------------------------------ life

    def start(self) -> Runtime:
        """Serve HTTP (/livez, /readyz, /healthz, /metrics, /slack/events in HTTP mode), Socket
        Mode, and the scheduler."""
        from bot.slack.server import make_wsgi_app, serve

        s = self.settings
        http_mode = self.slack is not None and s.slack_app_token is None
        app = make_wsgi_app(
            self.metrics.registry,
            bolt_app=self.slack.app if http_mode else None,
            health=self.health,
            liveness=self.liveness,
        )
        self.server = serve(app, s.http_host, s.http_port)
        logger.info("HTTP on %s:%d (/livez, /readyz, /metrics%s)", s.http_host, self.server.port,
                    ", /slack/events" if http_mode else "")  # fmt: skip
        if self.slack is not None and s.slack_app_token is not None:
            from bot.slack.socket import start_socket_mode

            self.socket_handler = start_socket_mode(
                self.slack.app, s.slack_app_token.get_secret_value()
            )
            logger.info("Slack Socket Mode connected")
        self.scheduler = build_scheduler(
            self.jobs(),
            scan_interval=s.scan_interval,
            refit_hour_utc=s.refit_hour_utc,
            digest_hour_utc=s.digest_hour_utc,
            dispatch_interval=max(1.0, min(2.0, s.scan_interval / 2)),
        )
        self.scheduler.start()
        # First scans right away rather than one interval after start-up.
        for job in self.scheduler.get_jobs():
            if job.id == "scan" or job.id.startswith("scan:"):
                job.modify(next_run_time=datetime.now(UTC))
        return self

    def stop(self) -> None:
        """Graceful shutdown: scheduler (waits for a running job), leadership, Slack, HTTP, DB."""
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        try:
            self.lock.release(real_clock())
        except Exception:
            logger.exception("releasing the leader lock failed (it expires on its own)")
        if self.socket_handler is not None:
            from bot.slack.socket import close_socket_mode

            close_socket_mode(self.socket_handler)
        if self.server is not None:
            self.server.stop()
        close = getattr(self.lock, "close", None)
        if close is not None:
            close()
        self.repository.close()
        logger.info("%s stopped", self.worker_id)
