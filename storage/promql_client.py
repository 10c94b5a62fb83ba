"""The PromQL HTTP layer: one client, its retries, and every failure as one readable line.

:class:`PromQLClient` sends range and instant queries to a PromQL HTTP API (Prometheus,
VictoriaMetrics, Thanos, Mimir) through prometheus-api-client, with the series selector's
matchers available through :meth:`PromQLClient.select`. Every failure (unreachable, slow, TLS,
HTTP or PromQL error, not a Prometheus answer) is raised as one ``MetricsSourceError`` line saying
what failed, where, and what to check. What to query for a fetch is :mod:`storage.metrics`;
checking range answers sample by sample is :mod:`storage.promql_frames`. Credentials never leave
it: ``url`` and every message show the URL through ``storage.redact.redact_url``.
"""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import re
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, TypeVar

import orjson
import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.exceptions import InsecureRequestWarning
from urllib3.util.retry import Retry

from storage.promql_decode import decode_matrix
from storage.promql_frames import parse_matrix
from storage.promql_selector import SelectorError, parse_selector, with_matchers
from storage.redact import redact_text, redact_url
from storage.source import MetricsSourceError

__all__ = ["MAX_CONCURRENCY", "PromQLClient", "QueryTooLargeError", "Sample", "check_target"]

T = TypeVar("T")
R = TypeVar("R")

#: The most requests one client keeps in flight (``concurrency``): the pool of HTTP connections
#: requests keeps per host is 10, and a server queues what it cannot run at once.
MAX_CONCURRENCY = 10

# The records keep the logger name they had before the split (storage.metrics).
logger = logging.getLogger("storage.metrics")

#: One series of an instant vector: its labels and its value.
Sample = tuple[dict[str, str], float]

# How servers say a query reads more than they allow (Prometheus and Thanos --query.max-samples,
# VictoriaMetrics -search.maxSamplesPerQuery / -search.maxUniqueTimeseries, Grafana Mimir's
# per-query limits by their error ids, Cortex's "maximum number of ..." wording).
_TOO_LARGE = re.compile(
    r"too many samples|maxSamplesPerQuery|maxUniqueTimeseries|maxSeriesPerQuery"
    r"|err-mimir-max-[a-z-]+-per-query|maximum number of (?:chunks|series)",
    re.IGNORECASE,
)


_SERIES_LIMIT = re.compile(
    r"maxUniqueTimeseries|maxSeriesPerQuery|err-mimir-max-series-per-query"
    r"|maximum number of series",
    re.IGNORECASE,
)


def _decoded_by_orjson(response: requests.Response, *_: Any, **__: Any) -> requests.Response:
    """A requests response hook: the answer's ``json()`` decoded by orjson, not the standard
    library (the JSON of the raw series read was 15 % of a 10,000-GPU cold scan's time; orjson
    decoded a 9-MB answer of 10,000 series 1.4x faster, into the same lists, dicts, strings and
    floats). Invalid JSON raises ``orjson.JSONDecodeError``, a ``ValueError``, as ``requests``
    would raise its own. A range query's matrix is decoded into numpy where it can be
    (``storage.promql_decode``: each series' ``values`` an array, not a list of pairs)."""

    # a weak reference: the response holding a function that held the response would be a
    # reference cycle, and each answer's body (hundreds of MB at 100,000 GPUs) would wait for the
    # collector instead of going when its caller lets the response go
    ref = weakref.ref(response)

    def decode(**_: Any) -> Any:
        alive = ref()
        if alive is None:  # pragma: no cover - a caller calls json() on the response it holds
            raise ValueError("the response was let go before its answer was decoded")
        body = alive.content
        fast = decode_matrix(body)
        return fast if fast is not None else orjson.loads(body)

    response.json = decode  # type: ignore[method-assign]
    return response


class QueryTooLargeError(MetricsSourceError):
    """The server refused a query for reading more samples or series than it allows.

    ``series_limit``: the limit is on series (a shorter time range would not help).
    """

    def __init__(self, message: str, *, series_limit: bool = False) -> None:
        """Keep the one-line message and which kind of limit was hit."""
        super().__init__(message)
        self.series_limit = series_limit


def _duration(step: timedelta) -> str:
    """Render a timedelta as a PromQL duration (whole seconds, at least 1s)."""
    return f"{max(1, round(step.total_seconds()))}s"


def check_target(url: str, bearer_token: str | None, basic_auth: tuple[str, str] | None) -> None:
    """Refuse a URL that is not HTTP(S), and a bearer token together with basic auth."""
    if not url.startswith(("http://", "https://")):
        raise MetricsSourceError(
            f"Prometheus URL {url!r} must start with http:// or https:// "
            "(check GPU_RISK_PROMETHEUS_URL or --prometheus-url)"
        )
    if bearer_token and basic_auth:
        raise MetricsSourceError("set either a bearer token or basic auth for Prometheus")


