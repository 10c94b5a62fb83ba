"""What an incident is shown with: the raw series of its nodes, its explanation and its images.

A reduced cycle reads only the peer metrics raw (``Pipeline.read_window``); an incident's
explanation and images need all of its nodes' series, so :meth:`Evidence.frames_for` fetches them
for the incidents' nodes alone. :meth:`Evidence.explain` calls the explainer (DoWhy) once per
incident and change (severity, GPUs, model), keeping the earlier explanation otherwise;
:meth:`Evidence.images` renders the graph and metric PNGs of the incidents about to be posted, the
panels from the incidents' nodes and a bounded set of peers (:meth:`Evidence.picture_frames`).
Which explainer a cycle uses (and fitting one for a model loaded from disk) is the pipeline's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import networkx as nx

from analysis.explain import Explainer
from analysis.frames import with_gpu_of
from analysis.plots import picture_read, render_incident_graph, render_incident_metrics
from analysis.types import Assessment, FleetFrames, Incident, Severity
from bot.fit import DeferredExplainer
from storage.repository import IncidentRecord
from storage.source import MetricsSource, MetricsSourceError, NodeSample

logger = logging.getLogger("bot.pipeline")  # the records keep the name they had before the split

Images = Mapping[str, bytes]


@dataclass
class Evidence:
    """An incident's raw series, explanation and images, for one pipeline (its memo is its own)."""

    window: timedelta
    step: timedelta
    explains: bool
    """Whether incidents are explained at all (the pipeline has an explainer factory)."""
    render: bool
    _explained: dict[tuple[str, Severity, frozenset[str]], Incident] = field(
        default_factory=dict, init=False
    )
    _explained_with: Explainer | DeferredExplainer | None = field(default=None, init=False)

    def frames_for(
        self,
        frames: FleetFrames,
        incidents: Sequence[Incident],
        at: datetime,
        source: MetricsSource,
    ) -> FleetFrames:
        """The cycle's frames with every GPU series of the incidents' nodes, raw.

        One fetch from ``source`` (the pipeline's, which a one-shot scan swaps) restricted to
        their nodes; if it fails, explanations and images make do with what the cycle read
        (logged).
        """
        if frames.reduced is None or not incidents or not (self.explains or self.render):
            return frames
        nodes = sorted({g.node for inc in incidents for g in inc.gpus})
        try:
            extra = source.fetch(at - self.window, at, self.step, nodes=nodes)
        except MetricsSourceError as exc:
            logger.warning("raw series of %s unavailable for explanations: %s", nodes, exc)
            return frames
        return with_gpu_of(frames, extra.gpu, nodes)

    def explain(
        self,
        incidents: Sequence[Incident],
        frames: FleetFrames,
        graph: nx.DiGraph,
        explainer: Explainer | DeferredExplainer,
    ) -> list[Incident]:
        """Attach ``explainer``'s explanation to every incident, calling it only when needed.

        An incident is explained again only when its severity or its GPUs change (which is when
        an update is posted) or the explainer (the model) changed.
        """
        if explainer is not self._explained_with:  # a new model: explain everything afresh
            self._explained.clear()
            self._explained_with = explainer
        out, seen = [], set()
        for inc in incidents:
            key = (inc.dedup_key, inc.severity, frozenset(g.key for g in inc.gpus))
            seen.add(key)
            done = self._explained.get(key)
            if done is None:
                done = replace(inc, explanation=explainer.explain(inc, frames, graph))
                self._explained[key] = done
            out.append(replace(inc, explanation=done.explanation))
        for key in [k for k in self._explained if k not in seen]:
            del self._explained[key]
        return out

    def images(
        self,
        incidents: Sequence[Incident],
        stored: Sequence[IncidentRecord],
        frames: FleetFrames,
        graph: nx.DiGraph,
        assessment: Assessment,
        *,
        at: datetime,
        source: MetricsSource,
    ) -> dict[str, Images]:
        """Render the graph and metric PNGs of incidents not yet stored (the ones to be posted).

        They are committed with the post (``apply_cycle(images=)``), so they survive restarts. A
        rendering failure is logged and the incident is posted without images.
        """
        known = {r.dedup_key for r in stored}
        new = [inc for inc in incidents if inc.dedup_key not in known]
        if not self.render or not new:
            return {}
        picture = self.picture_frames(frames, new, graph, at, source)
        scores = {s.key: s.score for s in assessment.scores}
        out: dict[str, Images] = {}
        for inc in new:
            try:
                out[inc.dedup_key] = {
                    "graph": render_incident_graph(inc, graph, scores),
                    "metrics": render_incident_metrics(inc, picture),
                }
            except Exception:
                logger.exception("rendering images of incident %s failed", inc.dedup_key)
        return out

    def picture_frames(
        self,
        frames: FleetFrames,
        incidents: Sequence[Incident],
        graph: nx.DiGraph,
        at: datetime,
        source: MetricsSource,
    ) -> FleetFrames:
        """What the incidents' metric panels are drawn from.

        A reduced cycle's frames hold the whole fleet, most of it as the peer metrics alone: the
        incidents' nodes and their panels' peers, chosen from the graph's nodes, are read from
        ``source`` with the GPU metrics a panel could show and every other series
        (``analysis.plots.picture_read``), in one fetch, so a picture costs the incident's
        series, not the fleet's. If it fails, the panels are drawn from the cycle's frames
        (logged).
        """
        if frames.reduced is None:
            return frames
        names = [n for n, d in graph.nodes(data=True) if d.get("kind") == "node"]
        nodes, metrics = picture_read(incidents, names)
        try:
            return source.fetch(
                at - self.window,
                at,
                self.step,
                gpu_metrics=metrics or None,
                nodes=NodeSample(nodes),
            )
        except MetricsSourceError as exc:
            logger.warning("series of %d nodes unavailable for the pictures: %s", len(nodes), exc)
            return frames
