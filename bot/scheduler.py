"""APScheduler 3.x jobs: scans that never overlap, back off while the source is down, refit, digest.

Each job runs in its own pool thread with ``max_instances=1``: the delivery job (``dispatch``) may
wait on a slow Slack without delaying a scan, and neither ever overlaps itself. While the source
is down full scans back off (doubling up to ``backoff_cap``), but a cheap probe runs every scan
interval: the first scan after the source is back comes within one interval, not one backoff.
A bot watching several clusters has one scan job per cluster (``scan:<name>``), each with its own
backoff and probe, so one cluster's failing source slows only that cluster's scans.
"""

from __future__ import annotations

import functools
import logging
import time
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

    scan: Callable[..., bool]
    dispatch: Callable[[], None]
    refit: Callable[[], None]
    digest: Callable[[], None]
    probe: Callable[..., bool] | None = None
    """Cheap "is the source back?" check, run each interval while full scans back off."""
    clusters: tuple[str, ...] = ()
    """Several clusters: one scan job each, calling ``scan(name)`` and ``probe(name)``."""


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
        executors={"default": ThreadPoolExecutor(3 + max(1, len(jobs.clusters)))},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
        timezone="UTC",
    )

    def guarded(name: str, fn: Callable[[], None]) -> Callable[[], None]:
        """Log a failing job with its traceback; the scheduler keeps running."""

        def run() -> None:
            try:
                fn()
            except Exception:
                logger.exception("%s job failed", name)

        return run

    scans: dict[str, tuple[Callable[[], bool], Callable[[], bool] | None, str]] = {
        "scan": (jobs.scan, jobs.probe, "")
    }
    if jobs.clusters:
        scans = {
            f"scan:{name}": (
                functools.partial(jobs.scan, name),
                functools.partial(jobs.probe, name) if jobs.probe is not None else None,
                f" of cluster {name}",
            )
            for name in jobs.clusters
        }
    for job_id, (scan, probe, what) in scans.items():
        scheduler.add_job(
            scan_job(scan, probe, what, scan_interval, backoff_cap),
            IntervalTrigger(seconds=scan_interval),
            id=job_id,
            replace_existing=True,
            max_instances=1,
            coalesce=True,
        )
    scheduler.add_job(  # its own thread: a slow sink never holds up the scan job
        guarded("dispatch", jobs.dispatch),
        IntervalTrigger(seconds=dispatch_interval),
        id="dispatch",
        replace_existing=True,
        max_instances=1,
        coalesce=True,
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


def scan_job(
    scan: Callable[[], bool],
    probe: Callable[[], bool] | None,
    what: str,
    scan_interval: float,
    backoff_cap: float,
) -> Callable[[], None]:
    """One scan job (of one cluster, ``what`` names it in logs) with its own backoff."""
    backoff = Backoff(base=scan_interval, cap=backoff_cap)
    # While backing off, the scan job still ticks every interval; a tick before ``due`` only
    # probes the source. A small slack keeps ticks on the interval grid from just missing.
    due = [0.0]
    slack = min(0.25 * scan_interval, 1.0)

    def source_back() -> bool:
        """Probe the source (no probe: wait for the backoff)."""
        if probe is None:
            return False
        try:
            return probe()
        except Exception:
            logger.exception("probing the data source%s failed", what)
            return False

    def run() -> None:
        """Run one scan (or, while backing off, a probe); stretch or restore the backoff."""
        if backoff.failures and time.monotonic() < due[0]:
            if not source_back():
                return
            logger.info("the data source%s answers again: scanning now instead of in %.0f s",
                        what, due[0] - time.monotonic())  # fmt: skip
        try:
            ok = scan()
        except Exception:
            logger.exception("scan cycle%s failed", what)
            ok = False
        if backoff.record(ok):
            logger.warning(
                "full scans%s every %.0f s now (%d failures in a row; probing every %.0f s)",
                what,
                backoff.interval(),
                backoff.failures,
                scan_interval,
            )
        due[0] = time.monotonic() + backoff.interval() - slack

    return run
