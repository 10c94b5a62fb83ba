"""The interface every fleet scorer implements (graph model, plain Isolation Forest, static rules)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, Self, runtime_checkable

import networkx as nx

from analysis.types import Assessment, FleetFrames


@runtime_checkable
class Scorer(Protocol):
    """Fit on past frames, then assess a window ending at ``at``. Higher score = riskier."""

    name: str

    def fit(self, history: FleetFrames, graph: nx.DiGraph) -> Self:
        """Learn what normal looks like from history (frames strictly before the cycle)."""
        ...

    def assess(self, frames: FleetFrames, graph: nx.DiGraph, at: datetime) -> Assessment:
        """Score every GPU from the window ending at ``at`` and group at-risk GPUs into incidents."""
        ...
