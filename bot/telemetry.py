"""The bot's own Prometheus metrics, on a registry passed in (no global REGISTRY)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from analysis.types import GpuScore, Incident, Topology

#: The labels of ``gpu_risk_score`` (an unknown UUID or rack, or no cluster name, is exported
#: empty: no label).
SCORE_LABELS = ("Hostname", "gpu", "UUID", "rack", "cluster")
#: The labels of ``gpu_risk_incident_open``.
INCIDENT_LABELS = ("id", "root_cause", "root_kind", "severity", "cluster")

Series = tuple[tuple[tuple[str, ...], float], ...]


class RiskCollector(Collector):
    """``gpu_risk_score`` per GPU of the fleet and ``gpu_risk_incident_open`` per open incident,
    each with its ``cluster``.

    Each cycle replaces its cluster's whole snapshot at once, so a scrape sees one cycle's fleet
    per cluster: a GPU gone from the fleet or a resolved incident has no series any more
    (bounded cardinality).
    """

    def __init__(self) -> None:
        """Start with no series (nothing scored yet)."""
        self._snapshots: dict[str, tuple[Series, Series]] = {}

    def update(
        self,
        scores: Iterable[GpuScore],
        incidents: Iterable[Incident],
        *,
        racks: Mapping[str, str] | None = None,
        uuids: Mapping[str, str] | None = None,
        cluster: str = "",
    ) -> None:
        """Replace ``cluster``'s series with this cycle's scores (node -> rack, GPU key -> UUID
        if known)."""
        rack_of, uuid_of = racks or {}, uuids or {}
        gpus = {
            (s.node, s.gpu, uuid_of.get(s.key, ""), rack_of.get(s.node, ""), cluster): float(
                s.score
            )
            for s in scores
        }
        open_ = {
            (i.id, i.root_cause.id, i.root_cause.kind, i.severity, cluster): 1.0 for i in incidents
        }
        self._snapshots = {
            **self._snapshots,
            cluster: (tuple(sorted(gpus.items())), tuple(sorted(open_.items()))),
        }

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the two families of every cluster's current snapshot."""
        snapshots = sorted(self._snapshots.items())
        score = GaugeMetricFamily(
            "gpu_risk_score", "Calibrated failure risk of each GPU in [0, 1]", labels=SCORE_LABELS
        )
        for _, (gpus, _incidents) in snapshots:
            for labels, value in gpus:
                score.add_metric(labels, value)
        yield score
        open_ = GaugeMetricFamily(
            "gpu_risk_incident_open", "1 per open incident", labels=INCIDENT_LABELS
        )
        for _, (_gpus, incidents) in snapshots:
            for labels, value in incidents:
                open_.add_metric(labels, value)
        yield open_


@dataclass
class ClusterScans:
    """The last scan of each cluster, for the fleet-wide gauges and the per-cluster series."""

    up: dict[str, bool] = field(default_factory=dict)
    gpus: dict[str, int] = field(default_factory=dict)
    open_incidents: dict[str, int] = field(default_factory=dict)
    last_success: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class ClusterCollector(Collector):
    """``gpu_risk_cluster_up{cluster}`` and ``gpu_risk_cluster_last_successful_scan_timestamp_
    seconds{cluster}``: which cluster's scans work (a bot watching several)."""

    def __init__(self, scans: ClusterScans) -> None:
        """Read the clusters' last scans."""
        self.scans = scans

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the two per-cluster families."""
        with self.scans.lock:
            up, last = dict(self.scans.up), dict(self.scans.last_success)
        family = GaugeMetricFamily(
            "gpu_risk_cluster_up", "1 when the cluster's last fetch succeeded", labels=["cluster"]
        )
        for name, ok in sorted(up.items()):
            family.add_metric([name], 1.0 if ok else 0.0)
        yield family
        family = GaugeMetricFamily(
            "gpu_risk_cluster_last_successful_scan_timestamp_seconds",
            "Unix time of the cluster's last successful scan",
            labels=["cluster"],
        )
        for name, ts in sorted(last.items()):
            family.add_metric([name], ts)
        yield family


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
    clusters: ClusterScans = field(default_factory=ClusterScans)

    def __post_init__(self) -> None:
        """Register the per-GPU risk, open incidents and clusters; export the build version."""
        self.registry.register(self.risk)
        self.registry.register(ClusterCollector(self.clusters))
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
        cluster: str = "",
    ) -> None:
        """Export this cycle's risk of every GPU and its open incidents (after a good scan of
        ``cluster``)."""
        racks = {n: r.id for r in topology.racks for n in r.nodes} if topology else {}
        self.risk.update(scores, incidents, racks=racks, uuids=uuids, cluster=cluster)

    def cluster_scanned(
        self,
        cluster: str,
        *,
        ok: bool,
        gpus: int | None = None,
        open_incidents: int | None = None,
        at: datetime | None = None,
    ) -> None:
        """Record one cluster's scan; the unlabelled gauges say the whole fleet: GPUs scored and
        open incidents summed, the source up only when every cluster's is, the last successful
        scan the oldest cluster's (so a stale cluster trips the staleness alert)."""
        c = self.clusters
        with c.lock:
            c.up[cluster] = ok
            if gpus is not None:
                c.gpus[cluster] = gpus
            if open_incidents is not None:
                c.open_incidents[cluster] = open_incidents
            if at is not None:
                c.last_success[cluster] = at.timestamp()
            self.data_source_up.set(1 if all(c.up.values()) else 0)
            if ok:
                self.gpus_scored.set(sum(c.gpus.values()))
                self.incidents_open.set(sum(c.open_incidents.values()))
            if c.last_success:
                self.last_success.set(min(c.last_success.values()))

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
