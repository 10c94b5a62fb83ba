"""What a model fit is made of in the running bot: the model cycles read, and the fit's sample.

:class:`Model` is what a cycle scores and explains with, swapped in whole by a refit
(``bot.pipeline.Pipeline.install``). :func:`fit_sample` is which nodes a fit reads history for
when the fleet is larger than ``GPU_RISK_FIT_MAX_GPUS`` (the draw itself is pure:
``analysis.fit_sample``); the GPU models it is stratified by are the graph's (the pipeline asks
the source once per node: Prometheus, dcgm-exporter's ``modelName``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx

from analysis.explain import Explainer
from analysis.fit_sample import gpus_per_node, sample_nodes
from analysis.scorer import Scorer
from analysis.types import Explanation, FleetFrames, Incident
from storage.source import NodeSample

logger = logging.getLogger(__name__)


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
    ``make().fit(history, graph)`` as at fit time, on the same frames and graph (held until
    then, then dropped), so the same explanations; nothing is fitted without an incident.
    """

    def __init__(
        self, make: Callable[[], Explainer], history: FleetFrames, graph: nx.DiGraph
    ) -> None:
        """Hold what the fit would have fitted on."""
        self._make = make
        self._pending: tuple[FleetFrames, nx.DiGraph] | None = (history, graph)
        self._fitted: Explainer | None = None

    def fitted(self) -> Explainer:
        """The explainer, fitted now if it was not yet."""
        if self._fitted is None:
            assert self._pending is not None
            history, graph = self._pending
            self._fitted = self._make().fit(history, graph)
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
