"""APScheduler 3.x jobs: scans that never overlap, back off while the source is down, refit, digest."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

logger = logging.getLogger(__name__)


@dataclass
class Backoff:
    """Doubles the scan interval after each failed scan, up to a cap; resets on success."""

    base: float
    cap: float = 900.0
    failures: int = field(default=0)

    def interval(self) -> float:
        """Return the seconds until the next scan given the failures so far."""
        return float(min(self.cap, self.base * (2 ** min(self.failures, 16))))

    def record(self, ok: bool) -> bool:
        """Record a scan outcome; return True when the interval changed."""
        before = self.interval()
        self.failures = 0 if ok else self.failures + 1
        return self.interval() != before


@dataclass(frozen=True)
class Jobs:
    """What the scheduler runs; each returns normally or raises (the scan returns success)."""

    scan: Callable[[], bool]
    dispatch: Callable[[], None]
    refit: Callable[[], None]
    digest: Callable[[], None]


def build_scheduler(
    jobs: Jobs,
    *,
    scan_interval: float,
    refit_hour_utc: int,
    digest_hour_utc: int,
    dispatch_interval: float = 2.0,
    backoff_cap: float = 900.0,
) -> BackgroundScheduler:
    """Return a configured (not started) scheduler running the bot's jobs in UTC."""
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(4)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
        timezone="UTC",
    )
    backoff = Backoff(base=scan_interval, cap=backoff_cap)

    def scan_job() -> None:
        """Run one scan; on failure stretch the interval, on recovery restore it."""
        try:
            ok = jobs.scan()
        except Exception:
            logger.exception("scan cycle failed")
            ok = False
        if backoff.record(ok):
            seconds = backoff.interval()
            logger.warning(
                "scan interval is now %.0f s (%d failures in a row)", seconds, backoff.failures
            )
            scheduler.reschedule_job("scan", trigger=IntervalTrigger(seconds=seconds))

    def guarded(name: str, fn: Callable[[], None]) -> Callable[[], None]:
        """Log a failing job with its traceback; the scheduler keeps running."""

        def run() -> None:
            try:
                fn()
            except Exception:
                logger.exception("%s job failed", name)

        return run

    scheduler.add_job(
        scan_job, IntervalTrigger(seconds=scan_interval), id="scan", replace_existing=True
    )
    scheduler.add_job(
        guarded("dispatch", jobs.dispatch),
        IntervalTrigger(seconds=dispatch_interval),
        id="dispatch",
        replace_existing=True,
    )
    scheduler.add_job(
        guarded("refit", jobs.refit),
        CronTrigger(hour=refit_hour_utc, minute=0, timezone="UTC"),
        id="refit",
        replace_existing=True,
    )
    scheduler.add_job(
        guarded("digest", jobs.digest),
        CronTrigger(hour=digest_hour_utc, minute=0, timezone="UTC"),
        id="digest",
        replace_existing=True,
    )
    return scheduler
