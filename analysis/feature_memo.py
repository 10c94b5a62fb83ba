"""Features computed once per cycle for several scorers replaying the same data side by side.

An ablation replays one scenario with the product and its variants (``gpu-risk eval
--ablation``): every learning scorer featurises the same frames at the same cycle, and that
featurising is most of a replay's time. :class:`FeatureMemo` keeps the latest cycle's feature
table (and the latest fit's feature history) so the second scorer reuses the first one's.

Only share one memo among pipelines that read the same source (``bot.wiring.backtest_pipelines``
wires it): the key is the window, the cycle and the fleet, not the data. The tables it returns are
shared, so callers must not modify them in place (the scorers don't).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import networkx as nx
import pandas as pd

from analysis.features import build_features, feature_history, gpu_keys_of
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


def _key(temp_per_watt: Mapping[str, float] | None) -> Hashable:
    """The learnt slopes as part of a key (features differ with them)."""
    return tuple(sorted((temp_per_watt or {}).items()))
