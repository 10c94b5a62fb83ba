"""Read the fleet from Prometheus (or any PromQL API: VictoriaMetrics, Thanos, Mimir).

One range query per metric for the whole fleet, never one per node or GPU, so the number of
requests of a fetch does not depend on the fleet's size. Results become the tidy frames of
``analysis.types.FleetFrames``. Every failure (unreachable, slow, HTTP or PromQL error, empty or
malformed answer) is raised as one ``MetricsSourceError`` line saying what failed, where, and
what to check.

This module is what a fetch asks for (the GPU, node, XID-class, component and ``up`` queries,
cordoned nodes) and the refusal of empty or half-empty answers; ``reduce`` has the server compute
the feature plan's per-GPU reductions (:mod:`storage.promql_reduce`: one instant query each), so
a cycle fetches raw only the metrics the peer context compares. A query the server refuses as too
large is asked by halves of its time range and by parts of the fleet (:mod:`storage.promql_split`),
so a long history (a model fit) never asks for more than the server's limits in one query. A
fit's sample of nodes (``storage.source.NodeSample``) reads their GPU, node and ``up`` series
and every component's. Sending queries, retries and the one-line errors are
:mod:`storage.promql_client`; the series selector is
:mod:`storage.promql_selector`; checking the answers sample by sample and turning them into frames
is :mod:`storage.promql_frames`. Credentials never leave it: ``PrometheusSource.url`` and every
message show the URL through ``storage.redact.redact_url`` (``http://***@host``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import requests

from analysis.catalog import (
    DCGM_METRICS,
    NODE_METRICS,
    XID_HARDWARE_COUNT,
    XID_OTHER_COUNT,
)
from analysis.feature_plan import FeaturePlan
from analysis.types import (
    COMPONENT_COLUMNS,
    GPU_COLUMNS,
    NODE_COLUMNS,
    UP_COLUMNS,
    FleetFrames,
    Reductions,
    Topology,
)
from storage.promql_client import PromQLClient, check_target
from storage.promql_client import Sample as Sample  # noqa: PLC0414 - re-exported
from storage.promql_frames import (
    COMPONENT_LABEL,
    component_frame,
    concat_frames,
    gpu_frame,
    node_frame,
    strip_port,
    up_frame,
)
from storage.promql_reduce import MAX_POINTS, grid_series, reduce_promql_at
from storage.promql_selector import Matcher as Matcher  # noqa: PLC0414 - re-exported
from storage.promql_selector import SelectorError, parse_selector, with_matchers
from storage.promql_split import by_parts, by_spans, node_matcher
from storage.source import MetricsSourceError, NodeSample

__all__ = [
    "DCGM_METRICS",
    "DEFAULT_LABEL_MAP",
    "NODE_METRICS",
    "REQUIRED_DCGM_METRICS",
    "MetricsSourceError",
    "PrometheusSource",
    "QueryStats",
    "SelectorError",
    "parse_selector",
    "strip_port",
    "with_matchers",
]

logger = logging.getLogger(__name__)

# Without these a fetch is refused as half-empty: every scorer needs them.
REQUIRED_DCGM_METRICS: tuple[str, ...] = ("DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE")

# Which source label holds what. Keys: node and gpu (DCGM series), instance (node exporters and
# ``up``; the port is stripped), sensor (the sensor name of node series).
DEFAULT_LABEL_MAP: Mapping[str, str] = {
    "node": "Hostname",
    "gpu": "gpu",
    "instance": "instance",
    "sensor": "name",
}
_MAX_QUERY_CHARS = 6000
_PORT = "(:[0-9]+)?"  # after the node name in an ``instance`` label


@dataclass(frozen=True)
class QueryStats:
    """What the last fetch cost: requests sent and series/samples received (a debugging aid:
    with a fetch and a reduction side by side, ``storage.source.side_by_side``, each one's
    request count includes the other's requests sent meanwhile)."""

    requests: int
    series: int
    samples: int
    seconds: float


#: kube-state-metrics: 1 while a node is cordoned (``kubectl cordon``/``drain``), else 0.
CORDON_METRIC = "kube_node_spec_unschedulable"


class PrometheusSource(PromQLClient):
    """A ``MetricsSource`` over a PromQL HTTP API, built on prometheus-api-client.

    Parameters
    ----------
    url:
        Base URL of Prometheus (or VictoriaMetrics, Thanos, Mimir: anything with
        ``/api/v1/query_range``). Userinfo in it (``http://user:pass@host``) is sent as basic
        auth; ``self.url`` keeps only the redacted form for messages.
    topology:
        Where component PromQL comes from (None: no component frames).
    bearer_token, basic_auth:
        Authentication: an ``Authorization: Bearer`` header, or a (user, password) pair.
    ca_file, verify_tls:
        TLS: a CA bundle to verify the server with, or no verification at all.
    timeout, retries:
        Seconds per request, and retries per request (exponential backoff, 0.5 s base) on
        connection errors, timeouts and 502/503/504.
    label_map:
        Which labels name things; merged over ``DEFAULT_LABEL_MAP`` (keys node, gpu, instance,
        sensor).
    session:
        A requests session to send through (tests count requests with one).
    gpu_metrics, node_metrics, required_metrics:
        Which DCGM and node metrics to read, and which DCGM metrics must have data.
    sample_window:
        Each step's value is the last sample in (t - sample_window, t]; missing scrapes show as
        missing rows instead of being papered over by the 5 min lookback. Default: the step.
    series_selector:
        Label matchers added to every query (``{cluster="a"}``; see :func:`with_matchers` for
        the topology's PromQL): one cluster or tenant of a shared Prometheus, Thanos or Mimir.
    headers:
        Extra HTTP headers on every request (``X-Scope-OrgID`` of a Mimir/Cortex/Thanos
        tenant); an ``Authorization`` header here and a bearer token together are refused.
    concurrency:
        How many of a cycle's reduction queries are in flight at once (``PromQLClient.map``).
    """

    #: A cycle's raw window is read in part when the last one overlaps it (``storage.rolling``):
    #: a range answer's points do not depend on each other, and ``fetch`` sorts its frames by
    #: labels, then time, as the rolling read joins them.
    rolling_reads = True
    #: Its reductions cost the server a read of their samples: a cycle computes those of the
    #: peer metrics, which it reads raw anyway, itself (``Pipeline.read_window``).
    remote_reductions = True

    def __init__(
        self,
        url: str,
        *,
        topology: Topology | None = None,
        bearer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        ca_file: str | None = None,
        verify_tls: bool = True,
        timeout: float = 30.0,
        retries: int = 2,
        label_map: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
        gpu_metrics: Sequence[str] = DCGM_METRICS,
        node_metrics: Sequence[str] = NODE_METRICS,
        required_metrics: Sequence[str] = REQUIRED_DCGM_METRICS,
        sample_window: timedelta | None = None,
        series_selector: str | None = None,
        headers: Mapping[str, str] | None = None,
        concurrency: int = 1,
    ) -> None:
        """Build the client; nothing is sent until ``fetch``."""
        check_target(url, bearer_token, basic_auth)  # before the label map, as always
        unknown = set(label_map or {}) - set(DEFAULT_LABEL_MAP)
        if unknown:
            raise MetricsSourceError(
                f"label map has unknown key(s) {sorted(unknown)}; allowed: "
                f"{', '.join(DEFAULT_LABEL_MAP)} (check GPU_RISK_LABEL_MAP)"
            )
        super().__init__(
            url,
            bearer_token=bearer_token,
            basic_auth=basic_auth,
            ca_file=ca_file,
            verify_tls=verify_tls,
            timeout=timeout,
            retries=retries,
            session=session,
            series_selector=series_selector,
            headers=headers,
            concurrency=concurrency,
        )
        self.topology = topology
        self.labels = {**DEFAULT_LABEL_MAP, **(label_map or {})}
        self.gpu_metrics = tuple(gpu_metrics)
        self.node_metrics = tuple(node_metrics)
        self.required_metrics = tuple(required_metrics)
        self.sample_window = sample_window
        self.last_stats: QueryStats | None = None

    def cordoned(self, at: datetime) -> frozenset[str]:
        """Nodes cordoned at ``at``: kube-state-metrics' ``kube_node_spec_unschedulable == 1``.

        Its ``node`` label is the Kubernetes node name, which is the DCGM ``Hostname`` the GPU
        frames use. No such series (no kube-state-metrics, nothing cordoned) = none cordoned.
        One instant query, with the series selector's matchers.
        """
        query = f"{self.select(CORDON_METRIC)} == 1"
        samples = self.query(query, at, what=CORDON_METRIC)
        return frozenset(labels["node"] for labels, _ in samples if labels.get("node"))

    def gpu_models(self, at: datetime, window: timedelta) -> dict[str, str]:
        """Each node's GPU model: dcgm-exporter's ``modelName`` label in ``window`` before ``at``.

        One instant query for the whole fleet, one short line per node and model (a model fit
        stratifies its sample of nodes by it); nodes without the label are left out.
        """
        node = self.labels["node"]
        metric = self.required_metrics[0] if self.required_metrics else self.gpu_metrics[0]
        ms = max(1, round(window.total_seconds() * 1000))
        query = f"count by ({node}, modelName) (last_over_time({self.select(metric)}[{ms}ms]))"
        samples = self.query(query, at, what="GPU models")
        return {
            labels[node]: labels["modelName"]
            for labels, _ in samples
            if labels.get(node) and labels.get("modelName")
        }

    def _matrix(
        self,
        query: str,
        start: datetime,
        end: datetime,
        step: timedelta,
        what: str,
        *,
        extra: Sequence[Matcher] = (),
    ) -> list[dict[str, Any]]:
        """Query the last sample per step of a metric selector (no lookback padding over gaps).

        ``extra``: matchers added to the series selector's (one fetch's node restriction).
        """
        # (t - window, t]: Prometheus 2.x range windows are closed on the left, so shave 1 ms
        # off, or a one-step gap would be papered over by the sample one step earlier.
        window = self._window(step)

        def build(select: Callable[[str], str]) -> str:
            return f"last_over_time({select(query)}[{window}])"

        # GPU series are split by the node label, node exporters and ``up`` by the node in their
        # instance label
        gpu = query in self.gpu_metrics
        label, tail = (self.labels["node"], "") if gpu else (self.labels["instance"], _PORT)
        return self._split(build, start, end, step, what, label=label, tail=tail, extra=extra)

    def _split(
        self,
        build: Callable[[Callable[[str], str]], str],
        start: datetime,
        end: datetime,
        step: timedelta,
        what: str,
        *,
        label: str,
        tail: str = "",
        extra: Sequence[Matcher] = (),
    ) -> list[dict[str, Any]]:
        """One range query ``build(select)``; the server finds it too large: asked by parts of
        the fleet (``label``, then ``tail``), and a part still too large at the deepest level by
        halves of the time range."""

        def send(promql: str) -> list[dict[str, Any]]:
            return self.query_range(promql, start, end, step, what=what)

        def by_halves(promql: str) -> list[dict[str, Any]]:
            return self._range(promql, start, end, step, what, refused=True)

        matchers = (*self.matchers, *extra)
        return by_parts(matchers, build, send, what=what, label=label, tail=tail, then=by_halves)

    def _range(
        self,
        promql: str,
        start: datetime,
        end: datetime,
        step: timedelta,
        what: str,
        *,
        refused: bool = False,
    ) -> list[dict[str, Any]]:
        """One range query, asked by halves of its time range while the server finds it too large.

        ``refused``: the whole range was refused already (start with its halves).
        """

        def ask(lo: datetime, hi: datetime) -> list[dict[str, Any]]:
            return self.query_range(promql, lo, hi, step, what=what)

        return by_spans(ask, start, end, step, what=what, refused=refused)

    def _window(self, step: timedelta) -> str:
        """The lookback of one step's last sample, ``(t - window, t]`` (1 ms shaved, see above)."""
        ms = max(1, round((self.sample_window or step).total_seconds() * 1000) - 1)
        return f"{ms}ms"

    # ------------------------------------------------------------------ fetch

    def fetch(
        self,
        start: datetime,
        end: datetime,
        step: timedelta,
        *,
        gpu_metrics: Sequence[str] | None = None,
        nodes: Collection[str] | None = None,
    ) -> FleetFrames:
        """Return the fleet's GPU, node, component and ``up`` frames for [start, end] at ``step``.

        ``gpu_metrics``: only these of the GPU metrics (and XID class sums) the source reads.
        ``nodes``: only the GPU series of these nodes (matched on the node label), nothing else;
        a ``NodeSample``: their GPU series, their node-exporter and ``up`` series (matched on the
        instance label) and every component series.
        """
        if end <= start:
            raise MetricsSourceError(f"empty time window: start {start} is not before end {end}")
        t0 = time.perf_counter()
        self._requests = 0
        n_series = 0
        wanted = None if gpu_metrics is None else set(gpu_metrics)
        metrics = tuple(m for m in self.gpu_metrics if wanted is None or m in wanted)
        extra = () if nodes is None else (node_matcher(self.labels["node"], nodes),)
        at_nodes: tuple[Matcher, ...] = ()
        if isinstance(nodes, NodeSample):  # their node-exporter and ``up`` series too
            at_nodes = (node_matcher(self.labels["instance"], nodes, _PORT),)
        sample = bool(at_nodes)
        gpu_parts: list[pd.DataFrame] = []
        empty: list[str] = []
        unlabeled = 0
        for metric in metrics:
            matrix = self._matrix(metric, start, end, step, metric, extra=extra)
            n_series += len(matrix)
            if not matrix:
                empty.append(metric)
                continue
            part, bad = gpu_frame(metric, matrix, self.labels)
            unlabeled += bad
            if part is not None:
                gpu_parts.append(part)
        if nodes is None or sample:
            self._check_gpu_answer(metrics, empty, unlabeled, start, end)
        for name in (XID_HARDWARE_COUNT, XID_OTHER_COUNT):
            if wanted is not None and name not in wanted:
                continue
            matrix = self._xid_class(name, start, end, step, extra)
            n_series += len(matrix)
            part, _ = gpu_frame(name, matrix, self.labels) if matrix else (None, 0)
            if part is not None:
                gpu_parts.append(part)

        node_parts: list[pd.DataFrame] = []
        comp_parts: list[pd.DataFrame] = []
        up = FleetFrames.empty_frame(UP_COLUMNS)
        if nodes is None or sample:
            for metric in self.node_metrics:
                matrix = self._matrix(metric, start, end, step, metric, extra=at_nodes)
                n_series += len(matrix)
                if matrix:
                    node_parts.append(node_frame(metric, matrix, self.labels))
            comp_parts = self._components(start, end, step)
            n_series += sum(p["component"].nunique() for p in comp_parts)
            up_matrix = self._matrix("up", start, end, step, "up", extra=at_nodes)
            n_series += len(up_matrix)
            up = up_frame(up_matrix, self.labels)

        gpu = concat_frames(gpu_parts, GPU_COLUMNS)
        frames = FleetFrames(
            gpu=gpu,
            node=concat_frames(node_parts, NODE_COLUMNS),
            component=concat_frames(comp_parts, COMPONENT_COLUMNS),
            up=up,
            start=start,
            end=end,
            step=step,
        )
        samples = len(frames.gpu) + len(frames.node) + len(frames.component) + len(frames.up)
        self.last_stats = QueryStats(self._requests, n_series, samples, time.perf_counter() - t0)
        logger.debug("fetched %s", self.last_stats)
        return frames

    def reduce(self, plan: FeaturePlan, at: datetime) -> Reductions:
        """The plan's per-GPU reductions computed by the server: one instant query each.

        At the grid time at or before ``at`` (``storage.promql_reduce``); ``last_stats`` counts
        the requests and the series (one number each) that came back.
        """
        return self.reduce_at(plan, [at])[0]

    def reduce_at(self, plan: FeaturePlan, times: Sequence[datetime]) -> list[Reductions]:
        """:meth:`reduce` at each of ``times`` (evenly spaced grid times: a run of cycles, a
        fit's cycle ends), one range query per reduction for each run of fewer than
        :data:`~storage.promql_reduce.MAX_POINTS` of them (``reduce_promql_at``)."""
        t0 = time.perf_counter()
        self._requests = 0
        lookback = self.sample_window or plan.step
        size = MAX_POINTS - 1
        reduced = [
            table
            for i in range(0, len(times), size)
            for table in reduce_promql_at(
                self, plan, times[i : i + size], self.labels, lookback=lookback
            )
        ]
        n = sum(int(r.table.notna().to_numpy().sum()) for r in reduced)
        self.last_stats = QueryStats(self._requests, n, n, time.perf_counter() - t0)
        return reduced

    def _xid_class(
        self,
        name: str,
        start: datetime,
        end: datetime,
        step: timedelta,
        extra: Sequence[Matcher] = (),
    ) -> list[dict[str, Any]]:
        """The opt-in XID counter summed per GPU and class (hardware codes vs the rest).

        dcgm-exporter's ``DCGM_EXP_XID_ERRORS_COUNT`` has one series per GPU and XID code; summing
        over the ``xid`` label by class keeps one number per GPU. Absent counter: empty answers,
        and the features fall back to the last-XID gauge. Too large: by parts, as a GPU metric.
        """
        lookback = self.sample_window or step

        def build(select: Callable[[str], str]) -> str:
            return grid_series(name, lookback, select)

        return self._split(build, start, end, step, name, label=self.labels["node"], extra=extra)

    def _check_gpu_answer(
        self,
        metrics: Sequence[str],
        empty: list[str],
        unlabeled: int,
        start: datetime,
        end: datetime,
    ) -> None:
        """Refuse empty or half-empty GPU answers with a line saying what to check."""
        window = f"[{start.isoformat()}, {end.isoformat()}]"
        if len(empty) == len(metrics):
            raise MetricsSourceError(
                f"Prometheus at {self.url} has no DCGM series ({', '.join(metrics[:2])}, "
                f"...) in {window}: check that dcgm-exporter is scraped and the time (--at)"
            )
        missing = [m for m in self.required_metrics if m in empty]
        if missing:
            raise MetricsSourceError(
                f"Prometheus at {self.url} answered half-empty: no {', '.join(missing)} in {window} "
                f"although {len(metrics) - len(empty)} other DCGM metrics have data: "
                "check dcgm-exporter's counters (deploy/dcgm-exporter/counters.csv)"
            )
        if unlabeled:
            raise MetricsSourceError(
                f"Prometheus at {self.url}: {unlabeled} DCGM series have neither the "
                f"{self.labels['node']!r}/{self.labels['gpu']!r} labels nor an instance: set "
                "GPU_RISK_LABEL_MAP, e.g. {node: Hostname, gpu: gpu}"
            )
        optional = [m for m in empty if m not in self.required_metrics]
        if optional:
            logger.warning(
                "no data for %s at %s: deploy deploy/dcgm-exporter/counters.csv to get them",
                ", ".join(optional),
                self.url,
            )

    def _components(self, start: datetime, end: datetime, step: timedelta) -> list[pd.DataFrame]:
        """One query per component metric name: every component's PromQL joined with ``or``."""
        if self.topology is None or not self.topology.components:
            return []
        by_metric: dict[str, list[tuple[str, str]]] = {}
        for comp in self.topology.components.values():
            for name, promql in comp.metrics.items():
                by_metric.setdefault(name, []).append((comp.id, self.select(promql)))
        parts: list[pd.DataFrame] = []
        for name, members in sorted(by_metric.items()):
            for chunk in _chunks(members, _MAX_QUERY_CHARS):
                query = " or ".join(
                    f'label_replace(({q}), "{COMPONENT_LABEL}", "{_escape(cid)}", "", "")'
                    for cid, q in chunk
                )
                matrix = self._range(query, start, end, step, f"components' {name}")
                parts.append(component_frame(name, matrix))
        return parts


def _chunks(members: list[tuple[str, str]], limit: int) -> Iterable[list[tuple[str, str]]]:
    """Split (component, PromQL) pairs so one joined query stays under ``limit`` characters."""
    chunk: list[tuple[str, str]] = []
    size = 0
    for cid, q in members:
        cost = len(q) + len(cid) + 60
        if chunk and size + cost > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append((cid, q))
        size += cost
    if chunk:
        yield chunk


def _escape(value: str) -> str:
    """Escape a value for a PromQL double-quoted string."""
    return value.replace("\\", "\\\\").replace('"', '\\"')
