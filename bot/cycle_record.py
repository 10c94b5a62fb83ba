"""What a cycle leaves behind: its outcome, its scan record in the store, the bot's own metrics.

``Pipeline.run_cycle`` ends in one of three ways (the source failed, no model could be had, or it
scored); :class:`CycleRecorder` writes each to the store (``Repository.record_scan``, read by
``/gpu-risk status`` and ``/readyz``) and to the bot's metrics, and returns the
:class:`CycleOutcome` the caller (the scheduler, a replay, a scan) reads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from analysis.lifecycle import Decision
from analysis.types import Assessment, Incident, Topology
from bot.telemetry import BotMetrics
from storage.repository import Repository

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CycleOutcome:
    """What one cycle did: whether the data was there, what it scored and decided."""

    at: datetime
    ok: bool
    gpus_scored: int = 0
    incidents: tuple[Incident, ...] = ()
    decisions: tuple[Decision, ...] = ()
    error: str | None = None
    duration_s: float = 0.0
    assessment: Assessment | None = None

    @property
    def notifications(self) -> int:
        """Return how many decisions were queued for notification."""
        return sum(1 for d in self.decisions if d.notify)


@dataclass(frozen=True)
class CycleRecorder:
    """Records a cycle's end in ``repository`` and ``metrics`` (None: no metrics)."""

    repository: Repository
    topology: Topology
    metrics: BotMetrics | None = None
    cluster: str = ""

    def source_failed(self, at: datetime, error: str, started: float) -> CycleOutcome:
        """A failed fetch: open incidents stay open; one degraded event, not one per cycle."""
        duration = time.perf_counter() - started
        logger.warning("scan at %s: metrics source failed: %s", at.isoformat(), error)
        self.repository.record_scan(at, False, duration, 0, error=error)
        if self.metrics is not None:
            self.metrics.scans.labels("source_error").inc()
            self.metrics.cluster_scanned(self.cluster, ok=False)
        return CycleOutcome(at=at, ok=False, error=error, duration_s=duration)

    def model_failed(self, at: datetime, error: str, started: float) -> CycleOutcome:
        """A cycle that could not score: no model can be fitted on the history yet.

        Open incidents stay open (nothing is decided); the next cycle tries again, and the
        failed scan shows in ``/gpu-risk status``, ``/readyz`` and the scan metrics.
        """
        duration = time.perf_counter() - started
        reason = f"no model: {error}"
        logger.warning("scan at %s: %s", at.isoformat(), reason)
        self.repository.record_scan(at, False, duration, 0, error=reason)
        if self.metrics is not None:
            self.metrics.scans.labels("model_error").inc()
        return CycleOutcome(at=at, ok=False, error=reason, duration_s=duration)

    def succeeded(
        self,
        at: datetime,
        assessment: Assessment,
        incidents: Sequence[Incident],
        decisions: Sequence[Decision],
        started: float,
    ) -> CycleOutcome:
        """A good scan: its record, its duration and every GPU's risk in the metrics."""
        duration = time.perf_counter() - started
        n = len(assessment.scores)
        self.repository.record_scan(at, True, duration, n)
        if self.metrics is not None:
            self.metrics.scans.labels("ok").inc()
            self.metrics.scan_duration.observe(duration)
            open_now = [r.incident for r in self.repository.open_incidents()]
            self.metrics.cluster_scanned(
                self.cluster, ok=True, gpus=n, open_incidents=len(open_now), at=at
            )
            self.metrics.record_risk(
                assessment.scores, open_now, self.topology, cluster=self.cluster
            )
        return CycleOutcome(
            at=at,
            ok=True,
            gpus_scored=n,
            incidents=tuple(incidents),
            decisions=tuple(decisions),
            duration_s=duration,
            assessment=assessment,
        )
