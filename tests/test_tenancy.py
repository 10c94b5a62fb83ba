"""One cluster of a shared, multi-tenant PromQL store: the series selector and tenant headers.

A real VictoriaMetrics holds two clusters' series (``cluster="a"``: the hand-written fleet;
``cluster="b"``: the same fleet with ``b-node-`` hosts). VictoriaMetrics ignores
``X-Scope-OrgID``, so a counting session asserts the header goes out with every request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from bot.config import ConfigError, load_settings
from bot.wiring import build_source, discover_topology_of
from storage.metrics import PrometheusSource, with_matchers
from storage.source import MetricsSourceError
from storage.topology import load_topology
from tests.fixtures import fleetdata as fd
from tests.fixtures.prometheus import (
    Dataset,
    Server,
    openmetrics_to_prometheus_text,
    start_victoria,
)
from tests.test_discovery import LABELS, kube_node_lines, post_lines

pytest_plugins = ("tests.fixtures.prometheus",)

SELECTOR = '{cluster="a"}'
HEADERS = {"X-Scope-OrgID": "tenant-a"}


class HeaderSession(requests.Session):
    """A real session recording each request's query and headers."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, dict[str, str]]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Record, then send."""
        params = kwargs.get("params") or {}
        self.sent.append((str(params.get("query", url)), dict(kwargs.get("headers") or {})))
        return super().request(method, url, *args, **kwargs)


def with_cluster(lines: list[str], cluster: str, rename: str = "") -> list[str]:
    """Add ``cluster="<cluster>"`` to each exposition line; rename gpu-node- hosts."""
    out = []
    for line in lines:
        series, value, ts = line.rsplit(" ", 2)
        if series.endswith("}"):
            series = f'{series[:-1]},cluster="{cluster}"}}'
        else:
            series = f'{series}{{cluster="{cluster}"}}'
        if rename:
            series = series.replace("gpu-node-", rename)
        out.append(f"{series} {value} {ts}")
    return out


@pytest.fixture(scope="module")
def two_clusters(
    tmp_path_factory: pytest.TempPathFactory, fleet_dataset: Dataset
) -> Iterator[Server]:
    """VictoriaMetrics with cluster a's and cluster b's fleet and node labels."""
    server = start_victoria(tmp_path_factory.mktemp("vm-tenants") / "vmdata")
    try:
        text = fleet_dataset.openmetrics.read_text(encoding="utf-8")
        lines = list(openmetrics_to_prometheus_text(text))
        post_lines(server, with_cluster(lines, "a"))
        post_lines(server, with_cluster(lines, "b", rename="b-node-"))
        post_lines(server, kube_node_lines('cluster="a"'))
        post_lines(server, kube_node_lines('cluster="b"', rename="b-node-"))
        yield server
    finally:
        server.stop()


WINDOW = (fd.SCAN_AT - fd.STEP * 30, fd.SCAN_AT)


@pytest.mark.victoriametrics
def test_selector_keeps_one_cluster_and_headers_go_with_every_request(
    two_clusters: Server, fleet_dataset: Dataset
) -> None:
    session = HeaderSession()
    src = PrometheusSource(
        two_clusters.url,
        topology=load_topology(fleet_dataset.topology),
        retries=0,
        session=session,
        series_selector=SELECTOR,
        headers=HEADERS,
        bearer_token="tenant-token",
    )
    frames = src.fetch(*WINDOW, fd.STEP)
    assert len(frames.gpus) == 16
    assert {g.node for g in frames.gpus} == {n for ns in fd.RACKS.values() for n in ns}
    assert set(frames.node["node"]) <= {n for ns in fd.RACKS.values() for n in ns}
    # one series per component (cluster b's PDU with the same pdu label is not joined in)
    per_ts = frames.component.groupby(["component", "metric", "ts"]).size()
    assert set(frames.component["component"]) == {"pdu-a1", "pdu-a2", "crac-1", "crac-2"}
    assert per_ts.max() == 1
    assert session.sent
    for query, headers in session.sent:
        assert 'cluster="a"' in query, query
        assert headers["X-Scope-OrgID"] == "tenant-a"
        assert headers["Authorization"] == "Bearer tenant-token"


@pytest.mark.victoriametrics
def test_without_a_selector_both_clusters_mix(two_clusters: Server) -> None:
    src = PrometheusSource(two_clusters.url, retries=0)
    assert len(src.fetch(*WINDOW, fd.STEP).gpus) == 32


@pytest.mark.victoriametrics
def test_settings_carry_selector_and_headers_to_reader_and_discovery(
    two_clusters: Server,
) -> None:
    settings = load_settings(
        prometheus_url=two_clusters.url,
        series_selector=SELECTOR,
        prometheus_headers=HEADERS,
        topology_labels=LABELS,
        prometheus_retries=0,
    )
    src = build_source(settings, None)
    assert isinstance(src, PrometheusSource)
    assert src.matchers == (("cluster", "=", '"a"'),)
    found = discover_topology_of(settings, at=fd.SCAN_AT)
    assert {r.id: r.nodes for r in found.topology.racks} == fd.RACKS
    assert found.notes == ()


def test_selector_rule_for_component_promql() -> None:
    m = (("cluster", "=", '"a"'),)
    assert with_matchers('pdu_output_watts{pdu="p1"}', m) == (
        'pdu_output_watts{pdu="p1", cluster="a"}',
        True,
    )
    assert with_matchers('x{cluster="b"}', m) == ('x{cluster="b"}', True)  # written one wins
    assert with_matchers("sum(rate(x[5m]))", m) == ("sum(rate(x[5m]))", False)


def test_bad_selector_and_header_conflicts_are_one_line() -> None:
    with pytest.raises(ConfigError, match="series_selector"):
        load_settings(series_selector="cluster=a")
    with pytest.raises(MetricsSourceError, match="Authorization header and a bearer token"):
        PrometheusSource(
            "http://127.0.0.1:9", headers={"authorization": "Basic x"}, bearer_token="t"
        )


@pytest.mark.victoriametrics
def test_reductions_keep_one_cluster_and_send_the_headers(two_clusters: Server) -> None:
    """The feature plan's reductions read cluster a only, with the tenant headers on each query."""
    import pandas as pd

    from analysis.feature_plan import FeaturePlan
    from analysis.features import DEFAULT_RECENT, DEFAULT_WINDOW
    from analysis.reduce_frames import reduce_frames

    session = HeaderSession()
    src = PrometheusSource(
        two_clusters.url, retries=0, session=session, series_selector=SELECTOR, headers=HEADERS
    )
    plan = FeaturePlan(DEFAULT_WINDOW, DEFAULT_RECENT, fd.STEP)
    reduced = src.reduce(plan, fd.SCAN_AT)
    nodes = {k.rpartition("/")[0] for k in reduced.table.index}
    assert nodes == {n for ns in fd.RACKS.values() for n in ns}  # no b-node-
    # the same numbers as reducing cluster a's raw window in memory
    frames = src.fetch(fd.SCAN_AT - DEFAULT_WINDOW, fd.SCAN_AT, fd.STEP)
    pd.testing.assert_frame_equal(
        reduced.table, reduce_frames(frames.gpu, plan, fd.SCAN_AT), rtol=1e-9, atol=1e-9
    )
    assert session.sent
    for query, headers in session.sent:
        assert 'cluster="a"' in query, query
        assert headers["X-Scope-OrgID"] == "tenant-a"
