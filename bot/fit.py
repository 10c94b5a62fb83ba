"""What a model fit is made of in the running bot: the model cycles read, the fit's history and
its sample.

:class:`Model` is what a cycle scores and explains with, swapped in whole by a refit
(``bot.pipeline.Pipeline.install``). :func:`read_history` is what a fit learns from: from a TSDB
(a source with ``reduce_at``), the GPUs' own reductions at the fit's cycle ends, computed by the
server, and the peer metrics raw, as each cycle reads them (a history too large to hold: one
span of cycle windows at a time, as the fit goes, :class:`SpanReads`);
:func:`explainer_history` the raw series the explainer learns from, of a sample of nodes. :func:`fit_sample` is which nodes a fit
reads history for when the fleet is larger than ``GPU_RISK_FIT_MAX_GPUS`` (the draw itself is
pure: ``analysis.fit_sample``); the GPU models it is stratified by are the graph's (the pipeline
asks the source once per node: Prometheus, dcgm-exporter's ``modelName``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import overload

import networkx as nx
import pandas as pd

from analysis.context import PEER_METRICS
from analysis.explain import Explainer
from analysis.feature_plan import POWER, TEMP, FeaturePlan, grid_time
from analysis.features import DEFAULT_RECENT
from analysis.fit_sample import gpus_per_node, sample_nodes
from analysis.frames import split_lead, to_utc
from analysis.scorer import Scorer
from analysis.thermal import lag_nodes, lead_in, slope_times
from analysis.types import Explanation, FleetFrames, Incident, Reductions
from storage.rolling import RollingWindow
from storage.source import MetricsSource, NodeSample, side_by_side

logger = logging.getLogger(__name__)

#: Most raw samples of the peer metrics a fit holds at once (GPUs x metrics x points): 10,000
#: GPUs' 2.5 hours at a 60-s scrape. A longer history of a fleet that size (the default day)
#: is read one span of cycle windows at a time (:func:`fit_spans`).
FIT_SPAN_SAMPLES = 5_000_000

#: Most samples of each of temperature and power a fit read span by span holds for the slope
#: of degrees per watt (``analysis.thermal``; GPUs x timestamps): all 288 timestamps of 10,000
#: GPUs. A larger fleet reads fewer timestamps of each GPU (:func:`_streamed`).
THERMAL_SAMPLES = 2_880_000

#: GPUs whose raw history the explainer learns from when the fit reads reductions (a sample of
#: whole nodes beyond): it trains each kind on at most 64 entities and 3,000 rows
#: (``analysis.explain.explainer``), and the evaluation's fleets, on which its explanations
#: are measured, have 128.
EXPLAINER_GPUS = 128


def read_history(
    source: MetricsSource,
    scorer: Scorer,
    start: datetime,
    end: datetime,
    step: timedelta,
    *,
    nodes: NodeSample | None = None,
    gpus: int | None = None,
    span_samples: int = FIT_SPAN_SAMPLES,
) -> FleetFrames:
    """What a fit of ``scorer`` learns from: the history of ``[start, end]``.

    From a source that reduces at many times (``reduce_at``: Prometheus, VictoriaMetrics) for a
    scorer of reductions, the whole fleet's: the plan's reductions at the scorer's cycle ends
    for the fleet's size (``Scorer.history_times``: fewer past its row budget;
    ``FleetFrames.fit_reduced``), one range query each, and the peer
    metrics raw. A cycle reads the same, so the fit's features are the cycles' own, and a
    24-hour fit moves 48 numbers per GPU and reduction, not every raw sample of it. Only where
    that pays (:func:`reductions_pay`: a short history at a coarse scrape moves as many raw
    samples, and the server reduces each window anew), and otherwise (an in-memory source, raw
    scorers, a sample of ``nodes``, cycle ends off the step grid) every series raw.

    ``gpus``: the fleet's GPUs where the caller knows them (the topology's graph): how many
    cycle ends the row budget leaves, so whether the reductions pay; None: decided at the most
    cycle ends (a fleet past the budget then reads raw what its fewer cycle ends would reduce).
    A history whose peer metrics would hold more than ``span_samples`` raw samples at once (a
    large fleet's day) is not read here but as the fit iterates it (``FleetFrames.fit_spans``,
    :func:`fit_spans`): the fit then holds one span of cycle windows at a time, and the thermal
    constants' samples (:func:`_streamed`).
    """
    reduce_at = getattr(source, "reduce_at", None)
    window = scorer.feature_window
    # a scorer of windows reads its first cycle's thermal lead-in too, as that cycle does
    lead = lead_in(step) if window is not None else timedelta(0)
    if nodes is None and reduce_at is not None and window is not None:
        plan = FeaturePlan(window, DEFAULT_RECENT, step)
        # the cycle ends of a fleet this size (None: of any size, the most)
        planned = scorer.history_times(start, end, gpus=gpus)
        points = (end - start) // step + 1
        if _on_grid(planned, step) and reductions_pay(plan, len(planned), points):
            if gpus and gpus * len(PEER_METRICS) * points > span_samples:
                # too large to hold: read span by span as the fit goes
                spans = fit_spans(planned, window + lead, step, gpus, span_samples)
                grid = (start, end, step)
                return _streamed(source, reduce_at, plan, scorer, grid, spans=spans, gpus=gpus)

            def peers() -> FleetFrames:
                read = source.fetch(start - lead, end, step, gpu_metrics=PEER_METRICS)
                return split_lead(read, start, PEER_METRICS)

            if gpus:  # the server reduces at the cycle ends while this process decodes the peers
                raw, reduced = side_by_side(source, peers, lambda: reduce_at(plan, planned))
                return replace(raw, fit_reduced=tuple(reduced))
            raw = peers()
            # a large fleet is fitted on fewer cycle ends (the scorer's row budget)
            times = scorer.history_times(start, end, gpus=len(raw.gpus))
            if _on_grid(times, step):
                return replace(raw, fit_reduced=tuple(reduce_at(plan, times)))
    # the peer metrics before the history as its lead: the first cycle's thermal lag reads
    # them, as that cycle itself does (Pipeline.read_window)
    return split_lead(source.fetch(start - lead, end, step, nodes=nodes), start, PEER_METRICS)


@dataclass(frozen=True)
class Span:
    """Cycle windows a fit reads at once: ``[start, end]`` holds every one of their reads
    (each window and its thermal lead-in), ``times`` their cycle ends, oldest first."""

    start: datetime
    end: datetime
    times: tuple[datetime, ...]


def fit_spans(
    times: Sequence[datetime], reach: timedelta, step: timedelta, gpus: int, budget: int
) -> list[Span]:
    """The spans a fit of ``gpus`` GPUs reads its cycle ends ``times`` in, each cycle reading
    ``reach`` before its end (the window and the thermal lead-in, as a cycle reads): overlapping
    windows share a span while it holds at most ``budget`` raw peer-metric samples (GPUs x
    :data:`PEER_METRICS` x points); a window alone may hold more. Windows that do not overlap
    (a day's cycle ends, an hour or more apart) are read apart, so the hours between them are
    not read at all."""
    per_point = max(gpus, 1) * len(PEER_METRICS)
    spans: list[Span] = []
    for t in sorted(times):
        if spans:
            last = spans[-1]
            points = (t - last.start) // step + 1
            if t - reach <= last.end and points * per_point <= budget:
                spans[-1] = Span(last.start, t, (*last.times, t))
                continue
        spans.append(Span(t - reach, t, (t,)))
    return spans


class SpanReads(Sequence[FleetFrames]):
    """A fit's spans as frames, each read from the source when it is asked for: the peer
    metrics raw (and the nodes', components' and ``up``), with its cycles' reductions.

    From a source with ``rolling_reads`` (a TSDB) a span that overlaps the one read before it
    is read in part, as a cycle's window is (``storage.rolling``: the same frames): at 100,000
    GPUs a span holds a single cycle window (16 points of the peer metrics fit the budget, a
    window and its lead-in are 42), so the fit's 16 windows, 7.5 minutes apart in a 2-hour
    history, read 672 points of every peer series whole, 5 times the history's 132. From a
    source with ``concurrent_reads`` the next span is read while the fit computes this one's
    features (:meth:`__getitem__`)."""

    def __init__(
        self,
        source: MetricsSource,
        spans: Sequence[Span],
        step: timedelta,
        reduced: Sequence[Reductions],
    ) -> None:
        """Read ``spans`` at ``step`` from ``source``; ``reduced``: every span's cycles'."""
        self._source, self._spans, self._step = source, list(spans), step
        self._reduced = {to_utc(r.at): r for r in reduced}
        self._rolling = RollingWindow() if getattr(source, "rolling_reads", False) else None
        self._ahead: tuple[int, Future[FleetFrames]] | None = None
        self._pool: ThreadPoolExecutor | None = None

    def __len__(self) -> int:
        return len(self._spans)

    @overload
    def __getitem__(self, i: int) -> FleetFrames: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[FleetFrames]: ...

    def __getitem__(self, i: int | slice) -> FleetFrames | Sequence[FleetFrames]:
        """Span ``i``'s frames. From a source with ``concurrent_reads`` the next span is sent
        from another thread once this one is read, so the server reads it while the fit
        computes this one's features (a failed read raises when its span is asked for)."""
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = range(len(self))[i]  # IndexError past the end, as a sequence's iteration expects
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == i:
            read = ahead[1].result()
        else:
            if ahead is not None:  # asked out of order: the read under way finishes first
                wait([ahead[1]])
            read = self._read(i)
        if getattr(self._source, "concurrent_reads", False) and i + 1 < len(self):
            self._pool = self._pool or ThreadPoolExecutor(1, thread_name_prefix="span")
            self._ahead = (i + 1, self._pool.submit(self._read, i + 1))
        elif self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
        span = self._spans[i]
        return replace(read, fit_reduced=tuple(self._reduced[to_utc(t)] for t in span.times))

    def _read(self, i: int) -> FleetFrames:
        """Read span ``i`` from the source: in part after the span before it, where it can."""
        span = self._spans[i]
        logger.debug(
            "fit: reading span %d of %d (%s to %s)", i + 1, len(self), span.start, span.end
        )
        if self._rolling is None:
            return self._source.fetch(span.start, span.end, self._step, gpu_metrics=PEER_METRICS)
        read = self._rolling.fetch(
            self._source, span.start, span.end, self._step, gpu_metrics=PEER_METRICS
        )
        if i == len(self) - 1:  # the fit's last span: nothing left to extend
            self._rolling.forget()
        return read


def _streamed(
    source: MetricsSource,
    reduce_at: Callable[[FeaturePlan, Sequence[datetime]], list[Reductions]],
    plan: FeaturePlan,
    scorer: Scorer,
    grid: tuple[datetime, datetime, timedelta],
    *,
    spans: Sequence[Span],
    gpus: int,
) -> FleetFrames:
    """A history read as the fit goes (:class:`SpanReads`), with what it learns first: the
    reductions at every cycle end, and the thermal constants' samples (``analysis.thermal``):
    temperature and power of every GPU at the slope's timestamps (one range query per metric
    at their stride), and of the lag's nodes raw, as the whole history would give them (but
    where a GPU missed the scrape at one of the slope's timestamps: a range query at the stride
    may then return its sample of up to a stride before). A fleet of ``gpus`` GPUs whose
    timestamps would hold more than :data:`THERMAL_SAMPLES` samples a metric reads every k-th
    of them (from the last back, so still the slope's timestamps, and still one range query):
    the slope is pooled over the fleet's GPUs of a model, and 100,000 GPUs' 23 timestamps
    each (a 2-hour fit; 29 of a day's) are 2.3 million pairs."""
    start, end, step = grid
    times = [t for span in spans for t in span.times]
    since = scorer.fit_start(start, end)

    def thermal_samples() -> pd.DataFrame:
        picks = slope_times(start, end, step, since)
        every = max(1, -(-len(picks) * gpus // THERMAL_SAMPLES))
        picks = picks[::-1][::every][::-1]
        stride = picks[1] - picks[0] if len(picks) > 1 else step
        coarse = (
            source.fetch(picks[0], picks[-1], stride, gpu_metrics=(TEMP, POWER)).gpu
            if picks
            else FleetFrames.empty_frame(("ts", "node", "gpu", "metric", "value"))
        )
        chosen = lag_nodes(coarse["node"].unique())
        first = start + -(-(since - start) // step) * step  # the grid's first point from since on
        lag = source.fetch(first, end, step, gpu_metrics=(TEMP, POWER), nodes=chosen).gpu
        return pd.concat([coarse[~coarse["node"].isin(chosen).to_numpy()], lag], ignore_index=True)

    # the server reduces at every cycle end while this process decodes the thermal samples
    thermal, reduced = side_by_side(source, thermal_samples, lambda: reduce_at(plan, times))
    reads = SpanReads(source, spans, step, reduced)
    logger.info(
        "fit: %d cycle ends read in %d spans (the history's peer metrics are too many to hold)",
        len(times),
        len(spans),
    )
    empty = FleetFrames.empty_frame
    return FleetFrames(
        gpu=thermal,
        node=empty(("ts", "node", "metric", "sensor", "value")),
        component=empty(("ts", "component", "metric", "value")),
        up=empty(("ts", "node", "job", "value")),
        start=start,
        end=end,
        step=step,
        fit_reduced=tuple(reduced),
        fit_spans=reads,
    )


def _on_grid(times: list[datetime], step: timedelta) -> bool:
    """Whether every one of ``times`` (at least one) is on the ``step`` grid."""
    return bool(times) and all(grid_time(t, step) == t for t in times)


def reductions_pay(plan: FeaturePlan, times: int, points: int) -> bool:
    """Whether a fit reading ``plan``'s reductions at ``times`` cycle ends (and the peer metrics
    raw) moves less than half the numbers per GPU that reading the ``points`` samples of each
    of its metrics raw does. Half: the server evaluates every reduction over its whole window
    at each time. E.g. 48 times of 36 reductions against 16 own-series metrics: from 217
    samples a series on (a fit of 3.6 hours at a 60-s scrape; the default 24 hours: 1,440)."""
    own = [m for m in plan.metrics if m not in PEER_METRICS]
    return 2 * times * len(plan.reductions) < points * len(own)


def explainer_history(
    source: MetricsSource,
    start: datetime,
    end: datetime,
    step: timedelta,
    graph: nx.DiGraph,
    *,
    random_state: int,
    name: str,
) -> FleetFrames:
    """The raw series an explainer learns from when the fit's history has none (it read
    reductions) or there is no fit's history (a model loaded from disk): every series of
    ``[start, end]`` for a sample of whole nodes holding about :data:`EXPLAINER_GPUS` GPUs
    (stratified by rack; the whole fleet when smaller)."""
    sample = fit_sample(graph, EXPLAINER_GPUS, random_state=random_state, name=f"{name} explainer")
    return source.fetch(start, end, step, nodes=sample)


@dataclass(frozen=True)
class Model:
    """A fitted model as a cycle reads it: the scorer, the fleet it serves and its explainer.

    Swapped in whole (one reference, ``Pipeline.current``), so a cycle running while a refit
    finishes reads either the old model or the new one, never half of each.
    """

    scorer: Scorer
    fingerprint: str
    explainer: Explainer | DeferredExplainer | None = None


class DeferredExplainer:
    """An explainer fitted on the fit's history when it first explains, not with the scorer.

    For a process that may never explain (the one-shot scan of a healthy fleet): the same
    ``make().fit(read(), graph)`` as at fit time, on the same frames and graph (``read`` called
    then, and both dropped after), so the same explanations; nothing is read or fitted without
    an incident.
    """

    def __init__(
        self, make: Callable[[], Explainer], read: Callable[[], FleetFrames], graph: nx.DiGraph
    ) -> None:
        """Hold what the fit would fit on: how to read its history, and the fleet."""
        self._make = make
        self._pending: tuple[Callable[[], FleetFrames], nx.DiGraph] | None = (read, graph)
        self._fitted: Explainer | None = None

    def fitted(self) -> Explainer:
        """The explainer, fitted now if it was not yet."""
        if self._fitted is None:
            assert self._pending is not None
            read, graph = self._pending
            self._fitted = self._make().fit(read(), graph)
            self._pending = None
        return self._fitted

    def explain(self, incident: Incident, frames: FleetFrames, graph: nx.DiGraph) -> Explanation:
        """:meth:`Explainer.explain` of the fitted explainer."""
        return self.fitted().explain(incident, frames, graph)


def fit_sample(
    graph: nx.DiGraph, max_gpus: int, *, random_state: int, name: str
) -> NodeSample | None:
    """The whole nodes a fit of ``graph``'s fleet reads history for; None: every node.

    None while the fleet has at most ``max_gpus`` GPUs. The sample is stratified by rack and,
    where the graph knows them (each node's ``model``: dcgm-exporter's ``modelName``, asked once
    per node by the pipeline), by GPU model.
    """
    sizes = gpus_per_node(graph)
    total = sum(sizes.values())
    if total <= max_gpus:
        return None
    nodes = sample_nodes(graph, max_gpus, random_state=random_state)  # models: the graph's
    models = any(graph.nodes[n].get("model") for n in sizes if n in graph)
    logger.info(
        "fitting %s on %d of %d nodes (%d of %d GPUs), stratified by rack%s",
        name,
        len(nodes),
        len(sizes),
        sum(sizes[n] for n in nodes),
        total,
        " and GPU model" if models else "",
    )
    return NodeSample(nodes)
