"""The Alertmanager sink: each incident is one alert, pushed to ``POST /api/v2/alerts``.

An alert is identified by its labels, so they are bounded and stable over an incident's life:

- ``alertname`` (``GpuRiskIncident``), ``severity``, ``root_cause`` (the blamed entity's id) and
  ``root_kind`` (gpu, node, rack, pdu, cooling, switch);
- ``Hostname`` and ``node`` (the same value, for routes and inhibitions written either way):
  the root cause's node, omitted when the root cause is a rack or a facility component;
- ``gpu``: the GPU index, only when the root cause is one GPU;
- ``rack``: the root cause's rack (a component's when all its GPUs are in one rack), else none;
- ``cluster``: the cluster's name (``GPU_RISK_CLUSTER``, or the clusters file's), omitted when
  empty; a cluster of the clusters file may add labels of its own (``alertmanager_labels``).

A multi-GPU incident is therefore one alert, never one per GPU. The annotations carry what may
change while it is open: ``summary`` (the title), ``description`` (the explanation sentence),
``risk``, ``gpus`` (the riskiest affected GPUs), ``incident_id``, ``runbook_url``
(``GPU_RISK_RUNBOOK_URL``) and ``grafana_url`` (the shipped dashboard at the incident's time and
entity; also the ``generatorURL``).

Keeping alerts alive: every push of an open incident sets ``endsAt`` to now + ``TTL_INTERVALS``
resend intervals (the way Prometheus sends its alerts), and :meth:`AlertmanagerSink.resend_open`
pushes every open incident again at most once per interval (the runtime's dispatch job calls it
through :func:`resend_open_alerts`). So an open incident never expires while gpu-risk runs; a
push lost while Alertmanager was down (a mirror is not retried) is made good by the next
re-send; and if gpu-risk dies, its alerts resolve on their own a few intervals later instead of
firing forever. ``resolve`` pushes the alert with ``endsAt`` at the resolve time.

A severity change changes the labels, i.e. makes another alert: ``update``/``improve`` end the
alert of the previous severity in the same push. Times sent are wall-clock (Alertmanager
compares them with its own clock): a bot clock ahead of real time is clamped to now.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from analysis.types import GpuRef, Incident, Topology
from bot.blocks.alert import dashboard_url, incident_node
from bot.sinks.base import DataSourceNote, Notification, Sink
from storage.repository import MessageRef, Repository

logger = logging.getLogger(__name__)

ALERTNAME = "GpuRiskIncident"
#: A push lasts this many resend intervals (Prometheus uses 4 x its resend delay).
TTL_INTERVALS = 4
#: GPUs listed in the ``gpus`` annotation (the riskiest), the rest counted.
MAX_GPUS_LISTED = 8

Alert = dict[str, Any]


class AlertmanagerError(requests.HTTPError):
    """Alertmanager refused a push; the message has its status and answer, ``response`` the rest."""


def _real_now() -> datetime:
    """Wall-clock time, aware UTC."""
    return datetime.now(UTC)


def _rfc3339(ts: datetime) -> str:
    """An aware datetime as RFC 3339 UTC with milliseconds."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class AlertmanagerSink:
    """Push incidents to Alertmanager's v2 API as alerts; every method returns None."""

    url: str
    cluster: str = ""
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    """Labels of the cluster (``alertmanager_labels`` in the clusters file), e.g. a team."""
    runbook_url: str | None = None
    grafana_url: str | None = None
    topology: Topology | None = None
    repository: Repository | None = None
    """The store: an incident's first sighting (``startsAt``), open incidents to re-send, and
    gpu-risk's own silences (a silenced incident is not re-sent)."""
    basic_auth: tuple[str, str] | None = None
    bearer_token: str | None = None
    timeout: float = 10.0
    resend_interval: timedelta = timedelta(seconds=60)
    clock: Callable[[], datetime] = _real_now
    """Wall-clock time (Alertmanager's); the bot's own clock is only used for its silences."""
    _racks: dict[str, str] = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)
    _last_resend: datetime | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        """Index node -> rack once."""
        racks = self.topology.racks if self.topology is not None else ()
        self._racks = {node: rack.id for rack in racks for node in rack.nodes}

    # ------------------------------------------------------------------ Sink

    def post(self, note: Notification) -> MessageRef | None:
        """Push the new incident's alert (firing)."""
        self.push([self.firing(note.incident, self._starts(note))])
        return None

    def update(self, note: Notification) -> MessageRef | None:
        """Push the worse incident (a changed severity ends the previous severity's alert)."""
        self._changed(note)
        return None

    def improve(self, note: Notification) -> MessageRef | None:
        """Push the better incident (a changed severity ends the previous severity's alert)."""
        self._changed(note)
        return None

    def resolve(self, note: Notification) -> MessageRef | None:
        """End the incident's alert at the resolve time (and the previous severity's, if other)."""
        now = self.clock()
        starts = self._starts(note)
        ends = min(max(note.at or now, starts), now)
        alerts = [self.alert(note.incident, starts, ends)]
        if note.previous.severity != note.incident.severity:
            alerts.append(self.alert(note.previous, starts, ends))
        self.push(alerts)
        return None

    def data_source(self, note: DataSourceNote) -> MessageRef | None:
        """Not an incident: the bot's own health is alerted by ``deploy/prometheus`` rules."""
        logger.debug("data source %s: not sent to Alertmanager", note.state)
        return None

    def post_text(self, text: str) -> None:
        """Free-standing messages (the daily digest) have no place in Alertmanager."""

    # ------------------------------------------------------------------ re-sending

    def resend_open(self, now: datetime, *, force: bool = False) -> int:
        """Push every open, not silenced incident again, at most once per ``resend_interval``.

        ``now`` is the bot's clock (for gpu-risk's silences); return how many alerts were
        pushed (0 when not due). Raises when Alertmanager refuses (the caller logs it).
        """
        real = self.clock()
        with self._lock:
            last = self._last_resend
            if not force and last is not None and real - last < self.resend_interval:
                return 0
            self._last_resend = real  # also on failure: a down Alertmanager is asked once a turn
        if self.repository is None:
            return 0
        repo = self.repository
        alerts = [
            self.firing(rec.incident, rec.first_seen)
            for rec in repo.open_incidents()
            if not repo.is_silenced(rec.incident, now)
        ]
        if alerts:
            self.push(alerts)
        return len(alerts)

    # ------------------------------------------------------------------ alerts

    def labels(self, incident: Incident) -> dict[str, str]:
        """The alert's identity: bounded labels of the incident's root cause (module docstring)."""
        root = incident.root_cause
        out = {
            "alertname": ALERTNAME,
            "severity": incident.severity,
            "root_cause": root.id,
            "root_kind": root.kind,
        }
        node = incident_node(incident)
        if node:
            out["Hostname"] = out["node"] = node
        if root.kind == "gpu":
            out["gpu"] = GpuRef.parse(root.id).gpu
        rack = self.rack_of(incident)
        if rack:
            out["rack"] = rack
        if self.cluster:
            out["cluster"] = self.cluster
        return {**self.extra_labels, **out}

    def rack_of(self, incident: Incident) -> str | None:
        """The incident's rack: its root cause's, or the one rack all its GPUs are in, or None."""
        if incident.root_cause.kind == "rack":
            return incident.root_cause.id
        node = incident_node(incident)
        if node is not None:
            return self._racks.get(node)
        racks = {self._racks.get(g.node) for g in incident.gpus}
        return next(iter(racks)) if len(racks) == 1 else None

    def annotations(self, incident: Incident) -> dict[str, str]:
        """What a human reads and what may change while the incident is open."""
        exp = incident.explanation
        n = len(incident.gpus)
        ranked = sorted(incident.gpus, key=lambda g: -g.score)
        listed = ", ".join(f"{g.key} {g.score:.2f}" for g in ranked[:MAX_GPUS_LISTED])
        more = n - MAX_GPUS_LISTED
        out = {
            "summary": incident.title,
            "description": (exp.summary if exp is not None and exp.summary else "")
            or f"{n} GPU{'s' if n != 1 else ''} at risk under {incident.root_cause.kind} "
            f"{incident.root_cause.id}",
            "risk": f"{incident.score:.2f}",
            "gpus": listed + (f" and {more} more" if more > 0 else ""),
            "incident_id": incident.id,
        }
        if self.runbook_url:
            out["runbook_url"] = self.runbook_url
        if self.grafana_url:
            out["grafana_url"] = dashboard_url(
                self.grafana_url, incident, rack=self.rack_of(incident)
            )
        return out

    def alert(self, incident: Incident, starts: datetime, ends: datetime) -> Alert:
        """One element of the ``/api/v2/alerts`` body."""
        annotations = self.annotations(incident)
        body: Alert = {
            "labels": self.labels(incident),
            "annotations": annotations,
            "startsAt": _rfc3339(starts),
            "endsAt": _rfc3339(ends),
        }
        if "grafana_url" in annotations:
            body["generatorURL"] = annotations["grafana_url"]
        return body

    def firing(self, incident: Incident, first_seen: datetime | None = None) -> Alert:
        """The alert of an open incident: ends ``TTL_INTERVALS`` resend intervals from now."""
        now = self.clock()
        starts = min(first_seen or incident.at, now)
        return self.alert(incident, starts, now + self.resend_interval * TTL_INTERVALS)

    def push(self, alerts: Sequence[Alert]) -> None:
        """``POST /api/v2/alerts``; raise ``AlertmanagerError`` (or a connection error) on failure."""
        headers = {"Authorization": f"Bearer {self.bearer_token}"} if self.bearer_token else {}
        response = requests.post(
            f"{self.url.rstrip('/')}/api/v2/alerts",
            json=list(alerts),
            headers=headers,
            auth=self.basic_auth,
            timeout=self.timeout,
        )
        if response.status_code >= 400:
            raise AlertmanagerError(
                f"Alertmanager answered {response.status_code}: {response.text.strip()[:300]}",
                response=response,
            )

    # ------------------------------------------------------------------ helpers

    def _changed(self, note: Notification) -> None:
        """Push the incident as it is now; end the previous severity's alert if it differs."""
        starts = self._starts(note)
        alerts = [self.firing(note.incident, starts)]
        if note.previous.severity != note.incident.severity:
            alerts.append(self.alert(note.previous, min(starts, self.clock()), self.clock()))
        self.push(alerts)

    def _starts(self, note: Notification) -> datetime:
        """When the incident was first seen (the store's), never after now."""
        rec = (
            self.repository.incident(note.record_id)
            if self.repository is not None and note.record_id is not None
            else None
        )
        first = rec.first_seen if rec is not None else note.incident.at
        return min(first, self.clock())


def resend_open_alerts(sink: Sink, now: datetime) -> int:
    """Re-send open incidents through every Alertmanager sink in ``sink`` (inside a ``FanOut`` or
    a ``ByCluster`` too).

    Call it from the dispatch job (each sink re-sends at most once per its interval); a failure
    is logged, never raised: the next turn tries again. Return how many alerts were pushed.
    """
    from bot.sinks.bycluster import leaves

    pushed = 0
    for each in leaves(sink):
        if isinstance(each, AlertmanagerSink):
            try:
                pushed += each.resend_open(now)
            except Exception:
                logger.exception("re-sending open incidents to Alertmanager at %s failed", each.url)
    return pushed
