"""The composition root: every object the bot runs on is built here from Settings, nowhere else.

CLI commands ask this module for what they need (a source, a pipeline, a store, the Slack side, a
whole runtime); they never construct those objects themselves.

- :func:`build_source`: the Prometheus reader (URL, auth, TLS, timeouts, label map);
- :func:`build_pipeline`: the one alert loop (``bot/pipeline.Pipeline``) with the configured
  scorer, explainer and model store; ``run``, ``scan``, ``backtest`` and ``demo`` all use it;
- :func:`build_slack`: client, notifier, service and Bolt app (``bot/wiring_sinks.py``, the
  notification side of this root, with the Alertmanager sink and each cluster's sinks);
- :func:`build_runtime`: store, leader lock, a pipeline per cluster, sinks and scheduler of
  ``gpu-risk run``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import networkx as nx

from analysis.scorer import Scorer, ScorerParams, UnknownScorerError, make_scorer
from analysis.types import Topology
from bot.clusters import clusters_of
from bot.config import ConfigError, Settings, maintenance_windows
from bot.pipeline import Pipeline
from bot.runtime import Clock, Runtime, make_clock
from bot.sinks import Sink
from bot.sinks.console import ConsoleSink
from bot.telemetry import BotMetrics
from bot.wiring_sinks import (
    _basic_auth,
    _wire_alertmanager,
    _wire_slack,
    block_options,
    build_alertmanager,
    build_slack,
    wire_clusters,
    wire_sinks,
)
from storage.leader import make_leader_lock
from storage.repository import Repository
from storage.source import MetricsSource

if TYPE_CHECKING:
    from analysis.explain import Explainer
    from analysis.feature_memo import FeatureMemo
    from storage.discovery import Discovered

__all__ = [
    "MEMORY_DB",
    "REPLAY",
    "SCAN",
    "PipelineOptions",
    "Runtime",
    "_wire_alertmanager",
    "_wire_slack",
    "backtest_pipelines",
    "block_options",
    "build_alertmanager",
    "build_pipeline",
    "build_runtime",
    "build_slack",
    "build_source",
    "demo_sink",
    "discover_topology_of",
    "load_topology_of",
    "make_clock",
    "memory_repository",
    "open_repository",
    "scorer_factory",
    "scorer_params",
    "share_features",
]

#: An in-memory store: a one-shot scan or a replay keeps its state apart from the bot's.
MEMORY_DB = "sqlite://"


def load_topology_of(settings: Settings, at: datetime | None = None) -> Topology:
    """The configured topology (``GPU_RISK_TOPOLOGY``), or an empty one (GPUs and nodes only).

    With ``GPU_RISK_TOPOLOGY_LABELS`` set: the topology discovered from metric labels at ``at``
    (default now), completed by the file (see :func:`discover_topology_of`).
    """
    from storage.topology import load_topology

    if settings.topology_labels:
        return discover_topology_of(settings, at=at).topology
    return load_topology(settings.topology) if settings.topology else Topology(racks=())


def discover_topology_of(
    settings: Settings, source: MetricsSource | None = None, at: datetime | None = None
) -> Discovered:
    """The topology and where each fact came from: labels (``GPU_RISK_TOPOLOGY_LABELS``, one
    instant query per metric through ``source`` or a reader of the settings) merged with the
    file, the file winning; without label discovery, the file alone."""
    from storage.discovery import discover_topology, file_only, parse_label_sources
    from storage.metrics import PrometheusSource
    from storage.source import MetricsSourceError
    from storage.topology import load_topology

    if not settings.topology_labels:
        return file_only(load_topology_of(settings))
    try:
        sources = parse_label_sources(settings.topology_labels)
    except ValueError as exc:
        raise ConfigError(f"GPU_RISK_TOPOLOGY_LABELS: {exc}") from None
    file = load_topology(settings.topology, partial=True) if settings.topology else None
    reader = source if isinstance(source, PrometheusSource) else build_source(settings, None)
    if not isinstance(reader, PrometheusSource):  # pragma: no cover - build_source's type
        raise ConfigError("topology from labels needs a Prometheus URL (GPU_RISK_PROMETHEUS_URL)")
    try:
        return discover_topology(
            reader, sources, file, node_label=settings.topology_node_label, at=at
        )
    except MetricsSourceError as exc:
        raise ConfigError(f"cannot read the topology from labels: {exc}") from None


def build_source(settings: Settings, topology: Topology | None) -> MetricsSource:
    """Build the Prometheus reader from the settings (URL, auth, TLS, timeouts, label map)."""
    from storage.metrics import PrometheusSource

    if not settings.prometheus_url:
        raise ConfigError("no Prometheus URL: pass --prometheus-url or set GPU_RISK_PROMETHEUS_URL")
    basic = _basic_auth("PROMETHEUS", settings.prometheus_username, settings.prometheus_password)
    token = settings.prometheus_bearer_token
    return PrometheusSource(
        settings.prometheus_url,
        topology=topology,
        bearer_token=token.get_secret_value() if token else None,
        basic_auth=basic,
        ca_file=str(settings.prometheus_ca_file) if settings.prometheus_ca_file else None,
        verify_tls=settings.prometheus_verify_tls,
        timeout=settings.prometheus_timeout,
        retries=settings.prometheus_retries,
        label_map=settings.label_map or None,
        series_selector=settings.series_selector,
        headers=settings.prometheus_headers or None,
        concurrency=settings.prometheus_concurrency,
    )


def open_repository(url: str) -> Repository:
    """The state store at ``url`` (migrated to head)."""
    return Repository.from_url(url)


def demo_sink(
    settings: Settings, repository: Repository, topology: Topology, out_dir: Path
) -> tuple[Sink, bool]:
    """The demo's destination: the terminal (Block Kit JSON and PNGs kept in ``out_dir``), and
    Slack first when a bot token and channel are set (its message is the one updates edit).

    Returns the sink and whether it also posts to Slack.
    """
    from bot.sinks import FanOut
    from bot.sinks.slack import SlackSink

    console = ConsoleSink(images=repository.images, out_dir=out_dir)
    if settings.slack_bot_token is None or not settings.slack_channel:
        return console, False
    service = build_slack(settings, repository, topology=topology).service
    return FanOut(SlackSink(service), console), True


def memory_repository() -> Repository:
    """A fresh in-memory store (for a one-shot scan or one detector of a replay)."""
    return Repository.from_url(MEMORY_DB)


def scorer_params(settings: Settings, fit_window: timedelta | None = None) -> ScorerParams:
    """The scorer parameters of the settings (``fit_window`` overrides the configured one)."""
    return ScorerParams(
        window=timedelta(minutes=settings.window_minutes),
        fit_window=fit_window or timedelta(hours=settings.fit_window_hours),
        threshold=settings.threshold,
        random_state=settings.random_state,
        fit_max_rows=settings.fit_max_rows,
    )


def scorer_factory(
    settings: Settings, detector: str | None = None, fit_window: timedelta | None = None
) -> Callable[[], Scorer]:
    """A factory of fresh scorers of ``detector`` (default: ``GPU_RISK_DETECTOR``)."""
    name = detector or settings.detector
    params = scorer_params(settings, fit_window)
    try:
        make_scorer(name, params)
    except UnknownScorerError as exc:
        raise ConfigError(f"{exc} (--detector or GPU_RISK_DETECTOR)") from None
    return lambda: make_scorer(name, params)


@dataclass(frozen=True)
class PipelineOptions:
    """How a pipeline differs between the running bot, a scan, a replay and the demo.

    ``detector``: scorer name (default: the setting); ``explain``: DoWhy explanations;
    ``load_models``/``save_models``: the model store of ``GPU_RISK_MODEL_DIR``; ``render``: PNGs
    with each new incident; ``record_scores``: score history; ``fit_window``: overrides the
    setting (the demo's ``--fit-hours``).
    """

    detector: str | None = None
    explain: bool = True
    load_models: bool = True
    save_models: bool = True
    render: bool = True
    record_scores: bool = True
    fit_window: timedelta | None = None


#: A one-shot scan: the running bot's stored model if any, nothing written, no pictures.
SCAN = PipelineOptions(save_models=False, render=False, record_scores=False)
#: One detector of a replay: fitted only on the replay's past, never a stored model.
REPLAY = PipelineOptions(load_models=False, save_models=False, render=False, record_scores=False)


def build_pipeline(
    settings: Settings,
    *,
    source: MetricsSource,
    topology: Topology,
    repository: Repository,
    options: PipelineOptions = PipelineOptions(),
    metrics: BotMetrics | None = None,
) -> Pipeline:
    """The alert loop with the configured scorer, explainer and model store."""
    fit_window = options.fit_window or timedelta(hours=settings.fit_window_hours)
    new_scorer = scorer_factory(settings, options.detector, fit_window)
    learning = new_scorer().needs_history
    load_model, save_model = (
        _model_io(settings, repository, new_scorer) if learning else (None, None)
    )
    key = repository.cluster or ""  # the store's cluster: its tracker state and model files
    return Pipeline(
        name=f"alerts/{key}" if key else "alerts",
        cluster=settings.cluster,
        source=source,
        topology=topology,
        repository=repository,
        make_scorer=new_scorer,
        make_explainer=_explainer(settings) if options.explain and learning else None,
        window=timedelta(minutes=settings.window_minutes),
        step=timedelta(seconds=settings.step_seconds),
        fit_window=fit_window,
        fit_max_gpus=settings.fit_max_gpus,
        random_state=settings.random_state,
        open_after=settings.open_after,
        close_after=settings.close_after,
        open_for=timedelta(seconds=settings.open_for),
        close_for=timedelta(seconds=settings.close_for),
        close_for_critical=timedelta(seconds=settings.close_for_critical),
        hold_risk=settings.hold_risk,
        sustained_risk=settings.sustained_risk,
        sustained_for=timedelta(seconds=settings.sustained_for),
        metrics=metrics,
        load_model=load_model if options.load_models else None,
        save_model=save_model if options.save_models else None,
        render=options.render,
        record_scores=options.record_scores,
        maintenance=maintenance_windows(settings.maintenance),
    )


def _explainer(settings: Settings) -> Callable[[], Explainer]:
    """A factory of the product's explainer (DoWhy imported only when it is called)."""

    def make() -> Explainer:
        """A fresh explainer (fitted with the scorer)."""
        from analysis.explain import Explainer

        return Explainer(random_state=settings.random_state)

    return make


def _model_io(
    settings: Settings, repository: Repository, new_scorer: Callable[[], Scorer]
) -> tuple[Callable[[nx.DiGraph], Scorer | None], Callable[[Scorer, datetime], None]]:
    """Load a stored model for this fleet; save (and index in the store) each refit."""
    from analysis.scoring import MODEL_VERSION, FeatureScorer, fleet_fingerprint
    from storage.model_store import model_store_for

    # With the state: next to the SQLite file, or in the database (PostgreSQL, in memory).
    store = model_store_for(
        settings.model_dir, settings.database_url, repository, repository.cluster or ""
    )

    def load(graph: nx.DiGraph) -> Scorer | None:
        """The stored model of this kind for this fleet, or None."""
        cls = type(new_scorer())
        if not issubclass(cls, FeatureScorer):
            return None
        return store.load(cls, fleet_fingerprint(graph))

    def save(scorer: Scorer, at: datetime) -> None:
        """Write the model file and record it."""
        if not isinstance(scorer, FeatureScorer):
            return
        path = store.save(scorer)
        repository.record_model(
            name=scorer.name,
            fleet_fingerprint=scorer.fingerprint_,
            features=list(scorer.columns_),
            version=str(MODEL_VERSION),
            path=str(path),
            fitted_at=at,
            metrics={"train_rows": int(scorer.n_train_rows_)},
        )

    return load, save


# ---------------------------------------------------------------------------------- runtime


def build_runtime(
    settings: Settings,
    *,
    source: MetricsSource | None = None,
    sources: Mapping[str, MetricsSource] | None = None,
    clock: Clock | None = None,
    metrics: BotMetrics | None = None,
) -> Runtime:
    """Compose the bot from ``settings``: one pipeline per cluster (``bot.clusters``), the
    sinks, the leader lock and the store. ``source`` replaces Prometheus (e.g. the simulator);
    ``sources`` does so per cluster name (a bot watching several)."""
    clock = clock if clock is not None else make_clock(settings)
    metrics = metrics if metrics is not None else BotMetrics.create()
    worker_id = f"{socket.gethostname()}-{os.getpid()}"
    clusters = clusters_of(settings)
    topologies = {c.name: load_topology_of(c.settings) for c in clusters}
    given = dict(sources or {})
    srcs: dict[str, MetricsSource] = {}
    for c in clusters:
        stand_in = given.get(c.name, source)
        srcs[c.name] = (
            stand_in if stand_in is not None else build_source(c.settings, topologies[c.name])
        )
    repository = Repository.from_url(
        settings.database_url, score_history_min=settings.score_history_min
    )
    lock = make_leader_lock(
        repository.engine, worker_id, ttl=timedelta(seconds=max(3 * settings.scan_interval, 30))
    )
    pipelines = {
        c.name: build_pipeline(
            c.settings,
            source=srcs[c.name],
            topology=topologies[c.name],
            repository=repository.scoped(c.key) if c.key else repository,
            metrics=metrics,
        )
        for c in clusters
    }
    first = clusters[0].name
    runtime = Runtime(
        settings=settings,
        repository=repository,
        lock=lock,
        pipeline=pipelines[first],
        pipelines=pipelines if settings.clusters else {},
        metrics=metrics,
        sink=ConsoleSink(
            images=repository.images, log_path=settings.console_log, cluster=settings.cluster
        ),
        clock=clock,
        worker_id=worker_id,
    )
    if settings.clusters:
        wire_clusters(runtime, clusters, topologies)
    else:
        wire_sinks(runtime, topologies[first])
    return runtime


def backtest_pipelines(
    settings: Settings,
    source: MetricsSource,
    topology: Topology,
    *,
    detectors: Sequence[str],
    explain: bool = True,
    horizon: datetime | None = None,
) -> dict[str, Pipeline]:
    """One replay pipeline per detector, side by side on one cached source (one chunked fetch).

    Each has its own in-memory store and tracker and never reads a stored model (no model from
    the future); ``horizon`` (the last cycle) bounds what the cache fetches.
    """
    from storage.replay import CachedSource

    shared = CachedSource(source, horizon=horizon)
    pipelines = {
        name: build_pipeline(
            settings,
            source=shared,
            topology=topology,
            repository=memory_repository(),
            options=replace(REPLAY, detector=name, explain=explain),
        )
        for name in detectors
    }
    shared.lookback = max(p.window for p in pipelines.values())
    if len(pipelines) > 1:  # featurise each cycle once for all of them (an ablation's time)
        from analysis.feature_memo import FeatureMemo

        memo = FeatureMemo()
        for pipeline in pipelines.values():
            pipeline.make_scorer = _sharing(pipeline.make_scorer, memo)
    return pipelines


def share_features(pipeline: Pipeline, memo: FeatureMemo) -> None:
    """Let the scorers ``pipeline`` fits or loads read their features through ``memo`` (a
    one-shot scan's span of cycles: ``analysis.feature_memo.SpanFeatures``)."""
    pipeline.make_scorer = _sharing(pipeline.make_scorer, memo)
    load = pipeline.load_model
    if load is not None:

        def load_shared(graph: nx.DiGraph) -> Scorer | None:
            scorer = load(graph)
            return None if scorer is None else _with_memo(scorer, memo)

        pipeline.load_model = load_shared


def _sharing(make: Callable[[], Scorer], memo: FeatureMemo) -> Callable[[], Scorer]:
    """A scorer factory whose feature-based scorers read features through ``memo``."""

    def make_shared() -> Scorer:
        return _with_memo(make(), memo)

    return make_shared


def _with_memo(scorer: Scorer, memo: FeatureMemo) -> Scorer:
    """``scorer``, reading its features through ``memo`` when it is feature-based."""
    from analysis.scoring import FeatureScorer

    if isinstance(scorer, FeatureScorer):
        scorer.memo = memo
    return scorer
