"""Features computed once: per cycle for several scorers side by side, per run of cycles.

An ablation replays one scenario with the product and its variants (``gpu-risk eval
--ablation``): every learning scorer featurises the same frames at the same cycle, and that
featurising is most of a replay's time. :class:`FeatureMemo` keeps the latest cycle's feature
table (and the latest fit's feature history) so the second scorer reuses the first one's.

Only share one memo among pipelines that read the same source (``bot.wiring.backtest_pipelines``
wires it): the key is the window, the cycle and the fleet, not the data. The tables it returns are
shared, so callers must not modify them in place (the scorers don't).

A one-shot ``gpu-risk scan`` runs ten cycles whose windows overlap, all cut from one read of
their span (``storage.span_source.SpanSource``). :class:`SpanFeatures` pivots and compares the
span's peer metrics once (:class:`analysis.features.RunPeers`, as a fit does for its history)
and cuts each cycle's rows from them: the same features as each cycle's own, at a fraction of
the cost (the peer comparisons were most of a 10,000-GPU scan's feature time).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import networkx as nx
import pandas as pd

from analysis.features import (
    RunPeers,
    build_features,
    feature_history,
    gpu_keys_of,
)
from analysis.thermal import FLEET
from analysis.types import FleetFrames


@dataclass
class FeatureMemo:
    """The latest cycle's features and the latest fit's feature history, by what they depend on."""

    hits: int = 0
    misses: int = 0
    _latest: dict[str, tuple[Hashable, pd.DataFrame]] = field(default_factory=dict, repr=False)

    def build(
        self,
        frames: FleetFrames,
        graph: nx.DiGraph,
        at: datetime,
        window: timedelta,
        *,
        temp_per_watt: Mapping[str, float] | None = None,
    ) -> pd.DataFrame:
        """Return :func:`analysis.features.build_features` for this cycle, computed once."""
        key = (frames.start, frames.end, at, window, tuple(gpu_keys_of(graph)), _key(temp_per_watt))
        return self._get(
            "cycle",
            key,
            lambda: build_features(frames, graph, at, window, temp_per_watt=temp_per_watt),
        )

    def history(
        self,
        frames: FleetFrames,
        graph: nx.DiGraph,
        times: Iterable[datetime],
        window: timedelta,
        *,
        temp_per_watt: Mapping[str, float] | None = None,
    ) -> pd.DataFrame:
        """Return :func:`analysis.features.feature_history` for this fit, computed once."""
        at = tuple(times)
        key = (frames.start, frames.end, at, window, tuple(gpu_keys_of(graph)), _key(temp_per_watt))
        return self._get(
            "history",
            key,
            lambda: feature_history(frames, graph, at, window, temp_per_watt=temp_per_watt),
        )

    def _get(self, kind: str, key: Hashable, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        """Return the kept table when its key matches, else compute and keep it (one per kind)."""
        kept = self._latest.get(kind)
        if kept is not None and kept[0] == key:
            self.hits += 1
            return kept[1]
        self.misses += 1
        table = compute()
        self._latest[kind] = (key, table)
        return table


def _fleet_key(graph: nx.DiGraph) -> Hashable:
    """The fleet as the peer comparisons see it: each GPU, and each node's rack and model."""
    nodes = sorted(
        (str(n), str(d.get("rack", "")), str(d.get("model", "")))
        for n, d in graph.nodes(data=True)
        if d.get("kind") == "node"
    )
    return (tuple(gpu_keys_of(graph)), tuple(nodes))


def _key(temp_per_watt: Mapping[str, float] | None) -> Hashable:
    """The learnt slopes as part of a key (features differ with them)."""
    return tuple(sorted((temp_per_watt or {}).items()))


@dataclass
class SpanFeatures(FeatureMemo):
    """A run of cycles' features from the frames of their whole span, read once.

    ``span_of(frames)``: the frames of the span a cycle's ``frames`` were cut from (its
    window, and the span holds its lead-in), or None when they were read on their own. With
    the fit's degrees per watt (the fleet's included) the span's peer rows are computed once
    per fleet and model and cut per cycle; anything else is built as :class:`FeatureMemo` does.
    """

    span_of: Callable[[FleetFrames], FleetFrames | None] = lambda _: None
    runs: int = 0
    """How many times the span's peer rows were computed (once per span, fleet and model)."""
    _run: tuple[Hashable, RunPeers] | None = field(default=None, repr=False)

    def build(
        self,
        frames: FleetFrames,
        graph: nx.DiGraph,
        at: datetime,
        window: timedelta,
        *,
        temp_per_watt: Mapping[str, float] | None = None,
    ) -> pd.DataFrame:
        """The cycle's features, its peer rows cut from the span's."""
        span = self.span_of(frames)
        if span is None or not temp_per_watt or FLEET not in temp_per_watt:
            return super().build(frames, graph, at, window, temp_per_watt=temp_per_watt)
        key = (span.start, span.end, _fleet_key(graph), _key(temp_per_watt))
        if self._run is None or self._run[0] != key:
            self.runs += 1
            self._run = (key, RunPeers.of(span, graph, temp_per_watt))
        return self._run[1].features(frames, graph, at, window)
