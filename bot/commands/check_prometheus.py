"""``gpu-risk check`` against Prometheus, one :class:`Finding` per result.

Reachable and authorized; the expected series present; the topology (labels and file) readable,
its components' PromQL valid and returning data, its node names matching DCGM's ``Hostname``.
"""

from __future__ import annotations

import difflib
from datetime import datetime
from typing import TYPE_CHECKING

from bot.commands.check_findings import Finding

if TYPE_CHECKING:
    from analysis.types import Topology
    from bot.config import Settings
    from storage.metrics import PrometheusSource

#: dcgm-exporter fields off by default: deploy/dcgm-exporter/counters.csv turns them on.
OPT_IN_DCGM: tuple[str, ...] = (
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
    "DCGM_FI_DEV_THERMAL_VIOLATION",
    "DCGM_FI_DEV_POWER_VIOLATION",
)
COUNTERS_HINT = "run dcgm-exporter with -f deploy/dcgm-exporter/counters.csv"
#: At most this many component queries (one per component metric) per check.
MAX_COMPONENT_QUERIES = 200


def prometheus_findings(settings: Settings, at: datetime | None) -> list[Finding]:
    """Reachability, series, topology PromQL and node names, one finding each."""
    from bot.config import ConfigError
    from bot.wiring import build_source
    from storage.metrics import PrometheusSource
    from storage.source import MetricsSourceError

    try:
        source = build_source(settings, None)
    except (ConfigError, MetricsSourceError) as exc:
        return [Finding(False, str(exc))]
    if not isinstance(source, PrometheusSource):  # pragma: no cover - build_source's type
        return []
    when = f" at {at.isoformat()}" if at is not None else ""
    try:
        up = source.query(f"count({source.select('up')})", at, what="up")
    except MetricsSourceError as exc:
        return [Finding(False, str(exc))]
    targets = int(up[0][1]) if up else 0
    out = [Finding(True, f"Prometheus at {source.url} answers ({targets} scrape targets{when})")]
    try:
        out += _series_findings(source, at, when)
        topology, topo_findings = _topology(settings, source, at)
        out += topo_findings
        if topology is not None:
            out += _component_findings(source, topology, at, when)
            out += _node_findings(source, topology, at, settings.fit_window_hours)
    except MetricsSourceError as exc:
        out.append(Finding(False, str(exc)))
    return out


def _series_findings(source: PrometheusSource, at: datetime | None, when: str) -> list[Finding]:
    """Which of the metrics the reader asks for have series (one query for all of them)."""
    from analysis.catalog import XID_COUNT

    names = (*source.gpu_metrics, *source.node_metrics, XID_COUNT)
    selector = source.select('{__name__=~"' + "|".join(names) + '"}')
    present = {
        labels.get("__name__", "")
        for labels, _ in source.query(
            f"count by (__name__) ({selector})", at, what="expected series"
        )
    }
    out: list[Finding] = []
    gpu_missing = [m for m in source.gpu_metrics if m not in present]
    default_missing = [m for m in gpu_missing if m not in OPT_IN_DCGM]
    opt_missing = [m for m in gpu_missing if m in OPT_IN_DCGM]
    if len(gpu_missing) == len(source.gpu_metrics):
        out.append(
            Finding(
                False,
                f"no DCGM series at all{when}: check that dcgm-exporter is scraped by this "
                "Prometheus (and GPU_RISK_SERIES_SELECTOR, --at)",
            )
        )
        return out
    if default_missing:
        out.append(
            Finding(
                False,
                f"no series for {', '.join(default_missing)}{when}: check dcgm-exporter's "
                f"counters ({COUNTERS_HINT})",
            )
        )
    if opt_missing:
        out.append(
            Finding(
                False,
                f"no series for the opt-in counters {', '.join(opt_missing)}{when}: "
                f"{COUNTERS_HINT}",
            )
        )
    if not gpu_missing:
        out.append(Finding(True, f"all {len(source.gpu_metrics)} DCGM metrics have series{when}"))
    if XID_COUNT not in present:
        out.append(
            Finding(
                None,
                f"no {XID_COUNT} series{when}: it appears with the first XID once "
                f"dcgm-exporter reads deploy/dcgm-exporter/counters.csv",
            )
        )
    node_present = [m for m in source.node_metrics if m in present]
    if not node_present:
        out.append(
            Finding(
                None,
                f"no node exporter series ({', '.join(source.node_metrics[:3])}, ...){when}: "
                "fans, inlet temperature and node power will be missing (ipmi_exporter)",
            )
        )
    return out


