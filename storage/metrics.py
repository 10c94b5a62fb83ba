"""Read the fleet from Prometheus (or any PromQL API: VictoriaMetrics, Thanos, Mimir).

One range query per metric for the whole fleet, never one per node or GPU, so the number of
requests of a fetch does not depend on the fleet's size. Results become the tidy frames of
``analysis.types.FleetFrames``. Every failure (unreachable, slow, HTTP or PromQL error, empty or
malformed answer) is raised as one ``MetricsSourceError`` line saying what failed, where, and
what to check.

This module is the HTTP/query layer (client, retries, errors, the queries a fetch sends); checking
the answers sample by sample and turning them into frames is :mod:`storage.promql_frames`.
Credentials never leave it: ``PrometheusSource.url`` and every message show the URL through
``storage.redact.redact_url`` (``http://***@host``).
"""

from __future__ import annotations

import ast
import json
import logging
import re
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.exceptions import InsecureRequestWarning
from urllib3.util.retry import Retry

from analysis.catalog import (
    DCGM_METRICS,
    HARDWARE_XIDS,
    NODE_METRICS,
    XID_COUNT,
    XID_HARDWARE_COUNT,
    XID_OTHER_COUNT,
    xid_regex,
)
from analysis.types import (
    COMPONENT_COLUMNS,
    GPU_COLUMNS,
    NODE_COLUMNS,
    FleetFrames,
    Topology,
)
from storage.promql_frames import (
    COMPONENT_LABEL,
    component_frame,
    concat_frames,
    gpu_frame,
    node_frame,
    parse_matrix,
    strip_port,
    up_frame,
)
from storage.redact import redact_text, redact_url
from storage.source import MetricsSourceError

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


@dataclass(frozen=True)
class QueryStats:
    """What the last fetch cost: requests sent and series/samples received."""

    requests: int
    series: int
    samples: int
    seconds: float


# --------------------------------------------------------------------------- series selector
# GPU_RISK_SERIES_SELECTOR ('{cluster="a"}') is a list of label matchers added to every metric
# selector the reader sends (DCGM, node, up, the XID counter, label discovery), and to a
# topology component's PromQL when that PromQL is a plain selector (``name`` or ``name{...}``);
# any other PromQL (functions, operators) is sent as written: put the matchers in it yourself.
# A matcher on a label the selector already constrains is not added (the written one wins).

_MATCHER = re.compile(
    r"""\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*"""
)
_PLAIN = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(?:\{(.*)\})?\s*$", re.DOTALL)

Matcher = tuple[str, str, str]
#: One series of an instant vector: its labels and its value.
Sample = tuple[dict[str, str], float]
#: kube-state-metrics: 1 while a node is cordoned (``kubectl cordon``/``drain``), else 0.
CORDON_METRIC = "kube_node_spec_unschedulable"


class SelectorError(ValueError):
    """A series selector is not a list of PromQL label matchers."""


def _matchers(inner: str) -> list[Matcher]:
    """Parse ``a="x", b=~"y"`` (no braces) into (label, op, double-quoted value); raise ValueError."""
    out: list[Matcher] = []
    pos, text = 0, inner.strip().rstrip(",")
    while pos < len(text):
        m = _MATCHER.match(text, pos)
        if m is None:
            raise SelectorError(f"cannot read a label matcher at {text[pos : pos + 40]!r}")
        value = m.group(3)
        if value.startswith("'"):
            value = '"' + value[1:-1].replace("\\'", "'").replace('"', '\\"') + '"'
        out.append((m.group(1), m.group(2), value))
        pos = m.end()
        if pos < len(text):
            if text[pos] != ",":
                raise SelectorError(f"expected ',' between matchers at {text[pos : pos + 40]!r}")
            pos += 1
    return out


