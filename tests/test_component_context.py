"""The vectorised component context equals the per-node loop it replaced, cell for cell."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import timedelta

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from analysis import context
from analysis.catalog import COMPONENT_KINDS
from analysis.context import component_context, component_stats

AT = pd.Timestamp("2026-11-20T12:00:00Z")


def _reference(stats: pd.DataFrame, graph: nx.DiGraph, nodes: Sequence[str]) -> pd.DataFrame:
    """The component context as it was computed before it was vectorised (one node at a time)."""
    rows: dict[str, dict[str, float]] = {}
    columns: set[str] = set()
    per_comp: dict[str, dict[str, float]] = {}
    for (cid, metric), rec in stats.iterrows():
        if cid not in graph:
            continue
        kind = str(graph.nodes[cid].get("kind"))
        if kind not in COMPONENT_KINDS:
            continue
        vals = per_comp.setdefault(str(cid), {})
        base = f"{kind}.{metric}"
        if bool(rec["counter"]):
            vals[f"{base}.rate"] = float(rec["rate"])
            vals[f"{base}.sustained"] = float(rec["sustained"])
            vals[f"{base}.excess"] = float(rec["excess"])
        else:
            vals[base] = float(rec["level"])
            vals[f"{base}.min"] = float(rec["min"])
            vals[f"{base}.max"] = float(rec["max"])
    for vals in per_comp.values():
        columns.update(vals)
    for node in nodes:
        acc: dict[str, list[float]] = {}
        if node in graph:
            for pred in graph.predecessors(node):
                for col, value in per_comp.get(str(pred), {}).items():
                    acc.setdefault(col, []).append(value)
        with warnings.catch_warnings():  # np.nanmean of only NaN: 'Mean of empty slice'
            warnings.simplefilter("ignore", RuntimeWarning)
            rows[node] = {col: float(np.nanmean(v)) for col, v in acc.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index").reindex(
        index=list(nodes), columns=sorted(columns)
    )
    return frame.astype(float)


def _fleet(n_pdus_per_node: int = 2) -> tuple[pd.DataFrame, nx.DiGraph, list[str]]:
    """Components with gaps: a PDU without recent samples, a metric only some components have,
    a counter reset, NaN values, a component outside the graph, a rack (not a component kind)
    upstream, nodes with several PDUs (dual feed) and a node with no component or not in the
    graph at all."""
    rng = np.random.default_rng(7)
    graph = nx.DiGraph()
    nodes = [f"n{i}" for i in range(6)]
    for n in nodes[:-1]:  # the last node is not in the graph
        graph.add_node(n, kind="node")
    graph.add_node("rack-1", kind="rack")
    pdus = [f"pdu-{i}" for i in range(max(3, n_pdus_per_node))]
    for p in pdus:
        graph.add_node(p, kind="pdu")
    graph.add_node("crah-1", kind="cooling")
    graph.add_node("leaf-1", kind="switch")
    graph.add_node("leaf-2", kind="switch")
    for i, n in enumerate(nodes[:4]):
        graph.add_edge("rack-1", n)
        for k in range(n_pdus_per_node):
            graph.add_edge(pdus[(i + k) % len(pdus)], n)
        graph.add_edge("crah-1" if i % 2 else "leaf-2", n)
        graph.add_edge("leaf-1", n)
    # nodes[4]: in the graph, no component upstream
    ts = pd.date_range(AT - timedelta(minutes=29), AT, freq="1min")
    rows = []
    for comp, metrics in (
        *((p, ("output_watts", "output_volts")) for p in pdus),
        ("crah-1", ("supply_temp", "fan_errors_total")),
        ("leaf-1", ("port_errors_total", "link_drops")),
        ("leaf-2", ("port_errors_total",)),
        ("ghost", ("output_watts",)),  # not in the graph
    ):
        for metric in metrics:
            vals = rng.normal(100.0, 5.0, len(ts))
            if "total" in metric or "drop" in metric:
                vals = np.cumsum(rng.poisson(2.0, len(ts))).astype(float)
                vals[15:] -= vals[15]  # a counter reset
            if comp == "pdu-1":
                vals[3] = np.nan
            stamps = ts
            if comp == "pdu-2":
                stamps = ts[:10]  # no recent sample: the level is NaN
                vals = vals[:10]
            rows += [(comp, metric, t, v) for t, v in zip(stamps, vals, strict=True)]
    component = pd.DataFrame(rows, columns=["component", "metric", "ts", "value"])
    return component, graph, nodes


@pytest.mark.parametrize("n_pdus", [1, 2, 3])
def test_component_context_equals_the_per_node_loop(n_pdus: int) -> None:
    component, graph, nodes = _fleet(n_pdus)
    stats = component_stats(component, AT, timedelta(minutes=30), timedelta(minutes=10))
    got = component_context(stats, graph, nodes)
    want = _reference(stats, graph, nodes)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert got.loc["n5"].isna().all() and got.loc["n4"].isna().all()
    assert "pdu.output_watts" in got.columns and got["pdu.output_watts"].notna().sum() == (
        3 if n_pdus == 1 else 4
    )


def test_component_context_without_components() -> None:
    _, graph, nodes = _fleet()
    stats = component_stats(
        pd.DataFrame(columns=["component", "metric", "ts", "value"]),
        AT,
        timedelta(minutes=30),
        timedelta(minutes=10),
    )
    got = component_context(stats, graph, nodes)
    assert list(got.index) == nodes and got.shape == (len(nodes), 0)


def test_component_context_many_predecessors_sums_as_nanmean(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Eight values or more are summed pairwise by np.nanmean: the loop then, also forced."""
    component, graph, nodes = _fleet(9)
    stats = component_stats(component, AT, timedelta(minutes=30), timedelta(minutes=10))
    want = _reference(stats, graph, nodes)
    pd.testing.assert_frame_equal(component_context(stats, graph, nodes), want, check_exact=True)
    monkeypatch.setattr(context, "_PAIRWISE_FROM", 1)
    _, graph2, nodes2 = _fleet(2)
    pd.testing.assert_frame_equal(
        component_context(stats, graph2, nodes2),
        _reference(stats, graph2, nodes2),
        check_exact=True,
    )


