"""The alert flow: fetch -> graph -> scores -> incidents -> explanations -> store -> (outbox) notify.

``Pipeline.run_cycle`` is the whole flow, one step per line, and the only cycle engine: the
running bot (``run``), a one-shot ``scan``, the ``backtest`` replay and the ``demo`` all drive it,
differing only in the source, the clock, the store and the sinks. Everything it needs comes in
through the constructor (the composition root in ``bot/wiring.py`` builds it from Settings).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import networkx as nx

from analysis.context import PEER_METRICS
from analysis.explain import Explainer
from analysis.feature_plan import FeaturePlan, grid_time
from analysis.features import DEFAULT_RECENT, gpu_keys_of
from analysis.fit_sample import fit_graph
from analysis.fit_window import Exclusion, NotEnoughHistoryError
from analysis.frames import split_lead
from analysis.graph import build_graph
from analysis.maintenance import MaintenanceWindow, active_targets
from analysis.reduce_frames import with_reductions_of
from analysis.scorer import Scorer
from analysis.scoring import fleet_fingerprint
from analysis.sustained import DEFAULT_SUSTAINED_FOR, DEFAULT_WATCH, SustainedRisk, held_signal
from analysis.thermal import lead_in
from analysis.tracker import IncidentTracker
from analysis.types import Assessment, FleetFrames, GpuRef, Incident, Topology
from bot.cycle_record import CycleOutcome, CycleRecorder
from bot.evidence import Evidence, Images
from bot.fit import (
    FIT_SPAN_SAMPLES,
    DeferredExplainer,
    Model,
    explainer_history,
    fit_sample,
    read_history,
)
from bot.lessons import Lessons
from bot.telemetry import BotMetrics
from storage.repository import IncidentRecord, Repository
from storage.rolling import RollingWindow
from storage.source import MetricsSource, MetricsSourceError, NodeSample, side_by_side

logger = logging.getLogger(__name__)


@dataclass
class Pipeline:
    """One scan cycle end to end, holding the fitted model and the hysteresis between cycles."""

    source: MetricsSource
    topology: Topology
    repository: Repository
    make_scorer: Callable[[], Scorer]
    make_explainer: Callable[[], Explainer] | None = None
    window: timedelta = timedelta(minutes=30)
    step: timedelta = timedelta(minutes=1)
    fit_window: timedelta = timedelta(hours=24)
    open_after: int = 2
    close_after: int = 5
    open_for: timedelta = timedelta(minutes=5)
    close_for: timedelta = timedelta(0)
    """How long an incident stays quiet before it closes, besides ``close_after`` cycles (the
    composition root passes ``GPU_RISK_CLOSE_FOR``; 0: cycles only)."""
    close_for_critical: timedelta | None = None
    """The same for an incident that was critical while open (``GPU_RISK_CLOSE_FOR_CRITICAL``;
    None: ``close_for``). Not for self-gating scorers (rules resolve when they stop firing)."""
    hold_risk: float = 0.0
    """An open incident is not quiet while its GPUs' risk stays at least this (hysteresis below
    the threshold; ``GPU_RISK_HOLD_RISK``; 0: none). Not for self-gating scorers (rules)."""
    sustained_risk: float = DEFAULT_WATCH
    """A GPU whose risk held at least this for ``sustained_for`` is at risk too, below the
    threshold (:mod:`analysis.sustained`; ``GPU_RISK_SUSTAINED_RISK``; 0: off). Not for
    self-gating scorers (the rules' risk is no calibrated chance)."""
    sustained_for: timedelta = DEFAULT_SUSTAINED_FOR
    """How long (``GPU_RISK_SUSTAINED_FOR``), judged at checkpoints 15 minutes apart."""
    metrics: BotMetrics | None = None
    load_model: Callable[[nx.DiGraph], Scorer | None] | None = None
    save_model: Callable[[Scorer, datetime], None] | None = None
    render: bool = True
    maintenance: Sequence[MaintenanceWindow] = ()
    record_scores: bool = True
    name: str = "alerts"
    fit_max_gpus: int | None = None
    """A fleet with more GPUs is fitted on a sample of whole nodes holding about this many
    (``analysis.fit_sample``, stratified by rack and GPU model); None or 0: the whole fleet."""
    random_state: int = 0
    """Seed of the fit's sample of nodes."""
    fit_span_samples: int = FIT_SPAN_SAMPLES
    """Most raw peer-metric samples a fit from a TSDB holds at once; a larger history is read
    one span of cycle windows at a time (:func:`bot.fit.read_history`)."""
    defer_explainer: bool = False
    """Fit the explainer when it first explains rather than with the scorer (``DeferredExplainer``:
    the same explanations; the fit's history is held until then). For one-shot runs that may
    never explain (``gpu-risk scan``); the running bot fits it with the scorer."""
    cluster: str = ""
    """The cluster it watches, as named in metrics and logs (its store is ``repository``, scoped
    to the cluster by the composition root when the bot watches several)."""
    tracker: IncidentTracker = field(init=False)
    sustained: SustainedRisk | None = field(default=None, init=False)
    needs_history: bool = field(default=True, init=False)
    self_gating: bool = field(default=False, init=False)
    feature_window: timedelta | None = field(default=None, init=False)
    current: Model | None = field(default=None, init=False)
    """The model cycles score with: replaced whole by a refit (``install``), never edited."""
    restored: bool = field(default=False, init=False)
    last_end: datetime | None = field(default=None, init=False)
    """The end of the last window a cycle read. The window itself is not kept: at 100,000 GPUs
    its frames are most of a gigabyte, and the rolling read keeps what the next one needs."""
    last_graph: nx.DiGraph | None = field(default=None, init=False)
    last_seen: dict[GpuRef, datetime] = field(default_factory=dict, init=False)
    gpu_models: dict[str, str] = field(default_factory=dict, init=False)
    """Each node's GPU model, asked of the source once per node seen (``graph_of``)."""
    _models_asked: set[str] = field(default_factory=set, init=False)
    evidence: Evidence = field(init=False)
    """An incident's raw series, explanation memo and images (``bot.evidence``)."""
    lessons: Lessons = field(init=False)
    """What the stored false-alarm verdicts teach (``bot.lessons``)."""
    rolling: RollingWindow = field(default_factory=RollingWindow, init=False, repr=False)
    """The last window read: a source with ``rolling_reads`` (a TSDB) is asked only for a
    cycle's new minutes (``storage.rolling``)."""
    _graph: tuple[Hashable, nx.DiGraph] | None = field(default=None, init=False, repr=False)
    _fingerprint: tuple[nx.DiGraph, str] | None = field(default=None, init=False, repr=False)
    _swap: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        """Read the scorer's contract; start with no streaks in memory (the store has the rest)."""
        probe = self.make_scorer()
        self.needs_history, self.self_gating = probe.needs_history, probe.self_gating
        self.feature_window = probe.feature_window
        self.window = max(self.window, probe.min_window)
        explains = self.make_explainer is not None
        self.evidence = Evidence(self.window, self.step, explains, self.render)
        self.lessons = Lessons(self.repository)
        self.resume()

    @property
    def scorer(self) -> Scorer | None:
        """The current model's scorer (None before the first fit or load)."""
        model = self.current
        return model.scorer if model is not None else None

    @property
    def explainer(self) -> Explainer | DeferredExplainer | None:
        """The current model's explainer (None until fitted: a loaded model fits it lazily)."""
        model = self.current
        return model.explainer if model is not None else None

    @property
    def fingerprint(self) -> str | None:
        """The fleet fingerprint the current model serves."""
        model = self.current
        return model.fingerprint if model is not None else None

    def resume(self) -> None:
        """Drop in-memory streaks; the next cycle restores open incidents and streaks from the store.

        Call it when this replica (re)gains the leadership: another leader may have changed them
        (its streaks toward opening are stored with each cycle, ``Repository.tracker_state``).
        """
        # A scorer that already requires persistence (Prometheus ``for:``) opens at first sight.
        gated = self.self_gating
        self.tracker = IncidentTracker(
            open_after=1 if gated else self.open_after,
            close_after=self.close_after,
            open_for=timedelta(0) if gated else self.open_for,
            close_for=self.close_for,
            close_for_critical=None if gated else self.close_for_critical,
            hold=None if gated or self.hold_risk <= 0 else self.hold_risk,
            idle_is_quiet=gated,  # alerting rules resolve when the expression stops firing
        )
        held = not gated and self.sustained_risk > 0
        self.sustained = SustainedRisk(self.sustained_risk, self.sustained_for) if held else None
        self.restored = False

    def run_cycle(self, at: datetime) -> CycleOutcome:
        """Run the alert flow once for the window ending at ``at``."""
        started = time.perf_counter()
        try:
            frames = self.read_window(at)
        except MetricsSourceError as exc:
            return self.record.source_failed(at, str(exc), started)
        graph = self.graph_of(frames)
        self.last_end, self.last_graph = frames.end, graph  # the graph: what a refit serves
        try:
            model = self.model_for(graph, at, frames)  # this cycle's model, whatever a refit does
        except MetricsSourceError as exc:  # the history a (re)fit needs could not be read
            return self.record.source_failed(at, str(exc), started)
        except NotEnoughHistoryError as exc:
            return self.record.model_failed(at, str(exc), started)
        scorer = model.scorer
        scorer.allowances = self.allowances(at)  # what false-alarm verdicts taught, from the store
        assessment = scorer.assess(frames, graph, at)
        try:
            incidents = self.track(assessment, graph, scorer)
            raw = self.evidence.frames_for(frames, incidents, at, self.source)
            explained = self.explain(incidents, raw, graph, at, model)
            stored = self.repository.open_incidents()  # as before this cycle's decisions
            images = self.evidence.images(
                explained, stored, raw, graph, assessment, at=at, source=self.source
            )
            decisions = self.repository.apply_cycle(
                at,
                explained,
                True,
                scores=assessment.scores if self.record_scores else None,
                unobserved=self.unobserved(frames, stored),
                maintenance=self.maintenance_targets(at),
                images=images,
                tracker=(self.name, self.tracker_state()),
                merged=self.tracker.merged,
            )
        except BaseException:
            self.resume()  # the streaks in memory ran ahead of the store: take the store's again
            raise
        return self.record.succeeded(at, assessment, explained, decisions, started)

    # ------------------------------------------------------------------ steps

    def graph_of(self, frames: FleetFrames) -> nx.DiGraph:
        """The dependency graph of every GPU known so far, not only those reporting now.

        A GPU that fell off the bus stays in the graph for ``fit_window``: it is scored as vanished
        instead of silently leaving the fleet, and the fleet's fingerprint does not change, so the
        model is not refitted each time a GPU disappears or comes back. A new GPU does change it.
        """
        for ref in frames.gpus:
            self.last_seen[ref] = frames.end
        horizon = frames.end - self.fit_window
        self.last_seen = {g: t for g, t in self.last_seen.items() if t >= horizon}
        self._learn_models({ref.node for ref in self.last_seen}, frames.end)
        gpus = sorted(self.last_seen)
        key = (id(self.topology), tuple(gpus), tuple(sorted(self.gpu_models.items())))
        if self._graph is None or self._graph[0] != key:  # the same fleet: the same graph
            self._graph = (key, build_graph(self.topology, gpus, self.gpu_models))
        return self._graph[1]

    def _learn_models(self, nodes: set[str], at: datetime) -> None:
        """Ask the source for the GPU model of nodes not asked about yet (one instant query).

        A source that cannot say (no ``gpu_models``, no ``modelName`` label) leaves them unknown:
        GPUs of unknown model are compared with each other. A failed query is asked again next
        cycle, never a failed cycle.
        """
        ask = getattr(self.source, "gpu_models", None)
        if ask is None or nodes <= self._models_asked:
            return
        try:
            self.gpu_models.update(ask(at, self.window))
        except MetricsSourceError as exc:
            logger.warning("GPU models unknown this cycle (compared across models): %s", exc)
            return
        self._models_asked |= nodes

    def track(self, assessment: Assessment, graph: nx.DiGraph, scorer: Scorer) -> list[Incident]:
        """Streaks over cycles; after a restart it starts from the store's incidents and streaks.

        GPUs whose risk held below the threshold for ``sustained_for`` are at risk too
        (:mod:`analysis.sustained`): ``scorer`` groups them again with this cycle's."""
        if not self.restored:
            self.tracker.restore(r.incident for r in self.repository.open_incidents())
            state = self.repository.tracker_state(self.name)
            if state is not None:
                self.tracker.load_state(state)
                if self.sustained is not None:
                    self.sustained.load_state(state.get("sustained"))
            self.restored = True
        if self.sustained is None:
            return self.tracker.update(assessment)
        held = self.sustained.update(assessment.at, assessment.scores)
        if held:
            assessment = scorer.with_at_risk(assessment, graph, held, self.sustained.signal)
        # an hour of held risk is the persistence the streak would ask for: an incident that
        # exists only because of it (saying so) opens at once
        judged = [i.dedup_key for i in assessment.incidents if held_signal(i.signals)]
        return self.tracker.update(assessment, at_once=judged)

    def tracker_state(self) -> dict[str, Any]:
        """The streaks the store keeps with each cycle: the tracker's and the held risks'."""
        state = self.tracker.state()
        if self.sustained is not None:
            state["sustained"] = self.sustained.state()
        return state

    def allowances(self, at: datetime) -> dict[tuple[str, str], tuple[float, float]]:
        """What the false-alarm verdicts standing at ``at`` teach (``bot.lessons``)."""
        return self.lessons.allowances(at)

    def maintenance_targets(self, at: datetime) -> list[str]:
        """What is under maintenance at ``at``: the settings' windows, those added in Slack (one
        read of the store) and the nodes Kubernetes has cordoned (``MetricsSource.cordoned``).

        A failed cordon read is logged and counts as none cordoned: it never fails the cycle.
        """
        windows = [*self.maintenance, *(r.window for r in self.repository.maintenance_windows(at))]
        try:
            cordoned = self.source.cordoned(at)
        except MetricsSourceError as exc:
            logger.warning("cordoned nodes at %s unknown: %s", at.isoformat(), exc)
            cordoned = frozenset()
        return sorted(set(active_targets(windows, at)) | cordoned)

    def unobserved(self, frames: FleetFrames, stored: Sequence[IncidentRecord]) -> set[str]:
        """GPUs of open incidents with no data this cycle: their incidents must not resolve."""
        seen = {g.key for g in frames.gpus}
        return {g.key for rec in stored for g in rec.incident.gpus if g.key not in seen}

    def model(self, graph: nx.DiGraph, at: datetime, frames: FleetFrames | None = None) -> Scorer:
        """Return the fitted scorer for this fleet: in memory, stored, or fitted on the past."""
        return self.model_for(graph, at, frames).scorer

    def model_for(
        self,
        graph: nx.DiGraph,
        at: datetime,
        frames: FleetFrames | None = None,
        *,
        history_read: Callable[[], object] | None = None,
    ) -> Model:
        """Return the model for this fleet: the current one, the stored one, or one fitted now.

        Fitting here (no model yet, or the fleet changed) is the cold start: inline, in the
        cycle. The daily refit runs beside the cycles (``refit``) and swaps its model in whole.
        ``history_read``: called when a fit here has read its history, before it computes (a
        one-shot scan then sends its cycles' reads: ``bot.commands.scan.fit_beside_span``).
        """
        fingerprint = self._fingerprint_of(graph)
        model = self.current
        if model is not None and model.fingerprint == fingerprint:
            return model
        stored = self.load_model(graph) if self.load_model else None
        if stored is None:
            return self.install(self.fit_model(at, graph, frames, history_read=history_read))
        return self.install(Model(stored, fingerprint))

    def _fingerprint_of(self, graph: nx.DiGraph) -> str:
        """:func:`fleet_fingerprint` of ``graph``, once per graph (``graph_of`` keeps one while
        the fleet stays the same; nothing edits a fleet graph)."""
        if self._fingerprint is None or self._fingerprint[0] is not graph:
            self._fingerprint = (graph, fleet_fingerprint(graph))
        return self._fingerprint[1]

    def refit(
        self, at: datetime, graph: nx.DiGraph | None = None, frames: FleetFrames | None = None
    ) -> Scorer:
        """Fit a fresh model on the history before ``at``'s window and swap it in whole.

        Cycles running meanwhile keep scoring with the current model (``fit_model`` touches no
        state a cycle reads); the new one is saved, then installed with one assignment.
        """
        return self.install(self.fit_model(at, graph, frames)).scorer

    def install(self, model: Model) -> Model:
        """Make ``model`` the one cycles score with (one reference assignment)."""
        with self._swap:
            self.current = model
        return model

    def fit_model(
        self,
        at: datetime,
        graph: nx.DiGraph | None = None,
        frames: FleetFrames | None = None,
        *,
        history_read: Callable[[], object] | None = None,
    ) -> Model:
        """Fit a scorer (and explainer) on the history before ``at``'s window, excluding open
        incidents; save it; return it without installing it.

        ``graph``: the fleet (default: the last cycle's, else the GPUs of the history). A fleet
        of more than ``fit_max_gpus`` GPUs is fitted on a sample of whole nodes
        (:meth:`fit_sample`): only their history is read; the model still scores every GPU.
        A scorer without ``needs_history`` (fixed rules) is "fitted" on the cycle's own frames
        (``frames``, or the window ending at ``at``): no history is fetched for it.
        ``history_read``: called once the history is read, before the fit computes.
        """
        scorer = self.make_scorer()
        if not scorer.needs_history:
            window = frames if frames is not None else self.read_window(at)
            graph = graph if graph is not None else self.graph_of(window)
            return Model(scorer.fit(window, graph), fleet_fingerprint(graph))
        sampled = self.fit_sample(at, graph)
        sample = sampled[1] if sampled is not None else None
        history = self._history(at, sample, scorer, graph)
        if history_read is not None:
            history_read()
        if sampled is not None:
            graph = sampled[0]
        graph = graph if graph is not None else self.graph_of(history)
        scorer.exclude = (*scorer.exclude, *self._known_incidents())
        if self.current is not None:  # the usual selves the GPUs under those incidents keep
            scorer.usual_before = getattr(self.current.scorer, "own_", None)
        if sample is None:
            scorer.fit(history, graph)
        else:  # fitted on a sample, it serves (and is stored for) the whole fleet
            scorer.fit(history, fit_graph(graph, sample), fleet=graph)
        fingerprint = fleet_fingerprint(graph)
        explainer: Explainer | DeferredExplainer | None = None
        fleet = graph

        def raw() -> FleetFrames:  # the explainer's: the fit's raw series, or a sample's
            if history.fit_reduced is None:
                return history
            return explainer_history(
                self.source,
                history.start,
                history.end,
                history.step,
                fleet,
                random_state=self.random_state,
                name=self.name,
            )

        if self.make_explainer is not None and self.defer_explainer:
            explainer = DeferredExplainer(self.make_explainer, raw, graph)
        elif self.make_explainer is not None:
            # every kind's causal models now, with the fit (off the alert path): an incident's
            # first explanation then costs ~0.1 s, not the ~0.9 s of fitting them on first use
            explainer = self.make_explainer().fit(raw(), graph).warm()
        if self.save_model is not None:
            self.save_model(scorer, at)
        return Model(scorer, fingerprint, explainer)

    def fit_sample(
        self, at: datetime, graph: nx.DiGraph | None = None
    ) -> tuple[nx.DiGraph, NodeSample] | None:
        """The fleet and the nodes a fit at ``at`` reads history for; None: the whole fleet.

        ``graph``: the fleet (default: the last cycle's; without one, the GPUs reporting in the
        window ending at ``at``, read at one point per window: a few cheap queries). None while
        the fleet has at most ``fit_max_gpus`` GPUs. The sample is stratified by rack and by GPU
        model where the source knows the models.
        """
        if not self.fit_max_gpus:
            return None
        if graph is None:
            graph = self.last_graph
        if graph is None:  # which GPUs report in the window ending at ``at``
            seen = sorted(set(self.last_seen) | set(self.reporting(at - self.window, at).gpus))
            self._learn_models({ref.node for ref in seen}, at)
            graph = build_graph(self.topology, seen, self.gpu_models)
        sample = fit_sample(
            graph, self.fit_max_gpus, random_state=self.random_state, name=self.name
        )
        return (graph, sample) if sample is not None else None

    def reporting(self, start: datetime, end: datetime) -> FleetFrames:
        """Which GPUs reported in ``[start, end]``: the peer metrics at one point per window (a
        cheap query, even over a whole fit window)."""
        return self.source.fetch(start, end, self.window, gpu_metrics=PEER_METRICS)

    def explain(
        self,
        incidents: Sequence[Incident],
        frames: FleetFrames,
        graph: nx.DiGraph,
        at: datetime,
        model: Model | None = None,
    ) -> list[Incident]:
        """Attach an explanation to every incident (one DoWhy call when it opens or changes:
        ``Evidence.explain``), with the cycle's model's explainer (``model``, default the
        current one); a model loaded from disk gets one fitted on the past first.
        """
        if self.make_explainer is None or not incidents:
            return list(incidents)
        model = model if model is not None else self.current
        explainer = model.explainer if model is not None else None
        if explainer is None:  # a model loaded from disk comes without one: fit it on the past
            history = explainer_history(
                self.source,
                at - self.fit_window,
                at - self.window,
                self.step,
                graph,
                random_state=self.random_state,
                name=self.name,
            )
            explainer = self.make_explainer().fit(history, graph)
            if model is not None:
                with self._swap:  # unless a refit installed a newer model meanwhile
                    if self.current is model:
                        self.current = replace(model, explainer=explainer)
        return self.evidence.explain(incidents, frames, graph, explainer)

    def images_for(self, incident_id: int | None) -> Images:
        """Return the PNGs stored with an incident (empty when none)."""
        return self.repository.images(incident_id) if incident_id is not None else {}

    # ------------------------------------------------------------------ bookkeeping

    def _history(
        self, at: datetime, sample: NodeSample | None, scorer: Scorer, graph: nx.DiGraph | None
    ) -> FleetFrames:
        """Fetch what ``scorer``'s fit at ``at`` learns from: ``fit_window`` ending one window
        before ``at`` (:func:`bot.fit.read_history`: from a TSDB, the reductions at its cycle
        ends where they pay, for the fleet's size: ``graph``'s GPUs, else those reporting).

        The window about to be scored is never part of the fit: a fault already under way in it
        would otherwise be learnt as normal one cycle before it is judged. ``sample``: only
        these nodes' series (and every component's).
        """
        start, end = at - self.fit_window, at - self.window
        gpus = None
        reduces = getattr(self.source, "reduce_at", None) is not None
        if sample is None and scorer.feature_window is not None and reduces:
            # the row budget sets a large fleet's cycle ends, and those whether reductions pay
            graph = graph if graph is not None else self.last_graph
            if graph is not None:
                gpus = len(gpu_keys_of(graph))
            else:  # a cold start: the GPUs reporting in the history's last window
                gpus = len(self.reporting(end - self.window, end).gpus)
        return read_history(
            self.source,
            scorer,
            start,
            end,
            self.step,
            nodes=sample,
            gpus=gpus,
            span_samples=self.fit_span_samples,
        )

    @property
    def reads(self) -> timedelta:
        """How far before a cycle's end its read starts: the window, and for a scorer of
        reductions the lead-in of the peer metrics' thermal lag (``analysis.thermal.lead_in``)."""
        return self.window if self.feature_window is None else self.window + lead_in(self.step)

    def read_window(self, at: datetime) -> FleetFrames:
        """Fetch the cycle window ending at ``at`` (what a cycle reads, before any model).

        For a scorer that reads feature reductions (``Scorer.feature_window``) the source computes
        the GPUs' own-series reductions (``MetricsSource.reduce``: PromQL in the TSDB) and only
        the metrics the peer context compares come raw; at a time on the step grid a source with
        ``remote_reductions`` is asked for the others' reductions only, the peer metrics' are
        computed here from their raw samples (``with_reductions_of``: the same numbers, to float
        rounding). A source with ``rolling_reads`` is asked only for what the last window read
        lacks (``storage.rolling``: the same frames).
        """
        if self.feature_window is None:
            return self._raw(at - self.window, at, None)
        # the peer metrics from LEAD_IN before the window on: the thermal lag of its first rows
        # reads them (FleetFrames.lead); every other consumer sees the window only
        start = at - self.window
        plan = FeaturePlan(self.feature_window, DEFAULT_RECENT, self.step)
        # the peer metrics' own reductions are computed here from their raw samples when a
        # server would compute them (it would read the same samples again) and the raw window
        # sits on the reductions' grid (the running bot's cycles do: Runtime.cycle_time)
        here = getattr(self.source, "remote_reductions", False) and grid_time(at, self.step) == at
        asked = plan.leaving_out(PEER_METRICS) if here else plan
        # a TSDB computes the reductions while this process decodes the raw window (a scan's
        # first cycle: every cycle's reductions beside the whole span, storage.span_source)
        fetched, reduced = side_by_side(
            self.source,
            lambda: self._raw(at - self.reads, at, PEER_METRICS, lead_until=start),
            lambda: self.source.reduce(asked, at),
        )
        if here:
            reduced = with_reductions_of(reduced, fetched.gpu, PEER_METRICS)
        return replace(split_lead(fetched, start), reduced=reduced)

    def _raw(
        self,
        start: datetime,
        end: datetime,
        metrics: Sequence[str] | None,
        *,
        lead_until: datetime | None = None,
    ) -> FleetFrames:
        """The window's raw series (``metrics`` of the GPU metrics; None: all). ``lead_until``:
        a rolling read returns them split there already (``split_lead``: what it keeps)."""
        if getattr(self.source, "rolling_reads", False):
            return self.rolling.fetch(
                self.source, start, end, self.step, gpu_metrics=metrics, lead_until=lead_until
            )
        return self.source.fetch(start, end, self.step, gpu_metrics=metrics)

    def _known_incidents(self) -> tuple[Exclusion, ...]:
        """Open incidents become training exclusions so a fault is not learnt as normal."""
        return tuple(
            Exclusion(entity=rec.incident.root_cause.id, start=rec.first_seen)
            for rec in self.repository.open_incidents()
        )

    @property
    def record(self) -> CycleRecorder:
        """Where a cycle's end is written: the store's scan record and the bot's metrics."""
        return CycleRecorder(self.repository, self.topology, self.metrics, self.cluster)
