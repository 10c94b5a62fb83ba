"""What a model fit is made of in the running bot: the model cycles read, the fit's history and
its sample.

:class:`Model` is what a cycle scores and explains with, swapped in whole by a refit
(``bot.pipeline.Pipeline.install``). :func:`read_history` is what a fit learns from: from a TSDB
(a source with ``reduce_at``), the GPUs' own reductions at the fit's cycle ends, computed by the
server, and the peer metrics raw, as each cycle reads them; :func:`explainer_history` the raw
series the explainer learns from, of a sample of nodes. :func:`fit_sample` is which nodes a fit
reads history for when the fleet is larger than ``GPU_RISK_FIT_MAX_GPUS`` (the draw itself is
pure: ``analysis.fit_sample``); the GPU models it is stratified by are the graph's (the pipeline
asks the source once per node: Prometheus, dcgm-exporter's ``modelName``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import networkx as nx

from analysis.context import PEER_METRICS
from analysis.explain import Explainer
from analysis.feature_plan import FeaturePlan, grid_time
from analysis.features import DEFAULT_RECENT
from analysis.fit_sample import gpus_per_node, sample_nodes
from analysis.scorer import Scorer
from analysis.types import Explanation, FleetFrames, Incident
from storage.source import MetricsSource, NodeSample

logger = logging.getLogger(__name__)

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
    """
    reduce_at = getattr(source, "reduce_at", None)
    window = scorer.feature_window
    if nodes is None and reduce_at is not None and window is not None:
        plan = FeaturePlan(window, DEFAULT_RECENT, step)
        most = scorer.history_times(start, end)  # a fleet of any size: the most cycle ends
        if _on_grid(most, step) and reductions_pay(plan, len(most), (end - start) // step + 1):
            raw = source.fetch(start, end, step, gpu_metrics=PEER_METRICS)
            # a large fleet is fitted on fewer cycle ends (the scorer's row budget)
            times = scorer.history_times(start, end, gpus=len(raw.gpus))
            if _on_grid(times, step):
                return replace(raw, fit_reduced=tuple(reduce_at(plan, times)))
    return source.fetch(start, end, step, nodes=nodes)


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