def parse_selector(text: str | None) -> tuple[Matcher, ...]:
    """Parse a series selector such as ``{cluster="a", env=~"prod|stage"}`` (braces optional).

    Returns the matchers as (label, operator, double-quoted value); empty for None or ``{}``.
    Raises SelectorError (a ValueError) with what is wrong.
    """
    if text is None or not text.strip():
        return ()
    body = text.strip()
    if body.startswith("{"):
        if not body.endswith("}"):
            raise SelectorError(f"{text!r}: a selector in braces must end with '}}'")
        body = body[1:-1]
    try:
        return tuple(_matchers(body))
    except SelectorError as exc:
        raise SelectorError(
            f'{text!r} is not a list of label matchers ({exc}): write e.g. {{cluster="a"}}'
        ) from None


def with_matchers(promql: str, matchers: Sequence[Matcher]) -> tuple[str, bool]:
    """Add ``matchers`` to ``promql`` when it is a plain selector; return (query, applied).

    ``metric`` becomes ``metric{m}``, ``metric{a="x"}`` becomes ``metric{a="x",m}``; a matcher
    on a label the selector already names is left out. Anything else is returned unchanged with
    ``applied`` False (and True when there is nothing to add).
    """
    if not matchers:
        return promql, True
    m = _PLAIN.match(promql)
    if m is None or (m.group(1) is None and m.group(2) is None):
        return promql, False
    try:
        own = _matchers(m.group(2) or "")
    except SelectorError:
        return promql, False
    named = {label for label, _, _ in own}
    added = [f"{label}{op}{value}" for label, op, value in matchers if label not in named]
    parts = [f"{label}{op}{value}" for label, op, value in own] + added
    return f"{m.group(1) or ''}{{{', '.join(parts)}}}", True


def _duration(step: timedelta) -> str:
    """Render a timedelta as a PromQL duration (whole seconds, at least 1s)."""
    return f"{max(1, round(step.total_seconds()))}s"


