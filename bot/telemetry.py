"""The bot's own Prometheus metrics, on a registry passed in (no global REGISTRY)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class BotMetrics:
    """Scan duration, GPUs scored, open incidents, notifications, dead letters, last good scan."""

    registry: CollectorRegistry
    scan_duration: Histogram
    scans: Counter
    gpus_scored: Gauge
    incidents_open: Gauge
    notifications_sent: Counter
    notifications_failed: Counter
    last_success: Gauge
    data_source_up: Gauge
    notifications_dead: Counter
    outbox_rows: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> BotMetrics:
        """Create the metric set on ``registry`` (a fresh one by default)."""
        reg = registry if registry is not None else CollectorRegistry()
        return cls(
            registry=reg,
            scan_duration=Histogram(
                "gpu_risk_scan_duration_seconds",
                "Duration of one scan cycle",
                buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120),
                registry=reg,
            ),
            scans=Counter("gpu_risk_scans", "Scan cycles by outcome", ["outcome"], registry=reg),
            gpus_scored=Gauge("gpu_risk_gpus_scored", "GPUs scored in the last scan", registry=reg),
            incidents_open=Gauge("gpu_risk_incidents_open", "Open incidents", registry=reg),
            notifications_sent=Counter(
                "gpu_risk_notifications_sent", "Notifications delivered", ["kind"], registry=reg
            ),
            notifications_failed=Counter(
                "gpu_risk_notifications_failed", "Notification attempts that failed", registry=reg
            ),
            last_success=Gauge(
                "gpu_risk_last_successful_scan_timestamp_seconds",
                "Unix time of the last successful scan",
                registry=reg,
            ),
            data_source_up=Gauge(
                "gpu_risk_data_source_up", "1 when the last fetch succeeded", registry=reg
            ),
            notifications_dead=Counter(
                "gpu_risk_notifications_dead",
                "Notifications given up after their last attempt (dead letters)",
                registry=reg,
            ),
            outbox_rows=Gauge(
                "gpu_risk_outbox_rows",
                "Outbox rows by status (pending: to send; dead: gave up, see retry-dead)",
                ["status"],
                registry=reg,
            ),
        )
