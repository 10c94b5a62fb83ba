"""The contract every fleet scorer keeps, and the one registry of scorers by name.

A scorer is fitted on the past and then assesses a window ending at ``at`` (higher = riskier).
Callers never probe a scorer with ``getattr``: what the pipeline needs to know about it is part
of the contract (:class:`Scorer`). Names come from ``--detector`` / ``GPU_RISK_DETECTOR``;
:data:`SCORERS` is the only list of them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

import networkx as nx
import pandas as pd

from analysis.detectors import DETECTORS
from analysis.types import Assessment, FleetFrames

if TYPE_CHECKING:
    from analysis.feedback import Allowances
    from analysis.fit_window import Exclusion


@runtime_checkable
class Scorer(Protocol):
    """Fit on past frames, then assess a window ending at ``at``. Higher score = riskier.

    Attributes
    ----------
    name : str
        The registry name (``graph``, ``iforest``, ``static``, ...).
    needs_history : bool
        True when ``fit`` learns from history (the pipeline fetches ``fit_window`` before the first
        cycle and refits on schedule); False for fixed rules (``fit`` is a no-op).
    min_window : timedelta
        The least data before ``at`` one assessment needs; the pipeline's window is at least this.
    self_gating : bool
        True when the scorer already requires a condition to persist before it reports it (the
        static rules' Prometheus ``for:``): the incident tracker then opens at first sight.
    exclude : tuple
        Known incidents (:class:`analysis.fit_window.Exclusion`) left out of the next ``fit``.
    allowances : Mapping[tuple[str, str], tuple[float, float]]
        What false-alarm verdicts taught (:mod:`analysis.feedback`): (GPU key, feature) -> range of
        standardised deviation scored as normal on that GPU. The pipeline sets it before each
        ``assess``; failure-grade signals are never affected. Empty by default; a scorer without
        standardised features (the static rules) ignores it.
    usual_before : pd.DataFrame or None
        The previous model's per-GPU usual selves (its ``own_``), set by the pipeline before a
        refit: a GPU whose rows this fit leaves out (all under an open incident) keeps its own
        instead of taking its node's or the fleet's. None: none; a scorer without own baselines
        (the static rules) ignores it.
    """

    name: str
    exclude: tuple[Exclusion, ...]
    allowances: Allowances
    usual_before: pd.DataFrame | None

    @property
    def needs_history(self) -> bool:
        """Whether ``fit`` learns from history."""
        ...

    @property
    def min_window(self) -> timedelta:
        """The least data before ``at`` one assessment needs."""
        ...

    @property
    def self_gating(self) -> bool:
        """Whether the scorer requires persistence itself (the tracker then opens at once)."""
        ...

    @property
    def feature_window(self) -> timedelta | None:
        """The window of the GPUs' own-series reductions ``assess`` reads, or None.

        Set when ``assess`` builds :func:`analysis.features.build_features` over that window:
        the cycle may then have the source compute the reductions (``FleetFrames.reduced``) and
        fetch raw only the metrics the peer context compares. None when it reads raw frames.
        """
        ...

    def fit_start(self, start: datetime, end: datetime) -> datetime:
        """Where ``fit`` starts learning in a history of ``[start, end]`` (its fit window's
        start; the thermal constants read samples after it)."""
        ...

    def history_times(
        self, start: datetime, end: datetime, gpus: int | None = None
    ) -> list[datetime]:
        """The cycle ends ``fit`` featurises in a history of ``[start, end]`` of ``gpus`` GPUs
        (a larger fleet may be fitted on fewer: a row budget; None: as many as it ever takes):
        where a source may compute the reductions of ``feature_window`` for it
        (``FleetFrames.fit_reduced``). Evenly spaced whole minutes, oldest first; empty for a
        scorer that reads no reductions.
        """
        ...

    def fit(
        self, history: FleetFrames, graph: nx.DiGraph, *, fleet: nx.DiGraph | None = None
    ) -> Self:
        """Learn what normal looks like from history (frames strictly before the cycle).

        ``graph`` is what the history covers; ``fleet`` the whole fleet the model will score
        when that is more (a fit on a sample of nodes), default ``graph``.
        """
        ...

    def assess(self, frames: FleetFrames, graph: nx.DiGraph, at: datetime) -> Assessment:
        """Score every GPU from the window ending at ``at`` and group at-risk GPUs into incidents."""
        ...

    def with_at_risk(
        self, assessment: Assessment, graph: nx.DiGraph, keys: Collection[str], signal: str
    ) -> Assessment:
        """``assessment`` with the GPUs ``keys`` at risk too, whatever their risk this cycle
        (it held below the threshold for long: :mod:`analysis.sustained`): its incidents grouped
        again, ``signal`` added to those that exist only because of them; the scores are
        unchanged. A scorer whose risk is not calibrated (the static rules) returns
        ``assessment``."""
        ...


@dataclass(frozen=True)
class ScorerParams:
    """The settings a scorer is built from (``bot/config.Settings`` maps onto these)."""

    window: timedelta = timedelta(minutes=30)
    fit_window: timedelta = timedelta(hours=24)
    threshold: float = 0.9
    random_state: int = 0
    #: Row budget of a fit (cycles x GPUs; ``analysis.scoring.DEFAULT_FIT_MAX_ROWS``); 0: none.
    fit_max_rows: int = 200_000


def _learning(p: ScorerParams) -> dict[str, Any]:
    """The settings every learning scorer takes from ``p``."""
    return {
        "window": p.window,
        "fit_window": p.fit_window,
        "threshold": p.threshold,
        "random_state": p.random_state,
        "fit_max_rows": p.fit_max_rows,
    }


def _graph(detector: str) -> Callable[[ScorerParams], Scorer]:
    """Build the graph model over one tabular detector."""

    def make(p: ScorerParams) -> Scorer:
        """The product's model with ``detector`` as its outlier detector."""
        from analysis.scoring import GraphRiskModel

        return GraphRiskModel(detector=detector, **_learning(p))

    return make


def _iforest(p: ScorerParams) -> Scorer:
    """The plain Isolation Forest baseline on raw levels (no graph, no peers)."""
    from analysis.scoring import IForestBaseline

    return IForestBaseline(**_learning(p))


def _graph_noctx(p: ScorerParams) -> Scorer:
    """Ablation: the product without graph and peer context (the GPU's own features only)."""
    from analysis.ablation import NoContextModel

    return NoContextModel(**_learning(p))


def _guard(p: ScorerParams) -> Scorer:
    """Ablation: the product without the Isolation Forest (the per-feature tail guard alone)."""
    from analysis.ablation import GuardOnlyModel

    return GuardOnlyModel(**_learning(p))


def _static(_: ScorerParams) -> Scorer:
    """The static threshold rules users run today (deploy/prometheus/static-rules.yml)."""
    from analysis.static_rules import StaticRules

    return StaticRules()


#: Every scorer by name. ``graph`` is the product (graph model over Isolation Forest); the other
#: tabular detectors of :data:`analysis.detectors.DETECTORS` swap its outlier detector; ``iforest``
#: and ``static`` are the baselines it is compared with; ``graph-noctx`` (no peer, node, rack or
#: component features) and ``guard`` (no forest, the tail guard alone) are the ablations of
#: ``gpu-risk eval --ablation`` (:mod:`analysis.ablation`).
SCORERS: dict[str, Callable[[ScorerParams], Scorer]] = {
    "graph": _graph("iforest"),
    "iforest": _iforest,
    **{name: _graph(name) for name in DETECTORS if name != "iforest"},
    "static": _static,
    "graph-noctx": _graph_noctx,
    "guard": _guard,
}
#: The scorer the bot runs unless told otherwise.
DEFAULT_SCORER = "graph"
#: What a backtest compares by default: the product against its two baselines.
COMPARED_SCORERS: tuple[str, ...] = ("graph", "iforest", "static")


class UnknownScorerError(ValueError):
    """A scorer name that is not in :data:`SCORERS`."""


def make_scorer(name: str, params: ScorerParams | None = None) -> Scorer:
    """Build the scorer called ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`SCORERS`.
    params : ScorerParams, optional
        Window, fit window, threshold and seed (defaults when omitted).

    Returns
    -------
    Scorer
        An unfitted scorer.

    Raises
    ------
    UnknownScorerError
        When the name is unknown; the message lists the choices.
    """
    factory = SCORERS.get(name.strip().lower())
    if factory is None:
        raise UnknownScorerError(
            f"detector {name!r} is not available; choose one of {', '.join(SCORERS)}"
        )
    return factory(params or ScorerParams())