def _counter(comp: str, steps: list[float]) -> pd.DataFrame:
    """A counter scraped every 5 minutes up to AT, climbing by ``steps``."""
    ts = pd.date_range(end=AT, periods=len(steps) + 1, freq="5min")
    values = np.concatenate([[1000.0], 1000.0 + np.cumsum(steps)])
    return pd.DataFrame(
        {"component": comp, "metric": "port_errors_total", "ts": ts, "value": values}
    )


def test_two_harmless_bursts_are_not_a_sustained_port_error_rate() -> None:
    """Two port-error bursts 20 minutes apart on a quiet switch (a healthy development fleet's
    critical false incident) count for nothing; a steady climb keeps its whole increase, and a
    climb with a burst on top is still read as the climb."""
    component = pd.concat(
        [
            _counter("quiet", [0, 0, 0, 0, 0, 0]),
            _counter("bursts", [0, 120, 0, 0, 0, 90]),
            _counter("climb", [40, 40, 40, 40, 40, 40]),
            _counter("climb+burst", [40, 40, 40, 400, 40, 40]),
        ]
    )
    stats = component_stats(component, AT, timedelta(minutes=30), timedelta(minutes=10))
    sustained = stats["sustained"].xs("port_errors_total", level="metric")
    rate = stats["rate"].xs("port_errors_total", level="metric")
    assert sustained["quiet"] == 0.0 and sustained["bursts"] == 0.0
    assert rate["bursts"] == pytest.approx(np.log1p(210 / 0.5))  # the raw rate still sees them
    assert sustained["climb"] == pytest.approx(np.log1p(240 / 0.5))
    assert sustained["climb+burst"] == pytest.approx(np.log1p(240 / 0.5))
