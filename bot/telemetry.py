"""The bot's own Prometheus metrics, on a registry passed in (no global REGISTRY)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from analysis.types import GpuScore, Incident, Topology

#: The labels of ``gpu_risk_score`` (an unknown UUID or rack is exported empty: no label).
SCORE_LABELS = ("Hostname", "gpu", "UUID", "rack")
#: The labels of ``gpu_risk_incident_open``.
INCIDENT_LABELS = ("id", "root_cause", "root_kind", "severity")

Series = tuple[tuple[tuple[str, ...], float], ...]


class RiskCollector(Collector):
    """``gpu_risk_score`` per GPU of the fleet and ``gpu_risk_incident_open`` per open incident.

    Each cycle replaces the whole snapshot at once, so a scrape sees one cycle's fleet: a GPU
    gone from the fleet or a resolved incident has no series any more (bounded cardinality).
    """

    def __init__(self) -> None:
        """Start with no series (nothing scored yet)."""
        self._snapshot: tuple[Series, Series] = ((), ())

    def update(
        self,
        scores: Iterable[GpuScore],
        incidents: Iterable[Incident],
        *,
        racks: Mapping[str, str] | None = None,
        uuids: Mapping[str, str] | None = None,
    ) -> None:
        """Replace the series with this cycle's scores (node -> rack, GPU key -> UUID if known)."""
        rack_of, uuid_of = racks or {}, uuids or {}
        gpus = {
            (s.node, s.gpu, uuid_of.get(s.key, ""), rack_of.get(s.node, "")): float(s.score)
            for s in scores
        }
        open_ = {(i.id, i.root_cause.id, i.root_cause.kind, i.severity): 1.0 for i in incidents}
        self._snapshot = (tuple(sorted(gpus.items())), tuple(sorted(open_.items())))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the two families of the current snapshot."""
        gpus, incidents = self._snapshot
        score = GaugeMetricFamily(
            "gpu_risk_score", "Calibrated failure risk of each GPU in [0, 1]", labels=SCORE_LABELS
        )
        for labels, value in gpus:
            score.add_metric(labels, value)
        yield score
        open_ = GaugeMetricFamily(
            "gpu_risk_incident_open", "1 per open incident", labels=INCIDENT_LABELS
        )
        for labels, value in incidents:
            open_.add_metric(labels, value)
        yield open_


def _version() -> str:
    """The installed gpu-risk version (``unknown`` when run from an uninstalled tree)."""
    try:
        return package_version("gpu-risk")
    except PackageNotFoundError:
        return "unknown"


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
    build_info: Gauge | None = None
    risk: RiskCollector = field(default_factory=RiskCollector)

    def __post_init__(self) -> None:
        """Register the per-GPU risk and open incidents; export the build version."""
        self.registry.register(self.risk)
        if self.build_info is None:
            info = Gauge(
                "gpu_risk_build_info",
                "1, labelled with the running version",
                ["version"],
                registry=self.registry,
            )
            info.labels(_version()).set(1)
            object.__setattr__(self, "build_info", info)

    def record_risk(
        self,
        scores: Sequence[GpuScore],
        incidents: Sequence[Incident],
        topology: Topology | None = None,
        uuids: Mapping[str, str] | None = None,
    ) -> None:
        """Export this cycle's risk of every GPU and its open incidents (after a good scan)."""
        racks = {n: r.id for r in topology.racks for n in r.nodes} if topology else {}
        self.risk.update(scores, incidents, racks=racks, uuids=uuids)

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
