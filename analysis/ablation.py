"""Ablations of the product model: each removes one ingredient, everything else unchanged.

The ablation (``gpu-risk eval --ablation``) runs these side by side with ``graph`` (the product),
``iforest`` (plain Isolation Forest on raw levels) and ``static`` (threshold rules) on the same
scenarios, so the difference in strict recall and lead time per fault kind is what the removed
ingredient contributes:

* :class:`NoContextModel` (``graph-noctx``): the product without graph and peer context. It
  scores only the GPU's own features (its counters, rates, load-adjusted temperatures and their
  slopes); peer comparisons (``*_vs_node``, ``*_vs_rack``, ``*_vs_fleet``), node context (fans,
  inlet, PSU volts, scrape health) and upstream components (``<kind>.<metric>``) are dropped
  from what the detector and the guard see. Own baselines, calibration, the tail guard, the
  failure-grade floor and incident grouping are unchanged.
* :class:`GuardOnlyModel` (``guard``): the product without the Isolation Forest. Risk is the
  per-feature tail guard's (Bonferroni-adjusted ``-log10 p``) alone, with the same failure-grade
  floor, features, baselines and grouping.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from analysis.features import FLAG_COLUMNS
from analysis.scoring import FeatureScorer

#: What ``gpu-risk eval --ablation`` compares: the product, its ablations and the baselines.
ABLATION_SCORERS: tuple[str, ...] = ("graph", "graph-noctx", "guard", "iforest", "static")

#: Column prefixes of node context (fans, inlet air, PSU volts, scrape health, node/rack levels).
NODE_CONTEXT_PREFIXES: tuple[str, ...] = ("fan_", "inlet", "volts_", "up_", "node_", "rack_")


def is_context_column(name: str) -> bool:
    """Return whether a feature column carries peer, node, rack or component context.

    Parameters
    ----------
    name : str
        A feature column name.

    Returns
    -------
    bool
        True for component columns (``<kind>.<metric>...``), peer comparisons (``*_vs_*``) and
        node context (:data:`NODE_CONTEXT_PREFIXES`); False for the GPU's own features.
    """
    return "." in name or "_vs_" in name or name.startswith(NODE_CONTEXT_PREFIXES)


class NoContextModel(FeatureScorer):
    """The product model on the GPU's own features only (name ``graph-noctx``)."""

    name: str = "graph-noctx"
    #: The fleet's common shift is peer context too (``analysis.common_mode``).
    common_mode: ClassVar[bool] = False

    def _select(self, features: pd.DataFrame) -> list[str]:
        """Return the product's columns minus every peer, node, rack and component column."""
        return [c for c in super()._select(features) if not is_context_column(c)]


class GuardOnlyModel(FeatureScorer):
    """The product model without the forest: the per-feature tail guard alone (name ``guard``)."""

    name: str = "guard"

    def score_features(self, features: pd.DataFrame) -> pd.Series:
        """Return the guard's calibrated risk in [0, 1] per GPU, floored by failure signals."""
        z = self.standardise(features).to_numpy(dtype=np.float64)
        risk = np.clip(self.tails_.score(z) / self.decades, 0.0, 1.0)
        if self.rule_floor:
            present = [c for c in FLAG_COLUMNS if c in features.columns]
            if present:
                hit = features[present].astype(bool).any(axis=1).to_numpy()
                risk = np.where(hit, np.maximum(risk, self.floor), risk)
        return pd.Series(risk, index=features.index, name="risk")
