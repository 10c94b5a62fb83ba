"""The composition root: Settings in, a running bot out (store, leader lock, pipeline, notifier,
scheduler, one HTTP server, Slack Socket Mode). Nothing else builds these objects.

Jobs (``bot/scheduler.py`` runs them):
- scan: if this replica leads, one pipeline cycle at the bot's clock, then deliver the outbox;
- dispatch: deliver the outbox (every replica; claims keep two from sending one row);
- refit: the leader refits the model on the history before now (daily);
- digest: the leader posts the daily summary and prunes score history past its retention.

One delivery loop (``bot/delivery.deliver``) serves both notifiers: Slack (``bot/slack/outbox``
``send_item``) when ``SLACK_BOT_TOKEN`` is set, else ``bot/console.ConsoleNotifier``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import networkx as nx
from apscheduler.schedulers.background import BackgroundScheduler

from analysis.scorer import Scorer
from analysis.types import Topology, format_time
from bot.config import Settings
from bot.console import ConsoleNotifier
from bot.delivery import Send, deliver
from bot.pipeline import CycleOutcome, Pipeline
from bot.scheduler import Jobs, build_scheduler
from bot.telemetry import BotMetrics
from storage.leader import AdvisoryLock, LeaseLock, make_leader_lock
from storage.repository import OutboxItem, Repository
from storage.source import MetricsSource

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
    metrics: BotMetrics
    send: Send
    post_text: Callable[[str], Any]
    clock: Clock
    worker_id: str
    slack: Any = None  # bot.slack.app.SlackBot when Slack is configured
    scheduler: BackgroundScheduler | None = None
    server: Any = None  # bot.slack.server.HttpServer once started
    socket_handler: Any = None
    leading: bool = False
    started: float = field(default_factory=time.monotonic)

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
            self.pipeline.resume()  # another leader may have changed the open incidents
        elif self.leading and not got:
            logger.warning("%s lost the leadership", self.worker_id)
        self.leading = got
        return got

    def scan(self) -> bool:
        """Leader: run one cycle and deliver what it queued. Return False when the source failed."""
        if not self.is_leader():
            return True
        outcome = self.run_cycle()
        self.dispatch()
        return outcome.ok

    def run_cycle(self) -> CycleOutcome:
        """Run one pipeline cycle at the bot's clock and log a one-line summary."""
        outcome = self.pipeline.run_cycle(self.clock())
        logger.info(
            "scan at %s: %s, %d GPUs, %d incidents, %d notifications queued (%.2f s)",
            format_time(outcome.at),
            "ok" if outcome.ok else f"FAILED ({outcome.error})",
            outcome.gpus_scored,
            len(outcome.incidents),
            outcome.notifications,
            outcome.duration_s,
        )
        return outcome

    def dispatch(self) -> int:
        """Deliver every due outbox row once; return how many were sent."""
        speed = self.settings.clock_speed if self.settings.clock_start else 1.0
        return deliver(
            self.repository,
            self.send,
            at=self.clock(),
            worker_id=self.worker_id,
            lease=timedelta(seconds=self.settings.outbox_lease_seconds) * speed,
            retry_in=timedelta(seconds=30) * speed,
            on_sent=self._sent,
            on_failed=lambda _item: self.metrics.notifications_failed.inc(),
        )

    def _sent(self, item: OutboxItem) -> None:
        """Count a delivered notification."""
        self.metrics.notifications_sent.labels(item.kind).inc()

    def refit(self) -> None:
        """Leader: refit the model on the history before now."""
        if self.is_leader():
            self.pipeline.refit(self.clock())

    def digest(self) -> None:
        """Leader: post the daily digest and prune score history past its retention."""
        if not self.is_leader():
            return
        from bot.digest import digest_text

        at = self.clock()
        self.post_text(digest_text(self.repository, at))
        cut = at - timedelta(days=self.settings.score_retention_days)
        pruned = self.repository.prune_scores(cut)
        logger.info("digest posted; %d score rows older than %s pruned", pruned, format_time(cut))

    def jobs(self) -> Jobs:
        """The scheduler's jobs."""

        def dispatch() -> None:
            """Deliver the outbox (the count is only for callers that want it)."""
            self.dispatch()

        return Jobs(scan=self.scan, dispatch=dispatch, refit=self.refit, digest=self.digest)

    # ------------------------------------------------------------------ health

    def stale_after(self) -> timedelta:
        """How old the last good scan may be (bot-clock time) before /healthz says 503."""
        speed = self.settings.clock_speed if self.settings.clock_start else 1.0
        return timedelta(seconds=max(5 * self.settings.scan_interval, 120) * speed)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Return (healthy, detail): last scan, last good scan, leadership, data source."""
        st = self.repository.status()
        now = self.clock()
        last_ok = st.last_ok_scan.at if st.last_ok_scan else None
        age = (now - last_ok).total_seconds() if last_ok else None
        limit = self.stale_after().total_seconds()
        if age is None:  # nothing scanned yet: healthy while starting up
            speed = self.settings.clock_speed if self.settings.clock_start else 1.0
            ok = (time.monotonic() - self.started) * speed <= limit
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
        }

    # ------------------------------------------------------------------ life

    def start(self) -> Runtime:
        """Serve HTTP (/healthz, /metrics, /slack/events in HTTP mode), Socket Mode, scheduler."""
        from bot.slack.server import make_wsgi_app, serve

        s = self.settings
        http_mode = self.slack is not None and s.slack_app_token is None
        app = make_wsgi_app(
            self.metrics.registry,
            bolt_app=self.slack.app if http_mode else None,
            health=self.health,
        )
        self.server = serve(app, s.http_host, s.http_port)
        logger.info("HTTP on %s:%d (/healthz, /metrics%s)", s.http_host, self.server.port,
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
        # First scan right away rather than one interval after start-up.
        self.scheduler.modify_job("scan", next_run_time=datetime.now(UTC))
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
            try:
                self.socket_handler.close()
            except Exception:
                logger.exception("closing Socket Mode failed")
        if self.server is not None:
            self.server.stop()
        close = getattr(self.lock, "close", None)
        if close is not None:
            close()
        self.repository.close()
        logger.info("%s stopped", self.worker_id)


def build_runtime(
    settings: Settings,
    *,
    source: MetricsSource | None = None,
    clock: Clock | None = None,
    metrics: BotMetrics | None = None,
) -> Runtime:
    """Compose the bot from ``settings`` (``source`` replaces Prometheus, e.g. the simulator)."""
    from bot.commands.scan import source_from_settings
    from storage.topology import load_topology

    clock = clock if clock is not None else make_clock(settings)
    metrics = metrics if metrics is not None else BotMetrics.create()
    worker_id = f"{socket.gethostname()}-{os.getpid()}"
    topology = load_topology(settings.topology) if settings.topology else Topology(racks=())
    src = source if source is not None else source_from_settings(settings, topology)
    repository = Repository.from_url(settings.database_url)
    lock = make_leader_lock(
        repository.engine, worker_id, ttl=timedelta(seconds=max(3 * settings.scan_interval, 30))
    )
    pipeline = _pipeline(settings, src, topology, repository, metrics)
    runtime = Runtime(
        settings=settings,
        repository=repository,
        lock=lock,
        pipeline=pipeline,
        metrics=metrics,
        send=lambda item: None,
        post_text=lambda text: None,
        clock=clock,
        worker_id=worker_id,
    )
    if settings.slack_bot_token is not None:
        _wire_slack(runtime, topology)
    else:
        console = ConsoleNotifier(images=repository.images, log_path=settings.console_log)
        runtime.send, runtime.post_text = console.send, console.post_text
    return runtime


def _pipeline(
    settings: Settings,
    source: MetricsSource,
    topology: Topology,
    repository: Repository,
    metrics: BotMetrics,
) -> Pipeline:
    """The alert flow with the configured scorer, explainer and model store."""
    from bot.scorers import make_scorer, resolve_detector

    name = resolve_detector(None, settings)

    def new_scorer() -> Scorer:
        """A fresh, unfitted scorer of the configured kind."""
        return make_scorer(name, settings)

    load_model, save_model, make_explainer = None, None, None
    if name != "static":
        from analysis.explain import Explainer

        def make_explainer() -> Explainer:
            """A fresh explainer (fitted with the scorer)."""
            return Explainer(random_state=settings.random_state)

        load_model, save_model = _model_io(settings, repository, new_scorer)
    window = timedelta(minutes=settings.window_minutes)
    probe = new_scorer()
    window = max(window, getattr(probe, "min_window", timedelta(0)))
    return Pipeline(
        source=source,
        topology=topology,
        repository=repository,
        make_scorer=new_scorer,
        make_explainer=make_explainer,
        window=window,
        step=timedelta(seconds=settings.step_seconds),
        fit_window=timedelta(hours=settings.fit_window_hours),
        open_after=settings.open_after,
        close_after=settings.close_after,
        metrics=metrics,
        load_model=load_model,
        save_model=save_model,
    )


def _model_io(
    settings: Settings, repository: Repository, new_scorer: Callable[[], Scorer]
) -> tuple[Callable[[nx.DiGraph], Scorer | None], Callable[[Scorer, datetime], None]]:
    """Load a stored model for this fleet; save (and index in the store) each refit."""
    from analysis.scoring import MODEL_VERSION, FeatureScorer, fleet_fingerprint
    from storage.model_store import ModelStore

    store = ModelStore(settings.model_dir)

    def load(graph: nx.DiGraph) -> Scorer | None:
        """The stored model of this kind for this fleet, or None."""
        cls = type(new_scorer())
        if not issubclass(cls, FeatureScorer):
            return None
        return store.load(cls, fleet_fingerprint(graph))

    def save(scorer: Scorer, at: datetime) -> None:
        """Write the model file and record it."""
        if not isinstance(scorer, FeatureScorer):
            return
        path = store.save(scorer)
        repository.record_model(
            name=scorer.name,
            fleet_fingerprint=scorer.fingerprint_,
            features=list(getattr(scorer, "columns_", ())),
            version=str(MODEL_VERSION),
            path=str(path),
            fitted_at=at,
            metrics={"train_rows": int(getattr(scorer, "n_train_rows_", 0))},
        )

    return load, save


def _wire_slack(runtime: Runtime, topology: Topology) -> None:
    """Slack notifier, service and Bolt app; outbox rows go out through ``send_item``."""
    from bot.slack.app import build_slack
    from bot.slack.outbox import send_item

    bot = build_slack(
        runtime.settings,
        runtime.repository,
        topology=topology,
        images=runtime.repository.images,
        now=runtime.clock,
    )
    runtime.slack = bot
    runtime.send = lambda item: send_item(bot.service, item)
    runtime.post_text = bot.notifier.post_text