class PrometheusSource:
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
    """

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
    ) -> None:
        """Build the client; nothing is sent until ``fetch``."""
        if not url.startswith(("http://", "https://")):
            raise MetricsSourceError(
                f"Prometheus URL {url!r} must start with http:// or https:// "
                "(check GPU_RISK_PROMETHEUS_URL or --prometheus-url)"
            )
        if bearer_token and basic_auth:
            raise MetricsSourceError("set either a bearer token or basic auth for Prometheus")
        unknown = set(label_map or {}) - set(DEFAULT_LABEL_MAP)
        if unknown:
            raise MetricsSourceError(
                f"label map has unknown key(s) {sorted(unknown)}; allowed: "
                f"{', '.join(DEFAULT_LABEL_MAP)} (check GPU_RISK_LABEL_MAP)"
            )
        try:
            self.matchers = parse_selector(series_selector)
        except SelectorError as exc:
            raise MetricsSourceError(f"{exc} (check GPU_RISK_SERIES_SELECTOR)") from None
        extra = {str(k): str(v) for k, v in (headers or {}).items()}
        if bearer_token and any(k.lower() == "authorization" for k in extra):
            raise MetricsSourceError(
                "an Authorization header and a bearer token are both set for Prometheus: keep "
                "one (GPU_RISK_PROMETHEUS_HEADERS or GPU_RISK_PROMETHEUS_BEARER_TOKEN)"
            )
        self._url = url.rstrip("/")
        self.url = redact_url(self._url)
        self.topology = topology
        self.timeout = float(timeout)
        self.labels = {**DEFAULT_LABEL_MAP, **(label_map or {})}
        self.gpu_metrics = tuple(gpu_metrics)
        self.node_metrics = tuple(node_metrics)
        self.required_metrics = tuple(required_metrics)
        self.sample_window = sample_window
        self.last_stats: QueryStats | None = None
        self._requests = 0
        sess = session if session is not None else requests.Session()
        sess.verify = ca_file if ca_file else verify_tls
        self._verify = bool(ca_file) or verify_tls
        if not self._verify:
            logger.warning("TLS verification of %s is off (verify_tls=False)", self.url)
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            backoff_factor=0.5,
            status_forcelist=(502, 503, 504),
            allowed_methods=frozenset({"GET", "POST"}),
            raise_on_status=False,
        )
        if bearer_token:
            extra["Authorization"] = f"Bearer {bearer_token}"
        self._client = PrometheusConnect(
            url=self._url,
            headers=extra or None,
            retry=retry,
            auth=basic_auth,
            session=sess,
            timeout=self.timeout,  # type: ignore[arg-type]
        )

    # ------------------------------------------------------------------ queries

    def query_range(
        self, query: str, start: datetime, end: datetime, step: timedelta, *, what: str = ""
    ) -> list[dict[str, Any]]:
        """Run one PromQL range query; return its checked matrix or raise MetricsSourceError."""
        label = what or query
        result = self._send(
            label,
            lambda: self._client.custom_query_range(
                query=query, start_time=start, end_time=end, step=_duration(step)
            ),
        )
        answer = {"status": "success", "data": {"resultType": "matrix", "result": result}}
        return parse_matrix(answer, f"Prometheus at {self.url} answered {label!r}")

    def query(self, query: str, at: datetime | None = None, *, what: str = "") -> list[Sample]:
        """Run one PromQL instant query (at ``at``, default now); return (labels, value) pairs.

        The query is sent as written (apply :meth:`select` to a metric name first). Errors are
        the same one-line MetricsSourceError as :meth:`query_range`.
        """
        label = what or query
        params = {"time": f"{at.timestamp():.3f}"} if at is not None else None
        result = self._send(label, lambda: self._client.custom_query(query=query, params=params))
        where = f"Prometheus at {self.url} answered {label!r}"
        if not isinstance(result, list):
            raise MetricsSourceError(f"{where} with {type(result).__name__}, not a vector")
        out: list[Sample] = []
        for item in result:
            metric = item.get("metric") if isinstance(item, dict) else None
            value = item.get("value") if isinstance(item, dict) else None
            if not isinstance(metric, dict) or not isinstance(value, list) or len(value) != 2:
                raise MetricsSourceError(
                    f"{where} with a series that is not an instant sample: check that the query "
                    "returns an instant vector"
                )
            try:
                number = float(value[1])
            except (TypeError, ValueError):
                raise MetricsSourceError(f"{where} with a non-numeric sample") from None
            out.append(({str(k): str(v) for k, v in metric.items()}, number))
        return out

    def select(self, promql: str) -> str:
        """``promql`` with the series selector's matchers when it is a plain selector."""
        return with_matchers(promql, self.matchers)[0]

    def cordoned(self, at: datetime) -> frozenset[str]:
        """Nodes cordoned at ``at``: kube-state-metrics' ``kube_node_spec_unschedulable == 1``.

        Its ``node`` label is the Kubernetes node name, which is the DCGM ``Hostname`` the GPU
        frames use. No such series (no kube-state-metrics, nothing cordoned) = none cordoned.
        One instant query, with the series selector's matchers.
        """
        query = f"{self.select(CORDON_METRIC)} == 1"
        samples = self.query(query, at, what=CORDON_METRIC)
        return frozenset(labels["node"] for labels, _ in samples if labels.get("node"))

    def _send(self, label: str, call: Any) -> Any:
        """Send one request through the client; every failure becomes one MetricsSourceError."""
        self._requests += 1
        try:
            with warnings.catch_warnings():
                if not self._verify:  # the user chose no verification: say it once, not per query
                    warnings.simplefilter("ignore", InsecureRequestWarning)
                return call()
        except PrometheusApiClientException as exc:
            code, body = _client_error(str(exc))
            raise MetricsSourceError(self._http_error(code, body, label)) from None
        except requests.exceptions.SSLError as exc:
            logger.debug("TLS failure: %s", redact_text(repr(exc)))
            raise MetricsSourceError(
                f"TLS handshake with Prometheus at {self.url} failed ({_reason(exc)}): set "
                "GPU_RISK_PROMETHEUS_CA_FILE to the server's CA, or GPU_RISK_PROMETHEUS_VERIFY_TLS"
                "=false on a trusted network"
            ) from None
        except (requests.exceptions.JSONDecodeError, RecursionError):  # not JSON, or absurdly deep
            raise MetricsSourceError(
                f"Prometheus at {self.url} answered {label!r} with something that is not a "
                f"Prometheus API response (invalid JSON): check the URL points at the "
                "PromQL API (not Grafana or a proxy login page)"
            ) from None
        except requests.exceptions.RequestException as exc:
            logger.debug("request failure: %s", redact_text(repr(exc)))
            if _timed_out(exc):
                raise MetricsSourceError(
                    f"Prometheus at {self.url} did not answer {label!r} within {self.timeout:g}s: "
                    "it is overloaded or the window is too large; raise GPU_RISK_PROMETHEUS_TIMEOUT "
                    "or check the server"
                ) from None
            raise MetricsSourceError(
                f"cannot reach Prometheus at {self.url} ({_reason(exc)}): check "
                "GPU_RISK_PROMETHEUS_URL / --prometheus-url and that the server is running"
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            # urllib3 refuses some URLs with ValueError; JSON without data/result
            logger.debug("unexpected answer: %s", redact_text(repr(exc)))
            raise MetricsSourceError(
                f"Prometheus at {self.url} answered {label!r} with something that is not a "
                f"Prometheus API response ({type(exc).__name__}): check the URL points at the "
                "PromQL API (not Grafana or a proxy login page)"
            ) from None

    def _http_error(self, code: int, body: bytes, what: str) -> str:
        """Turn an HTTP error answer into one readable line (with Prometheus' error, if any)."""
        detail = ""
        try:
            error = json.loads(body).get("error")
        except (ValueError, RecursionError, AttributeError):
            error = None
        if isinstance(error, str):
            detail = " ".join(redact_text(error).split())
            detail = detail if len(detail) <= 200 else detail[:197] + "..."
        if code in (401, 403):
            return (
                f"Prometheus at {self.url} refused the request (HTTP {code}): check "
                "GPU_RISK_PROMETHEUS_BEARER_TOKEN or GPU_RISK_PROMETHEUS_USERNAME/PASSWORD"
            )
        if code in (400, 422):
            return (
                f"Prometheus at {self.url} rejected the query {what!r} (HTTP {code}"
                f"{': ' + detail if detail else ''}): check the PromQL (topology components, "
                "label map)"
            )
        if code == 404:
            return (
                f"Prometheus at {self.url} has no /api/v1/query_range (HTTP 404): check the URL "
                "(it should be the server's base URL, with any path prefix it is served under)"
            )
        return (
            f"Prometheus at {self.url} failed on {what!r} (HTTP {code or '?'}"
            f"{': ' + detail if detail else ''}): check the server's health and logs"
        )

    def _matrix(
        self, query: str, start: datetime, end: datetime, step: timedelta, what: str
    ) -> list[dict[str, Any]]:
        """Query the last sample per step of a metric selector (no lookback padding over gaps)."""
        # (t - window, t]: Prometheus 2.x range windows are closed on the left, so shave 1 ms
        # off, or a one-step gap would be papered over by the sample one step earlier.
        window = self._window(step)
        query = self.select(query)
        return self.query_range(f"last_over_time({query}[{window}])", start, end, step, what=what)

    def _window(self, step: timedelta) -> str:
        """The lookback of one step's last sample, ``(t - window, t]`` (1 ms shaved, see above)."""
        ms = max(1, round((self.sample_window or step).total_seconds() * 1000) - 1)
        return f"{ms}ms"

    # ------------------------------------------------------------------ fetch

    def fetch(self, start: datetime, end: datetime, step: timedelta) -> FleetFrames:
        """Return the fleet's GPU, node, component and ``up`` frames for [start, end] at ``step``."""
        if end <= start:
            raise MetricsSourceError(f"empty time window: start {start} is not before end {end}")
        t0 = time.perf_counter()
        self._requests = 0
        n_series = 0
        gpu_parts: list[pd.DataFrame] = []
        empty: list[str] = []
        unlabeled = 0
        for metric in self.gpu_metrics:
            matrix = self._matrix(metric, start, end, step, metric)
            n_series += len(matrix)
            if not matrix:
                empty.append(metric)
                continue
            part, bad = gpu_frame(metric, matrix, self.labels)
            unlabeled += bad
            if part is not None:
                gpu_parts.append(part)
        self._check_gpu_answer(empty, unlabeled, start, end)
        for name, query in self._xid_class_queries(step):
            matrix = self.query_range(query, start, end, step, what=name)
            n_series += len(matrix)
            part, _ = gpu_frame(name, matrix, self.labels) if matrix else (None, 0)
            if part is not None:
                gpu_parts.append(part)

        node_parts: list[pd.DataFrame] = []
        for metric in self.node_metrics:
            matrix = self._matrix(metric, start, end, step, metric)
            n_series += len(matrix)
            if matrix:
                node_parts.append(node_frame(metric, matrix, self.labels))

        comp_parts = self._components(start, end, step)
        n_series += sum(p["component"].nunique() for p in comp_parts)

        up_matrix = self._matrix("up", start, end, step, "up")
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

    def _xid_class_queries(self, step: timedelta) -> list[tuple[str, str]]:
        """The opt-in XID counter summed per GPU and class (hardware codes vs the rest).

        dcgm-exporter's ``DCGM_EXP_XID_ERRORS_COUNT`` has one series per GPU and XID code; summing
        over the ``xid`` label by class keeps one number per GPU. Absent counter: empty answers,
        and the features fall back to the last-XID gauge.
        """
        window = self._window(step)
        hardware = xid_regex(HARDWARE_XIDS)
        hw = self.select(f'{XID_COUNT}{{xid=~"{hardware}"}}')
        other = self.select(f'{XID_COUNT}{{xid!~"{hardware}"}}')
        return [
            (XID_HARDWARE_COUNT, f"sum without (xid) (last_over_time({hw}[{window}]))"),
            (XID_OTHER_COUNT, f"sum without (xid) (last_over_time({other}[{window}]))"),
        ]

    def _check_gpu_answer(
        self, empty: list[str], unlabeled: int, start: datetime, end: datetime
    ) -> None:
        """Refuse empty or half-empty GPU answers with a line saying what to check."""
        window = f"[{start.isoformat()}, {end.isoformat()}]"
        if len(empty) == len(self.gpu_metrics):
            raise MetricsSourceError(
                f"Prometheus at {self.url} has no DCGM series ({', '.join(self.gpu_metrics[:2])}, "
                f"...) in {window}: check that dcgm-exporter is scraped and the time (--at)"
            )
        missing = [m for m in self.required_metrics if m in empty]
        if missing:
            raise MetricsSourceError(
                f"Prometheus at {self.url} answered half-empty: no {', '.join(missing)} in {window} "
                f"although {len(self.gpu_metrics) - len(empty)} other DCGM metrics have data: "
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
                matrix = self.query_range(query, start, end, step, what=f"components' {name}")
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


def _client_error(text: str) -> tuple[int, bytes]:
    """Split prometheus-api-client's ``HTTP Status Code N (b'body')`` into code and body."""
    m = re.match(r"HTTP Status Code (\d+) \((b(['\"]).*\3)\)\s*$", text, re.DOTALL)
    if m is None:
        found = re.search(r"HTTP Status Code (\d+)", text)
        return (int(found.group(1)) if found else 0), b""
    try:
        body = ast.literal_eval(m.group(2))
    except (ValueError, SyntaxError):
        body = b""
    return int(m.group(1)), body if isinstance(body, bytes) else b""


def _timed_out(exc: BaseException) -> bool:
    """True when a requests/urllib3 failure is a timeout (also when wrapped by retries)."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, requests.exceptions.Timeout | TimeoutError):
            return True
        name = type(e).__name__
        if "Timeout" in name:
            return True
        if isinstance(e, BaseException):
            stack.extend([e.__cause__, e.__context__, getattr(e, "reason", None), *e.args])
    return False


def _reason(exc: BaseException) -> str:
    """A short human reason for a connection failure (refused, DNS, reset...)."""
    text = str(exc)
    for needle, say in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "host name not found"),
        ("nodename nor servname", "host name not found"),
        ("Temporary failure in name resolution", "host name not found"),
        ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed"),
        ("Connection reset", "connection reset"),
        ("RemoteDisconnected", "server closed the connection"),
    ):
        if needle in text:
            return say
    return type(exc).__name__
