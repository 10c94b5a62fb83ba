"""A cycle's reductions are asked side by side, up to the client's concurrency, in order.

A small HTTP server answers every instant query with one GPU whose value is the query's length,
and counts the requests in flight. With ``concurrency=2`` the first request waits (up to 20 s)
for a second one to arrive, so a client that sends them one after another fails with a timeout
of the server's own making rather than passing by luck; with ``concurrency=1`` no two overlap.
Either way each reduction's column holds its own query's answer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from analysis.feature_plan import FeaturePlan
from analysis.features import DEFAULT_RECENT, DEFAULT_WINDOW
from storage.metrics import PrometheusSource
from storage.promql_reduce import gated_reductions, render
from storage.promql_selector import Matcher, with_matchers
from storage.promql_split import node_matcher
from storage.source import MetricsSourceError

AT = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
PLAN = FeaturePlan(DEFAULT_WINDOW, DEFAULT_RECENT, timedelta(minutes=1))


class Counting(ThreadingHTTPServer):
    """Answers instant queries; remembers the most requests it had in flight at once."""

    daemon_threads = True

    def __init__(self, wait_for_pair: bool, fail: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.wait_for_pair = wait_for_pair
        self.fail = fail
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.paired = threading.Event()
        self.queries: list[str] = []


class Handler(BaseHTTPRequestHandler):
    server: Counting

    def log_message(self, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        srv = self.server
        query = parse_qs(urlparse(self.path).query)["query"][0]
        with srv.lock:
            srv.in_flight += 1
            srv.peak = max(srv.peak, srv.in_flight)
            srv.queries.append(query)
            if srv.in_flight >= 2:
                srv.paired.set()
        try:
            if srv.fail:
                answer = (422, {"status": "error", "error": "parse error: reduction refused"})
            elif srv.wait_for_pair and not srv.paired.wait(20):
                answer = (503, {"status": "error", "error": "never two requests at once"})
            else:
                sample = {
                    "metric": {"Hostname": "n1", "gpu": "0"},
                    "value": [AT.timestamp(), str(len(query))],
                }
                result = {"resultType": "vector", "result": [sample]}
                answer = (200, {"status": "success", "data": result})
        finally:
            # out of flight before the answer leaves: the client's next request on the same
            # worker can only come after it, so the count never exceeds the client's
            with srv.lock:
                srv.in_flight -= 1
        self._send(*answer)

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(params=[False, True], ids=["one-at-a-time", "side-by-side"])
def server(request: pytest.FixtureRequest) -> Iterator[Counting]:
    srv = Counting(wait_for_pair=request.param)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def _select(promql: str, matchers: tuple[Matcher, ...]) -> str:
    return with_matchers(promql, matchers)[0]


def test_the_reductions_are_in_flight_together_and_come_back_in_order(server: Counting) -> None:
    concurrency = 2 if server.wait_for_pair else 1
    url = f"http://127.0.0.1:{server.server_address[1]}"
    source = PrometheusSource(url, retries=0, concurrency=concurrency)
    table = source.reduce(PLAN, AT).table
    assert server.peak == concurrency
    assert source.last_stats is not None and source.last_stats.requests == len(server.queries)
    keep = "Hostname, gpu, instance"
    gated = gated_reductions(PLAN)
    # every answer is positive: each gate finds its metric changed on n1, the one node there is
    on_n1 = (node_matcher("Hostname", {"n1"}),)
    for red in PLAN.reductions:
        if red.codes is None:  # each column is its own query's answer, whatever came back first
            select = partial(_select, matchers=on_n1 if red in gated else ())
            sent = f"max by ({keep}) ({render(red, PLAN, select)})"
            assert sent in server.queries, red.name
            assert table.loc["n1/0", red.name] == len(sent), red.name
    assert sum("changes(" in q for q in server.queries) == len({r.metric for r in gated})


def test_a_failing_reduction_fails_the_cycle_with_its_one_line() -> None:
    srv = Counting(wait_for_pair=False, fail=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        source = PrometheusSource(url, retries=0, concurrency=4)
        with pytest.raises(MetricsSourceError, match=r"^Prometheus at .*reduction refused"):
            source.reduce(PLAN, AT)
        assert 1 <= len(srv.queries) <= len(PLAN.reductions)
    finally:
        srv.shutdown()
        srv.server_close()


def test_concurrency_out_of_range_is_a_clear_error() -> None:
    with pytest.raises(MetricsSourceError, match="GPU_RISK_PROMETHEUS_CONCURRENCY"):
        PrometheusSource("http://127.0.0.1:9", concurrency=0)