class PromQLClient:
    """Range and instant PromQL queries over HTTP, with one-line errors.

    Parameters
    ----------
    url:
        Base URL of the PromQL API. Userinfo in it (``http://user:pass@host``) is sent as basic
        auth; ``self.url`` keeps only the redacted form for messages.
    bearer_token, basic_auth:
        Authentication: an ``Authorization: Bearer`` header, or a (user, password) pair.
    ca_file, verify_tls:
        TLS: a CA bundle to verify the server with, or no verification at all.
    timeout, retries:
        Seconds per request, and retries per request (exponential backoff, 0.5 s base) on
        connection errors, timeouts and 502/503/504.
    session:
        A requests session to send through (tests count requests with one).
    series_selector:
        Label matchers :meth:`select` adds to a plain selector (``{cluster="a"}``).
    headers:
        Extra HTTP headers on every request; an ``Authorization`` header here and a bearer token
        together are refused.
    concurrency:
        How many independent queries :meth:`map` keeps in flight at once (1: one after another).
        The server evaluates them side by side (Prometheus ``--query.max-concurrency``,
        VictoriaMetrics ``-search.maxConcurrentRequests``) while this process decodes the
        answers that came back.
    """

    def __init__(
        self,
        url: str,
        *,
        bearer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        ca_file: str | None = None,
        verify_tls: bool = True,
        timeout: float = 30.0,
        retries: int = 2,
        session: requests.Session | None = None,
        series_selector: str | None = None,
        headers: Mapping[str, str] | None = None,
        concurrency: int = 1,
    ) -> None:
        """Build the client; nothing is sent until a query."""
        check_target(url, bearer_token, basic_auth)
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise MetricsSourceError(
                f"PromQL concurrency must be between 1 and {MAX_CONCURRENCY}, got {concurrency} "
                "(check GPU_RISK_PROMETHEUS_CONCURRENCY)"
            )
        self.concurrency = concurrency
        self._count_lock = threading.Lock()
        self._local = threading.local()
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
        self.timeout = float(timeout)
        self._requests = 0
        sess = session if session is not None else requests.Session()
        if _decoded_by_orjson not in sess.hooks["response"]:  # once, however many clients share it
            sess.hooks["response"].append(_decoded_by_orjson)
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

    @property
    def concurrent_reads(self) -> bool:
        """Whether a caller may send a cycle's two reads (the raw window and the reductions)
        from two threads at once: the server computes one while this process decodes the other.
        Not at ``concurrency`` 1 (one request at a time, the user's choice)."""
        return self.concurrency > 1

    def select(self, promql: str) -> str:
        """``promql`` with the series selector's matchers when it is a plain selector."""
        return with_matchers(promql, self.matchers)[0]

    def map(self, ask: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[ask(item) for item in items]`` with up to ``concurrency`` of them in flight.

        For independent queries (a cycle's reductions): the answers come back in the order of
        ``items``. The first failure is raised (the queries not started yet are not sent), as
        one after another would have raised it.
        """
        todo = list(items)
        if self.concurrency == 1 or len(todo) < 2:
            return [ask(item) for item in todo]
        with (
            self._quiet(),
            ThreadPoolExecutor(
                min(self.concurrency, len(todo)), thread_name_prefix="promql"
            ) as pool,
        ):
            futures = [pool.submit(self._in_pool, ask, item) for item in todo]
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise

    def _in_pool(self, ask: Callable[[T], R], item: T) -> R:
        """Run ``ask(item)`` on a worker of :meth:`map` (the warning filter is the caller's)."""
        self._local.pooled = True
        return ask(item)

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Without TLS verification (the user's choice, logged once), no warning per request.

        ``warnings.catch_warnings`` is process-wide, not thread-safe: :meth:`map` enters it
        once around its workers, which then do not enter it themselves.
        """
        if getattr(self._local, "pooled", False):
            yield
            return
        with warnings.catch_warnings():
            if not self._verify:
                warnings.simplefilter("ignore", InsecureRequestWarning)
            yield

    def _send(self, label: str, call: Any) -> Any:
        """Send one request through the client; every failure becomes one MetricsSourceError."""
        with self._count_lock:
            self._requests += 1
        try:
            with self._quiet():
                return call()
        except PrometheusApiClientException as exc:
            code, body = _client_error(str(exc))
            message = self._http_error(code, body, label)
            text = body.decode("utf-8", "replace")
            if code == 422 and _TOO_LARGE.search(text):
                series = bool(_SERIES_LIMIT.search(text))
                raise QueryTooLargeError(message, series_limit=series) from None
            raise MetricsSourceError(message) from None
        except requests.exceptions.SSLError as exc:
            logger.debug("TLS failure: %s", redact_text(repr(exc)))
            raise MetricsSourceError(
                f"TLS handshake with Prometheus at {self.url} failed ({_reason(exc)}): set "
                "GPU_RISK_PROMETHEUS_CA_FILE to the server's CA, or GPU_RISK_PROMETHEUS_VERIFY_TLS"
                "=false on a trusted network"
            ) from None
        except (requests.exceptions.JSONDecodeError, orjson.JSONDecodeError, RecursionError):
            # not JSON, or absurdly deep
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
