"""The PromQL evaluator of the feature plan: the TSDB reduces, one instant query per reduction.

Each reduction of :class:`analysis.feature_plan.FeaturePlan` becomes one PromQL instant query at
the grid time at or before ``at`` (:func:`analysis.feature_plan.grid_time`) for the whole fleet,
and each answer becomes one float per GPU key. So a cycle moves one number per GPU and reduction
instead of the raw window. The definitions are the plan's (its module docstring): every reduction
reads the metric on the step grid, ``last_over_time(m[step - 1ms])`` evaluated in a subquery
``[span - 1ms:step]`` (the 1 ms keeps Prometheus 2.x's closed left edge out, so both Prometheus
and VictoriaMetrics see ``(at - span, at]``), and only the functions both engines compute alike
on such a grid: ``avg/max/min/sum/count/last/stddev_over_time``, ``deriv`` (guarded to two
points: on one, VictoriaMetrics takes the sample before the window), ``time()`` and ``offset``
for the step between consecutive points. ``increase``, ``rate``, ``resets`` and
``changes`` compute no reduction: VictoriaMetrics counts the sample before the window, Prometheus
extrapolates, and neither matches the other (``changes`` only gates, below, where counting one
sample more only asks about one node more).

Error counters are flat on almost every GPU of a healthy fleet, and a flat series' increase and
steps are 0 and it shows no new XID code (:data:`FLAT_VALUE`): one ``changes`` query per such
metric (the *gate*, :func:`gate_query`) finds the nodes where it moved in the window, and only
they are asked those reductions (the whole fleet when it moved on many nodes). Every TSDB query
costs the server about the same per series it reads (at 10,000 GPUs VictoriaMetrics spends ~6 us
per series on the index and as much on the samples), and a counter's ``increase`` reads its
series six times: without the gate the eight increases took 7.8 of the 13.2 s the server spent
on a cycle's reductions.

The reductions are independent queries: up to the client's ``concurrency`` are in flight at once
(:meth:`storage.promql_client.PromQLClient.map`), so the server evaluates several while the
answers that came back are decoded. The series selector and the headers of the client apply as
to every query. When the server refuses a query as too large (Prometheus
``--query.max-samples``, VictoriaMetrics ``-search.maxSamplesPerQuery``), the fleet is split by
the last characters of the node label and each part asked on its own
(:func:`storage.promql_split.by_parts`), at most :data:`~storage.promql_split.MAX_SPLIT_DEPTH`
levels deep.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from itertools import pairwise
from typing import Any, cast

import numpy as np
import pandas as pd

from analysis.catalog import (
    HARDWARE_XIDS,
    XID_COUNT,
    XID_HARDWARE_COUNT,
    XID_OTHER_COUNT,
    xid_regex,
)
from analysis.feature_plan import FeaturePlan, Reduction, grid_time
from analysis.types import Reductions
from storage.promql_client import PromQLClient, Sample
from storage.promql_frames import flat_samples, strip_port
from storage.promql_selector import Matcher
from storage.promql_split import MAX_SPLIT_DEPTH, Select, by_parts, node_matcher, node_parts

__all__ = [
    "FLAT_VALUE",
    "GATED_KINDS",
    "GATE_NODES",
    "GATE_SHARE",
    "MAX_POINTS",
    "MAX_SPLIT_DEPTH",
    "by_parts",
    "gate_query",
    "gated_reductions",
    "grid_series",
    "node_matcher",
    "node_parts",
    "reduce_promql",
    "reduce_promql_at",
    "render",
]


#: VictoriaMetrics aligns a range query of this many points or more to its cache (its
#: ``nocache`` documentation): a longer run of times is asked in parts of fewer points.
MAX_POINTS = 50

#: Reductions whose value on a series with a constant grid is known (0, or none: no new XID code
#: is no point of ``count_over_time``): asked only where the metric changed.
FLAT_VALUE: dict[str, float | None] = {
    "increase": 0.0,
    "top_step": 0.0,
    "step_sum": 0.0,
    "new_codes": None,
}
GATED_KINDS: frozenset[str] = frozenset(FLAT_VALUE)
#: A gated metric that changed on more than this share of the nodes seen, and on more than
#: :data:`GATE_NODES` nodes, is asked for the whole fleet (a node matcher of thousands of names
#: costs the server more than it saves).
GATE_SHARE = 0.1
GATE_NODES = 32


def _ms(length: timedelta) -> int:
    """A duration in whole milliseconds."""
    return round(length.total_seconds() * 1000)


def grid_series(
    metric: str, lookback: timedelta, select: Select, *, offset: timedelta | None = None
) -> str:
    """PromQL for a metric's last sample in ``(t - lookback, t]`` (optionally ``offset`` back).

    ``lookback`` is the grid step (or the source's sample window): the value a range query of a
    fetch returns at ``t``.
    The two XID class series (``analysis.catalog.XID_HARDWARE_COUNT``/``XID_OTHER_COUNT``) are the
    opt-in XID counter summed per GPU over the codes of the class.
    """
    shift = f" offset {_ms(offset)}ms" if offset else ""
    # (t - lookback, t]: Prometheus 2.x range windows are closed on the left, so 1 ms off
    rng = f"[{max(1, _ms(lookback) - 1)}ms]{shift}"
    if metric in (XID_HARDWARE_COUNT, XID_OTHER_COUNT):
        op = "=~" if metric == XID_HARDWARE_COUNT else "!~"
        series = select(f'{XID_COUNT}{{xid{op}"{xid_regex(HARDWARE_XIDS)}"}}')
        return f"sum without (xid) (last_over_time({series}{rng}))"
    return f"last_over_time({select(metric)}{rng})"


def render(
    red: Reduction, plan: FeaturePlan, select: Select, lookback: timedelta | None = None
) -> str:
    """The PromQL instant query of one reduction (evaluated at a grid time).

    ``lookback``: how far back a grid point takes its sample (default: the step).
    """
    back = lookback or plan.step
    g = grid_series(red.metric, back, select)
    prev = grid_series(red.metric, back, select, offset=plan.step)
    step = f"{_ms(plan.step)}ms"
    span = f"[{max(1, _ms(plan.length(red.span)) - 1)}ms:{step}]"
    # the steps between consecutive points: each at its later point, both inside the window
    pairs = f"[{max(1, _ms(plan.window - plan.step) - 1)}ms:{step}]"
    kind = red.kind
    summed = f"sum_over_time(clamp_min({g} - {prev}, 0){pairs})"
    if kind in ("mean", "std", "last", "max", "count"):
        fn = {"mean": "avg", "std": "stddev"}.get(kind, kind)
        return f"{fn}_over_time(({g}){span})"
    if kind == "slope":
        return f"(deriv(({g}){span}) * 60) and (count_over_time(({g}){span}) > 1)"
    if kind == "last_time":
        # the grid point's time where the metric has a sample (not ``timestamp()``: on a
        # rollup VictoriaMetrics answers the raw sample's time, also one step after it)
        return f"max_over_time((time() + 0 * {g}){span})"
    if kind == "increase":
        top, bottom = f"max_over_time(({g}){span})", f"min_over_time(({g}){span})"
        return f"(({top} - {bottom}) and (last_over_time(({g}){span}) >= {top})) or {summed}"
    if kind == "top_step":
        return f"max_over_time(clamp_min({g} - {prev}, 0){pairs})"
    if kind == "step_sum":
        return summed
    new = f"(({g} != {prev}) > 0)"
    if red.codes is not None:
        new = "(" + " or ".join(f"{new} == {c}" for c in sorted(red.codes)) + ")"
    return f"count_over_time({new}{pairs})"


def _key(labels: Mapping[str, str], label_map: Mapping[str, str]) -> str | None:
    """The GPU key of an answer's labels (node label, else instance without its port)."""
    node = labels.get(label_map["node"])
    if not node and labels.get(label_map["instance"]):
        node = strip_port(labels[label_map["instance"]])
    gpu = labels.get(label_map["gpu"])
    return f"{node}/{gpu}" if node and gpu is not None else None


@dataclass(frozen=True)
class _Rows:
    """One time's answer to a query, column by column: the series that name a GPU, in the
    answer's order (the others are dropped), each series' key, value and whether it had the
    node label."""

    keys: np.ndarray
    """GPU keys (object)."""
    values: np.ndarray
    """float64"""
    named: np.ndarray
    """bool: the series had the node label (a node matcher finds it again)."""

    @classmethod
    def of(cls, samples: Sequence[Sample], label_map: Mapping[str, str]) -> _Rows:
        """An instant query's samples."""
        keys = [_key(labels, label_map) for labels, _ in samples]
        mine = [i for i, k in enumerate(keys) if k is not None]
        node = label_map["node"]
        return cls(
            np.array([keys[i] for i in mine], dtype=object),
            np.array([samples[i][1] for i in mine], dtype=np.float64),
            np.array([bool(samples[i][0].get(node)) for i in mine], dtype=bool),
        )

    @classmethod
    def concat(cls, parts: Sequence[_Rows]) -> _Rows:
        """The rows of several parts of the fleet (``by_parts``), in order."""
        if len(parts) == 1:
            return parts[0]
        return cls(
            np.concatenate([p.keys for p in parts]) if parts else np.array([], dtype=object),
            np.concatenate([p.values for p in parts]) if parts else np.array([]),
            np.concatenate([p.named for p in parts]) if parts else np.array([], dtype=bool),
        )


def _matrix_rows(
    result: list[dict[str, Any]], first: float, every: float, n: int, label_map: Mapping[str, str]
) -> list[_Rows]:
    """A range query's answer as the rows at each of its ``n`` times (``first`` + j ``every``
    seconds): the series' keys found once, the values placed with numpy, not sample by sample
    (a 10,000-GPU scan's reductions at its nine earlier cycles spent more time here than the
    server did)."""
    node = label_map["node"]
    keys = [_key(series["metric"], label_map) for series in result]
    mine = [series for series, key in zip(result, keys, strict=True) if key is not None]
    key_of = np.array([k for k in keys if k is not None], dtype=object)
    named_of = np.array([bool(series["metric"].get(node)) for series in mine], dtype=bool)
    ts, values, lengths = flat_samples(mine)
    row = np.repeat(np.arange(len(mine)), lengths)
    at = np.rint((ts - first) / every).astype(np.int64)
    out = []
    for j in range(n):
        now = at == j
        pick = row[now]  # each series' point at time j, in the answer's order
        out.append(_Rows(key_of[pick], values[now], named_of[pick]))
    return out


def _answer(rows: _Rows) -> pd.Series:
    """One float per GPU key (the last of two series of one GPU wins)."""
    series = pd.Series(rows.values, index=pd.Index(rows.keys, dtype=object), dtype=np.float64)
    return series[~series.index.duplicated(keep="last")]


def reduce_promql(
    client: PromQLClient,
    plan: FeaturePlan,
    at: datetime,
    label_map: Mapping[str, str],
    *,
    lookback: timedelta | None = None,
) -> Reductions:
    """Evaluate every reduction of ``plan`` in the TSDB at the grid time at or before ``at``.

    ``lookback``: how far back a grid point takes its sample (default: the step), as the
    source's fetch does. Each answer keeps only the labels that name a GPU (``max by`` the label
    map's node, GPU and instance labels), so it moves one short line per GPU. A reduction of a
    code set (hardware XIDs) is asked only for the nodes where the same metric changed to any
    new code in the window (usually none: no query at all): its PromQL tests each code, and
    costs the server as much as twenty reductions.

    Returns the :class:`analysis.types.Reductions` (index GPU key, one column per reduction);
    raises ``MetricsSourceError`` (one line) when the server cannot answer.
    """
    when = grid_time(at, plan.step)

    def send(query: str, what: str) -> list[_Rows]:
        return [_Rows.of(client.query(query, when, what=what), label_map)]

    return _reduce(client, plan, [when], label_map, lookback=lookback, send=send)[0]


def reduce_promql_at(
    client: PromQLClient,
    plan: FeaturePlan,
    times: Sequence[datetime],
    label_map: Mapping[str, str],
    *,
    lookback: timedelta | None = None,
) -> list[Reductions]:
    """:func:`reduce_promql` at each of ``times``: one range query per reduction for them all.

    ``times`` must fall on evenly spaced grid times (a run of cycles, e.g. a one-shot scan's
    warm-up); a range query's point at ``t`` is the instant query at ``t``, so each table is the
    one :func:`reduce_promql` returns at its time, with one request per reduction instead of one
    per reduction and time. A code set's reduction is asked for the nodes where any new code
    appeared at some time, and kept at each time for that time's nodes, as at one time alone.
    """
    whens = [grid_time(t, plan.step) for t in times]
    if len(whens) < 2:
        return [reduce_promql(client, plan, t, label_map, lookback=lookback) for t in times]
    every = whens[1] - whens[0]
    if every <= timedelta(0) or any(b - a != every for a, b in pairwise(whens)):
        raise ValueError(f"times {times} are not evenly spaced grid times")
    first = whens[0].timestamp()

    def send(query: str, what: str) -> list[_Rows]:
        result = client.query_range(query, whens[0], whens[-1], every, what=what)
        return _matrix_rows(result, first, every.total_seconds(), len(whens), label_map)

    return _reduce(client, plan, whens, label_map, lookback=lookback, send=send)


def gate_query(metric: str, plan: FeaturePlan, select: Select, lookback: timedelta | None) -> str:
    """PromQL for how often ``metric``'s raw samples changed where the window's grid reads them.

    The range reaches back to the earliest grid point's lookback, ``(at - window + step -
    lookback, at]``: a series that did not change there has a constant grid, so each of its
    :data:`GATED_KINDS` reductions is 0. VictoriaMetrics also counts the sample before the range,
    which only adds series to ask about.
    """
    back = lookback or plan.step
    reach = plan.window - plan.step + back
    return f"changes({select(metric)}[{max(1, _ms(reach) - 1)}ms])"


@dataclass
class _Gate:
    """One time's gate answer for a metric: the GPUs seen and the nodes where it changed."""

    present: set[str]
    changed: set[str]
    #: every series had the node label (so a node matcher finds them again)
    named: bool


def _gate(rows: _Rows) -> _Gate:
    """Read a gate answer (:func:`gate_query` per GPU)."""
    changed = {str(k).rpartition("/")[0] for k in rows.keys[rows.values > 0]}
    return _Gate(set(rows.keys.tolist()), changed, bool(rows.named.all()))


def gated_reductions(plan: FeaturePlan) -> list[Reduction]:
    """The plan's reductions that are 0 on a series that did not change (the gate may skip them)."""
    return [
        red
        for red in plan.reductions
        if red.codes is None
        and red.kind in GATED_KINDS
        and red.metric not in (XID_HARDWARE_COUNT, XID_OTHER_COUNT)
    ]


def _narrow(gates: list[_Gate]) -> set[str] | None:
    """The nodes to ask a gated metric about: none (no change), some, or None (the whole fleet).

    Changed on many nodes (above :data:`GATE_NODES` and :data:`GATE_SHARE` of those seen), or a
    series without the node label (a node matcher would not find it again): the whole fleet,
    exactly as without the gate.
    """
    changed: set[str] = set().union(*(g.changed for g in gates))
    seen = {k.rpartition("/")[0] for g in gates for k in g.present}
    many = len(changed) > max(GATE_NODES, GATE_SHARE * len(seen))
    if changed and (many or not all(g.named for g in gates)):
        return None
    return changed


def _unasked(gate: _Gate, nodes: set[str] | None) -> pd.Index:
    """The GPUs a gate saw that are not on ``nodes`` (the nodes asked; None: all were)."""
    if nodes is None:
        return pd.Index([], dtype=object)
    return pd.Index(
        sorted(k for k in gate.present if k.rpartition("/")[0] not in nodes), dtype=object
    )


def _gated_column(red: Reduction, unasked: pd.Index, exact: pd.Series | None) -> pd.Series:
    """A gated reduction at one time: the exact answer where asked, its flat value on the GPUs
    seen but not asked (``unasked``: the same for every reduction of the metric)."""
    if exact is None:
        exact = pd.Series([], dtype=np.float64, index=pd.Index([], dtype=object))
    flat = FLAT_VALUE[red.kind]
    if flat is None or unasked.empty:
        return exact
    rest = pd.Series(flat, index=unasked, dtype=np.float64)
    if exact.empty:
        return rest
    return pd.concat([exact, rest[~rest.index.isin(exact.index)]])


def _reduce(
    client: PromQLClient,
    plan: FeaturePlan,
    whens: list[datetime],
    label_map: Mapping[str, str],
    *,
    lookback: timedelta | None,
    send: Callable[[str, str], list[_Rows]],
) -> list[Reductions]:
    """The plan's tables at ``whens``; ``send(query, what)`` answers its samples at each.

    The gated reductions (counter increases and steps, new XID codes: :data:`GATED_KINDS`) are
    asked only where their metric changed in the window (one ``changes`` query per metric: the
    series a healthy fleet's error counters hold are almost all flat), the others for the fleet.
    """
    keep = ", ".join(dict.fromkeys(label_map[k] for k in ("node", "gpu", "instance")))
    columns: list[dict[str, pd.Series]] = [{} for _ in whens]
    empty = pd.Series([], dtype=np.float64, index=pd.Index([], dtype=object))

    def samples(
        inner: Callable[[Select], str], what: str, extra: tuple[Matcher, ...] = ()
    ) -> list[_Rows]:
        def build(select: Select) -> str:
            return f"max by ({keep}) ({inner(select)})"

        def one(query: str) -> list[list[_Rows]]:
            return [send(query, what)]

        matchers = (*client.matchers, *extra)
        answers = by_parts(matchers, build, one, what=what, label=label_map["node"])
        # by_parts concatenates the parts' answers: each part's is one answer per time
        return [_Rows.concat([answer[j] for answer in answers]) for j in range(len(whens))]

    def ask(red: Reduction, extra: tuple[Matcher, ...] = ()) -> list[pd.Series]:
        def inner(select: Select) -> str:
            return render(red, plan, select, lookback)

        return [_answer(rows) for rows in samples(inner, red.name, extra)]

    def gate(metric: str) -> list[_Gate]:
        def inner(select: Select) -> str:
            return gate_query(metric, plan, select, lookback)

        return [_gate(rows) for rows in samples(inner, f"{metric}:changes")]

    gated = gated_reductions(plan)
    plain = [red for red in plan.reductions if red.codes is None and red not in gated]
    metrics = list(dict.fromkeys(red.metric for red in gated))
    # independent queries: the server evaluates several while the answers are decoded here
    first = client.map(
        _call, [*(partial(ask, red) for red in plain), *(partial(gate, m) for m in metrics)]
    )
    for red, answers in zip(plain, first, strict=False):  # the gates' answers follow
        for cols, answer in zip(columns, cast(list[pd.Series], answers), strict=True):
            cols[red.name] = answer
    gates = {m: cast(list[_Gate], g) for m, g in zip(metrics, first[len(plain) :], strict=True)}
    nodes = {m: _narrow(g) for m, g in gates.items()}

    def exact(red: Reduction) -> list[pd.Series] | None:
        where = nodes[red.metric]
        if where is None:
            return ask(red)
        return ask(red, (node_matcher(label_map["node"], where),)) if where else None

    # per metric and time, the GPUs not asked: one list for all the metric's reductions
    unasked = {m: [_unasked(g, nodes[m]) for g in at] for m, at in gates.items()}
    for red, answers in zip(gated, client.map(exact, gated), strict=True):
        for j, cols in enumerate(columns):
            got = answers[j] if answers is not None else None
            cols[red.name] = _gated_column(red, unasked[red.metric][j], got)
    for red in plan.reductions:
        if red.codes is None:
            continue
        anyone = Reduction(red.metric, red.kind, red.span, None, "any")
        if any(anyone.name not in cols for cols in columns):
            # no count of any code to narrow it down: the whole fleet
            for cols, answer in zip(columns, ask(red), strict=True):
                cols[red.name] = answer
            continue
        at_nodes = [
            {k.rpartition("/")[0] for k in cols[anyone.name][cols[anyone.name] > 0].index}
            for cols in columns
        ]
        union = set().union(*at_nodes)
        answers = ask(red, (node_matcher(label_map["node"], union),)) if union else []
        for j, cols in enumerate(columns):
            if not at_nodes[j]:
                cols[red.name] = empty
            elif at_nodes[j] == union:
                cols[red.name] = answers[j]
            else:  # another time's nodes too: keep this time's, as asked at this time alone
                mine = [k.rpartition("/")[0] in at_nodes[j] for k in answers[j].index]
                cols[red.name] = answers[j][mine]
    out = []
    for when, cols in zip(whens, columns, strict=True):
        table = pd.DataFrame(cols, dtype=np.float64)
        table = table.reindex(columns=[r.name for r in plan.reductions]).sort_index()
        table.index.name = "gpu_key"
        out.append(
            Reductions(at=when, window=plan.window, recent=plan.recent, step=plan.step, table=table)
        )
    return out


def _call(job: Callable[[], object]) -> object:
    """Run one job of :meth:`PromQLClient.map`."""
    return job()