def _topology(
    settings: Settings, source: PrometheusSource, at: datetime | None
) -> tuple[Topology | None, list[Finding]]:
    """The topology the bot would use, with its label/file disagreements."""
    from bot.config import ConfigError
    from bot.wiring import discover_topology_of

    if not settings.topology_labels and settings.topology is None:
        return None, [Finding(None, "no topology: GPUs are scored without shared components")]
    try:
        found = discover_topology_of(settings, source, at)
    except (ConfigError, ValueError) as exc:
        return None, [Finding(False, str(exc))]
    topo = found.topology
    origin = "labels and file" if settings.topology_labels and settings.topology else None
    origin = origin or ("labels" if settings.topology_labels else "file")
    out = [
        Finding(
            True,
            f"topology from {origin}: {len(topo.racks)} racks, {len(topo.nodes)} nodes, "
            f"{len(topo.components)} components with metrics",
        )
    ]
    out += [Finding(None, f"topology conflict: {c}") for c in found.conflicts]
    out += [Finding(None, f"topology: {n}") for n in found.notes]
    return topo, out


def _component_findings(
    source: PrometheusSource, topology: Topology, at: datetime | None, when: str
) -> list[Finding]:
    """Each component metric's PromQL: accepted by the server and returning data."""
    from storage.source import MetricsSourceError

    pairs = [(c.id, n, q) for c in topology.components.values() for n, q in c.metrics.items()]
    out: list[Finding] = []
    bad = 0
    for cid, name, promql in pairs[:MAX_COMPONENT_QUERIES]:
        query = source.select(promql)
        try:
            series = source.query(query, at, what=f"{cid} {name}")
        except MetricsSourceError as exc:
            bad += 1
            out.append(Finding(False, f"component {cid} {name}: {exc}"))
            continue
        if not series:
            bad += 1
            out.append(
                Finding(
                    False,
                    f"component {cid} {name}: {promql!r} returns no data{when}: check its "
                    "metric and label names in the topology file",
                )
            )
    if len(pairs) > MAX_COMPONENT_QUERIES:
        out.append(Finding(None, f"checked the first {MAX_COMPONENT_QUERIES} of {len(pairs)}"))
    if pairs and not bad:
        out.append(Finding(True, f"all {len(pairs)} component metrics return data{when}"))
    return out


def _node_findings(
    source: PrometheusSource, topology: Topology, at: datetime | None, hours: int
) -> list[Finding]:
    """Topology node names against the DCGM node label over the fit window (a node down for a
    while still counts), closest names suggested."""
    label = source.labels["node"]
    metric = source.required_metrics[0] if source.required_metrics else source.gpu_metrics[0]
    when = f" in the {hours}h before {at.isoformat() if at is not None else 'now'}"
    query = f"count by ({label}) (count_over_time({source.select(metric)}[{hours}h]))"
    hosts = {
        labels[label]
        for labels, _ in source.query(query, at, what=f"DCGM {label} values")
        if labels.get(label)
    }
    if not hosts or not topology.nodes:
        return []
    nodes = set(topology.nodes)
    out: list[Finding] = []
    unmatched = sorted(hosts - nodes)
    for node in sorted(nodes - hosts):
        close = difflib.get_close_matches(node, unmatched or sorted(hosts), n=2, cutoff=0.6)
        hint = f": did you mean {' or '.join(close)}?" if close else ": check the name"
        out.append(
            Finding(
                False,
                f"topology node {node!r} has no DCGM series ({label}){when}{hint}",
            )
        )
    if unmatched:
        shown = ", ".join(unmatched[:5]) + (
            f" (+{len(unmatched) - 5})" if len(unmatched) > 5 else ""
        )
        out.append(
            Finding(
                None,
                f"{len(unmatched)} DCGM host(s) are not in the topology ({shown}): they are "
                "scored without shared components",
            )
        )
    if not nodes - hosts:
        out.append(Finding(True, f"all {len(nodes)} topology nodes match DCGM's {label}"))
    return out
